"""The ``sft_seeds`` stage: the organism trained again from other seeds, as further draws of the SFT model.

One SFT model is one draw: the same recipe from another seed reads its image differently (the validity gates'
stability rule, and findings that must hold across SFT draws). For each seed k of ``organism.sft_seeds`` other
than ``seed`` (:func:`extra_seeds`), this stage runs the main chain's own stage functions
(:func:`study.model.stage.run_vision`, :func:`~study.model.stage.run_lm`, :func:`~study.model.stage.run_sft`)
with the stage's params, only ``seed`` set to k, on the same world: tower pretraining, text pretraining and
projector alignment, then SFT with its pool checkpoints (``sft.pool_fractions``) as the ``sft`` stage keeps
them. No other code path trains these models.

Output: ``<out_dir>/seed{k}/sft`` (the SFT model) and ``<out_dir>/seed{k}/pool`` (its intermediate
checkpoints), and the metrics ``{"seeds": [k, ...], "per_seed": {k: {"vision", "lm", "sft"}}}``. With no
extra seed (one seed listed, or a pretrained base passed through SFT) the output holds only ``seeds.json``.

Resuming: each seed trains in ``<out_dir>.work/seed{k}``; a sub-stage whose metrics file is there (each
writes it after its model, atomically) is kept when the directory was written with this seed's fingerprint
(:func:`seed_fingerprint`: the resolved params with that seed, and the world's digest; :mod:`study.resume`).
A killed stage loses at most the sub-stage it was in; a sub-stage trained again retrains every later one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from study import io
from study.resume import claim_work_dir, default_work_dir, run_sub_stages, tree_digest

if TYPE_CHECKING:
    from study.config import StudyParams
    from study.pipeline import StageContext

SUB_STAGES = ("vision", "lm", "sft")


def extra_seeds(p: StudyParams) -> list[int]:
    """The SFT seeds trained here: ``organism.sft_seeds`` but ``seed``; none when a pretrained base passes
    through SFT (``model.base_path``, ``sft.on_base: pass``): one checkpoint, no other SFT draw of it exists,
    so the seed gates read "not measured"."""
    if p.model.base_path and p.sft.on_base == "pass":
        return []
    return [s for s in p.organism.sft_seeds if s != p.seed]


def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """Where seed ``seed``'s models are in the stage's output: ``<out_dir>/seed{seed}`` (``sft/``, ``pool/``)."""
    return Path(out_dir) / f"seed{seed}"


def seed_fingerprint(p: StudyParams, world_dir: str | Path) -> dict:
    """What determines an extra seed's models (:mod:`study.resume`): the resolved params with that seed, and
    a digest of the world they train on."""
    return {"params": p.model_dump(mode="json"), "world": tree_digest(world_dir)}


def train_seed(seed: int, ctx: StageContext, work: Path) -> dict:
    """Tower, ``lm`` + projector and SFT of the organism from ``seed``, with ``ctx``'s params (the seed
    aside), in ``work/seed{seed}``; returns the three sub-stages' metrics (module docstring: resuming)."""
    from study.model import stage as model_stage
    from study.pipeline import StageContext

    d, p = work / f"seed{seed}", ctx.params.model_copy(update={"seed": seed})
    world_dir = ctx.paths.world_dir
    resume = claim_work_dir(d, seed_fingerprint(p, world_dir), f"SFT seed {seed}")
    paths = {
        "vision": SimpleNamespace(world_dir=world_dir, out_dir=str(d / "vision"), metrics_path=str(d / "vision.json")),
        "lm": SimpleNamespace(
            world_dir=world_dir, init_dir=str(d / "vision"), out_dir=str(d / "lm"), metrics_path=str(d / "lm.json")
        ),
        "sft": SimpleNamespace(
            world_dir=world_dir,
            init_dir=str(d / "lm"),
            out_dir=str(d / "sft"),
            pool_dir=str(d / "pool"),
            live_dir=None,
            metrics_path=str(d / "sft.json"),
        ),
    }
    run_sub_stages(
        resume,
        [
            (
                stage,
                lambda x=paths[stage]: Path(x.metrics_path).is_file() and Path(x.out_dir).is_dir(),
                lambda stage=stage: getattr(model_stage, f"run_{stage}")(StageContext(stage, None, p, paths[stage])),
            )
            for stage in SUB_STAGES
        ],
        f"SFT seed {seed}",
    )
    return {stage: json.loads(Path(paths[stage].metrics_path).read_text()) for stage in SUB_STAGES}


def run_sft_seeds(ctx: StageContext) -> dict:
    """Train every extra SFT seed (:func:`extra_seeds`) and write ``paths.out_dir`` and ``paths.metrics_path``
    (module docstring)."""
    out_dir, metrics_path = ctx.paths.out_dir, ctx.paths.metrics_path
    seeds = extra_seeds(ctx.params)
    work = default_work_dir(out_dir)
    per_seed = {s: train_seed(s, ctx, work) for s in seeds}
    with io.atomic_dir(out_dir) as tmp:
        io.write_json(tmp / "seeds.json", {"seeds": seeds})
        for s in seeds:
            for part in ("sft", "pool"):
                src = work / f"seed{s}" / part
                if src.is_dir():
                    shutil.copytree(src, seed_dir(tmp, s) / part)
    if work.exists():
        shutil.rmtree(work)
    metrics = {"seeds": seeds, "per_seed": {str(s): m for s, m in per_seed.items()}}
    io.write_json(metrics_path, metrics)
    return metrics


def load_seed_model(out_dir: str | Path, seed: int):
    """``(model, processor)`` of seed ``seed``'s SFT model in the stage's output; an error naming the seed and
    the stage when it is not there (the output was written for other ``organism.sft_seeds``)."""
    from study.model.load import load_model

    seeds = json.loads((Path(out_dir) / "seeds.json").read_text())["seeds"]
    if seed not in seeds:
        raise FileNotFoundError(
            f"{out_dir} holds SFT seeds {seeds}, not {seed}: run the sft_seeds stage for organism.sft_seeds"
        )
    return load_model(seed_dir(out_dir, seed) / "sft")


def seed_table(metrics: dict):
    """One row per trained seed: the tower's val patch accuracy (all / clear / faint objects), the ``lm``
    stage's reading accuracy and AUROC, the projector's loss, SFT's eval loss and throughput, and each
    sub-stage's minutes (a sub-stage with nothing to train reads NaN)."""
    import pandas as pd

    rows = {}
    for k, m in metrics["per_seed"].items():
        v, lm, sft = m["vision"], m["lm"].get("lm", {}), m["sft"]
        pj = m["lm"].get("projector", {})
        rows[f"seed {k}"] = {
            "tower patch acc": v.get("val_patch_accuracy"),
            "clear": v.get("val_patch_accuracy_clear"),
            "faint": v.get("val_patch_accuracy_faint"),
            "reading acc": lm.get("reading_accuracy"),
            "reading AUROC": lm.get("reading_auroc"),
            "projector loss": pj.get("train_loss"),
            "SFT eval loss": sft.get("eval_loss"),
            "SFT rows/s": sft.get("train_samples_per_s"),
            "tower min": v.get("seconds", float("nan")) / 60,
            "lm + projector min": (lm.get("train_runtime_s", 0) + pj.get("train_runtime_s", 0)) / 60,
            "SFT min": sft.get("train_runtime_s", float("nan")) / 60,
        }
    return pd.DataFrame(rows).T.astype(float).round(3)
