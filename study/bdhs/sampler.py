"""The BDHS loop (paper §3.4, Algorithm 1) over a batch of samples.

For iteration i = 1 .. N_BDHS and every sample not yet accepted:

1. draw a fresh input x~ = (x_text, x~_img, m): one Eq.-6 mask m per sample (:mod:`.mask`, shared by all
   of the sample's sentences) and, if ``noise_steps > 0``, diffusion noise on its image (:mod:`.noise`);
2. guided iterations: draw new cut points (:mod:`.guided`) and regenerate every sentence of every pending
   sample in ONE batched :func:`study.model.generate.generate` call (``stop_at_sentence=True``; each row's
   assistant prefix is the ground-truth sentences before it plus its kept part), then join;
   unguided iteration: generate the whole answer from x~ with no prefix (``stop_at_sentence=False``);
3. s_i = cos(e(y~-), e(y+)) (:mod:`.similarity`); accept iff s_i <= eps_s, else go to iteration i + 1.

If N_BDHS > 1 the last iteration is unguided and accepted regardless of s. If N_BDHS = 1 the single
iteration is guided and accepted regardless (there is no retry to fall back on).

Token budget: a guided row may add ``max_new_tokens`` tokens (one sentence); the unguided answer may add
``max_new_tokens * S`` with S the largest number of chosen sentences among the pending samples, i.e. the
same total budget the guided iteration gave them.

Batching: the rows of one iteration are sorted by prefix length before the call (little left padding per
``batch_size`` chunk of ``generate``) and put back in order afterwards.

Randomness: sample r's noise and cut points at iteration i come from ``numpy.random.default_rng([seed, i,
r])``; masks and token sampling come from ``generate``'s generators seeded with a hash of (seed, i). So the
same inputs and seed give the same results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from study.bdhs import guided as guidance
from study.bdhs.mask import SharedKeep
from study.bdhs.noise import N_STEPS, add_diffusion_noise
from study.bdhs.similarity import SentenceEncoder
from study.model.generate import generate


@dataclass
class BDHSParams:
    """BDHS knobs, from ``params.yaml: bdhs`` (:func:`study.bdhs.stage.bdhs_params`); the paper's values are
    eps_s = 0.97 and N_BDHS = 5."""

    rho_th: float
    eps_s: float
    n_bdhs: int
    noise_steps: int
    max_new_tokens: int
    temperature: float
    do_sample: bool
    batch_size: int

    def __post_init__(self):
        checks = [
            ("rho_th", 0 <= self.rho_th <= 1, "[0, 1]"),
            ("eps_s", -1 <= self.eps_s <= 1, "[-1, 1]"),
            ("n_bdhs", isinstance(self.n_bdhs, int) and self.n_bdhs >= 1, "integers >= 1"),
            ("noise_steps", isinstance(self.noise_steps, int) and 0 <= self.noise_steps <= N_STEPS, f"[0, {N_STEPS}]"),
            ("max_new_tokens", isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1, "integers >= 1"),
            ("temperature", self.temperature > 0, "(0, inf)"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "integers >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"BDHSParams.{name} must be in {allowed}, got {getattr(self, name)!r}")


@dataclass
class BDHSResult:
    rejected: str  # the accepted y~-
    iterations: int  # iteration at which it was accepted (1 .. n_bdhs)
    similarity: float  # cos(e(y~-), e(y+)) of the accepted y~-
    guided: bool  # False for the unguided last iteration
    visible_tokens: int  # image tokens left visible by the accepted iteration's mask
    history: list[float] = field(default_factory=list)  # similarity at each iteration tried


def _check_inputs(images, prompts, chosen) -> None:
    if not len(images) == len(prompts) == len(chosen):
        raise ValueError(
            f"images ({len(images)}), prompts ({len(prompts)}) and chosen ({len(chosen)}) must have the same length"
        )
    for row, (img, c) in enumerate(zip(images, chosen)):
        if img is None:
            raise ValueError(f"image of row {row} is missing (None)")
        guidance.chosen_sentences(c, row)


def _round(model, processor, images, prompts, chosen, pending, params, it, seed, guided):
    """One BDHS iteration for the ``pending`` rows: (texts, visible image tokens), in pending order."""
    rngs = [np.random.default_rng([seed, it, i]) for i in pending]
    imgs = [add_diffusion_noise(images[i], params.noise_steps, r) for i, r in zip(pending, rngs)]
    if guided:
        plans = [guidance.plan(chosen[i], r, row=i) for i, r in zip(pending, rngs)]
        row_sample = [j for j, p in enumerate(plans) for _ in p.sentences]
        prefixes = [pre for p in plans for pre in guidance.assistant_prefixes(p)]
        budget = params.max_new_tokens
    else:
        row_sample = list(range(len(pending)))
        prefixes = None
        budget = params.max_new_tokens * max(len(guidance.chosen_sentences(chosen[i], i)) for i in pending)
    # rows sorted by prefix length so that each generate batch pads little; outputs are put back in order
    order = sorted(range(len(row_sample)), key=lambda r: len(prefixes[r].split()) if prefixes else 0)
    keep = SharedKeep([row_sample[r] for r in order], params.rho_th)
    sorted_outs = generate(
        model,
        processor,
        [imgs[row_sample[r]] for r in order],
        [prompts[pending[row_sample[r]]] for r in order],
        prefixes=[prefixes[r] for r in order] if prefixes else None,
        keep_fn=keep,
        max_new_tokens=budget,
        batch_size=params.batch_size,
        do_sample=params.do_sample,
        temperature=params.temperature,
        stop_at_sentence=guided,
        seed=int(np.random.SeedSequence([seed, it]).generate_state(1)[0]),
    )
    outs = [""] * len(order)
    for r, o in zip(order, sorted_outs):
        outs[r] = o
    if guided:
        bounds = np.cumsum([0] + [len(p.sentences) for p in plans])
        texts = [guidance.join(p, outs[bounds[j] : bounds[j + 1]]) for j, p in enumerate(plans)]
    else:
        texts = [" ".join(o.split()) for o in outs]
    return texts, [keep.visible(j) for j in range(len(pending))]


def bdhs_sample(
    model,
    processor,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    chosen: Sequence[str],
    params: BDHSParams,
    encoder: SentenceEncoder,
    seed: int,
    *,
    progress: bool = True,
) -> list[BDHSResult]:
    """One BDHS rejected answer per (image, prompt, chosen) row; see the module docstring."""
    _check_inputs(images, prompts, chosen)
    chosen_emb = encoder.embed(list(chosen))
    results: list[BDHSResult | None] = [None] * len(chosen)
    history: list[list[float]] = [[] for _ in chosen]
    pending = list(range(len(chosen)))
    bar = tqdm(total=params.n_bdhs, desc="bdhs", disable=not progress, mininterval=2)
    for it in range(1, params.n_bdhs + 1):
        if not pending:
            break
        last = it == params.n_bdhs
        guided = not last or params.n_bdhs == 1
        texts, visible = _round(model, processor, images, prompts, chosen, pending, params, it, seed, guided)
        sims = encoder.similarity(texts, chosen_emb[pending])
        still = []
        for j, i in enumerate(pending):
            history[i].append(float(sims[j]))
            if sims[j] <= params.eps_s or last:
                results[i] = BDHSResult(texts[j], it, float(sims[j]), guided, visible[j], history[i])
            else:
                still.append(i)
        pending = still
        bar.update(1)
        bar.set_postfix(pending=len(pending))
    bar.close()
    return results  # type: ignore[return-value]
