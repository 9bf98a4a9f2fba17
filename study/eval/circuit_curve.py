"""When does the yes/no circuit form? POPE AUROC measured *during* SFT (an instrument of the v2 organism's leads).

The organism's existence answers use the image only if a "circuit" forms in SFT that routes the
tower's presence features to the yes/no token; across seeds it forms in some runs and not in others
(the final POPE AUROC is then 0.87-0.94 or at chance). The final number cannot tell a late transition
(more steps would fix it) from a run that settles in an image-blind solution early (a different
optimisation would be needed). This callback records, every ``every`` optimizer steps, the yes/no
margin AUROC on fixed POPE-random items of a held-out split,

    AUROC_t = P( m_t(x+, q+) > m_t(x-, q-) ),   m_t = log P_t(yes | image, q) - log P_t(no | image, q)

(:func:`study.eval.grounding.yes_no_margins`, ties count 1/2), and the same with every image token
masked, whose gap to the first is the image's share of the answer (the ``image_gain`` gate's quantity).
The items are built once, with the study's item builder and seed, so every point of the curve is paired.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from study.eval.grounding import auroc, yes_no_margins
from study.eval.suites import build_items
from study.world.corpus import World
from study.world.spec import WorldSpec


class CircuitCurve(TrainerCallback):
    """Append ``{"step", "epoch", "auroc", "auroc_masked", "seconds"}`` to ``self.points`` every ``every``
    steps (and at the end of training), on ``n_scenes`` scenes of ``split``; ``log`` (e.g. ``print``) gets
    a line per point, so a run can be watched, and stopped, while it trains."""

    def __init__(
        self,
        processor,
        world: World,
        spec: WorldSpec,
        *,
        split: str = "val",
        n_scenes: int = 100,
        n_pos: int = 3,
        every: int = 100,
        seed: int = 0,
        batch_size: int = 64,
        log=None,
    ):
        scenes = world.scenes(split)[:n_scenes]
        items = build_items(spec, scenes, world.scenes("train"), n_pos=n_pos, seed=seed, suites=("pope_random",))
        self.processor, self.every, self.batch_size, self.log = processor, every, batch_size, log
        self.images = [world.image(it["scene_id"]) for it in items]
        self.prompts = [it["prompt"] for it in items]
        self.labels = [int(it["label"] == "yes") for it in items]
        self.points: list[dict] = []

    def measure(self, model, step: int, epoch: float | None) -> dict:
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        m = yes_no_margins(model, self.processor, self.images, self.prompts, batch_size=self.batch_size)
        mm = yes_no_margins(model, self.processor, self.images, self.prompts, masked=True, batch_size=self.batch_size)
        if was_training:
            model.train()
        point = {
            "step": step,
            "epoch": epoch,
            "auroc": auroc(m, self.labels),
            "auroc_masked": auroc(mm, self.labels),
            "seconds": time.perf_counter() - t0,
        }
        self.points.append(point)
        if self.log is not None:
            self.log(
                f"circuit curve: step {step}: yes/no AUROC {point['auroc']:.3f} (masked {point['auroc_masked']:.3f})"
            )
        return point

    def on_step_end(self, args, state, control, model=None, **kw):
        if model is not None and state.global_step % self.every == 0:
            self.measure(model, state.global_step, state.epoch)

    def on_train_end(self, args, state, control, model=None, **kw):
        if model is not None and (not self.points or self.points[-1]["step"] != state.global_step):
            self.measure(model, state.global_step, state.epoch)
