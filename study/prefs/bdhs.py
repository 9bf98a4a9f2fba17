"""BDHS recipe (paper §3.4): chosen = SFT ground truth, rejected = a BDHS sample from the SFT model.

Items are the split's SFT corpus rows (:mod:`study.prefs.sources`); y+ is the corpus answer for that scene
and prompt (the world's LLaVA-Instruct analogue, caption noise included, as in the paper where y+ is the
LLaVA-Instruct answer). y- = ``bdhs_sample(model, processor, images, prompts, chosen, params, encoder,
seed)[i].rejected`` of :mod:`study.bdhs` (attention-masked, reference-guided sampling with the
similarity check; imported lazily so this module does not depend on it at import time).

A sample whose rejected answer is empty or equal to the chosen one (the guidance-free last iteration is
accepted regardless of similarity, so this can happen for easy answers) is dropped; ``overdraw``
candidates are sampled so that ``n`` rows usually remain.

``source_ids``: ``{"chosen": "corpus:{split}", "rejected": "bdhs:{model_id}", "iterations", "similarity",
"guided", "visible_tokens", "kind"}``.
"""

from __future__ import annotations

from typing import Callable

from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import candidates, corpus_items, kinds_for, subsample

RECIPE = "bdhs"


def bdhs_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    model=None,
    processor=None,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    params=None,
    encoder=None,
    model_id: str = "sft",
    sampler: Callable | None = None,
    overdraw: float = 1.1,
    chunk: int = 256,
) -> list[dict]:
    """BDHS rows (module docstring). ``sampler`` defaults to :func:`study.bdhs.bdhs_sample`, which then needs
    ``params`` (a :class:`study.bdhs.BDHSParams`, from ``params.yaml: bdhs``); ``encoder`` defaults to
    ``study.bdhs.similarity.load_encoder(None)`` (only with the default sampler). Sampling runs in chunks of
    ``chunk`` items."""
    if sampler is None:
        from study.bdhs import bdhs_sample
        from study.bdhs.similarity import load_encoder

        if params is None:
            raise ValueError("bdhs_recipe: the BDHS sampler needs params (study.bdhs.stage.bdhs_params of bdhs)")
        sampler = bdhs_sample
        encoder = encoder if encoder is not None else load_encoder(None)
    items = candidates(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed, overdraw)
    kept = []
    for s in range(0, len(items), chunk):
        batch = items[s : s + chunk]
        results = sampler(
            model,
            processor,
            [world.image(it["scene_id"]) for it in batch],
            [it["prompt"] for it in batch],
            [it["answer"] for it in batch],
            params,
            encoder,
            seed + s,
        )
        if len(results) != len(batch):
            raise ValueError(f"BDHS sampler returned {len(results)} results for {len(batch)} items")
        for it, res in zip(batch, results):
            rej = (res.rejected or "").strip()
            if rej and rej != it["answer"].strip():
                kept.append((it, res))
    rows = []
    for it, res in subsample(kept, n, seed):
        src = {
            "chosen": f"corpus:{split}",
            "rejected": f"bdhs:{model_id}",
            "iterations": res.iterations,
            "similarity": res.similarity,
            "guided": res.guided,
            "visible_tokens": res.visible_tokens,
            "kind": it["kind"],
        }
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=it["answer"],
                rejected=res.rejected.strip(),
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
            )
        )
    return validate_rows(rows, world)
