"""Shared inputs of the recipes: prompt/answer items from the world's SFT corpus, size control, models.

Items. Every recipe starts from the SFT corpus of one split (``World.corpus(split)``): an item is
``{"scene_id", "prompt", "answer", "kind"}`` with ``answer`` the corpus (ground-truth SFT) answer and
``kind`` in ``describe|exist|color|count|relation``. This mirrors the paper: POVID/BDHS prompts and
images come from LLaVA-Instruct, which was part of the SFT data, and y+ is its answer. The prompt
source of Table 5 is a filter on ``kind``: ``"mixed"`` = every kind (diverse prompts), ``"llava"`` =
describe prompts only (the LLaVA detailed-description prompts).

Size control. :func:`subsample` draws ``n`` rows without replacement with ``numpy.random.default_rng(
seed)`` and keeps their original order; every recipe ends with it, so ``n`` is the common dataset size
(the paper's "5k"). Recipes that drop candidates (ties, nothing to correct, identical samples) first
process ``ceil(n * overdraw)`` candidates drawn the same way, then subsample the survivors to ``n``; if
fewer than ``n`` survive, all are returned (the caller sees ``len(rows) < n``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

PROMPT_SOURCES = {"mixed": None, "llava": ("describe",)}


def subsample(rows: Sequence, n: int | None, seed: int) -> list:
    """``n`` rows drawn without replacement (original order kept); all rows if ``n`` is None or >= len."""
    rows = list(rows)
    if n is None or n >= len(rows):
        return rows
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n])
    return [rows[i] for i in idx]


def kinds_for(prompt_source: str | None = None, kinds: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """Resolve a prompt source (``mixed``/``llava``) or an explicit kind list to a kind filter."""
    if kinds is not None:
        return tuple(kinds)
    if prompt_source is None:
        return None
    if prompt_source not in PROMPT_SOURCES:
        raise ValueError(f"prompt_source must be one of {sorted(PROMPT_SOURCES)}, got {prompt_source!r}")
    return PROMPT_SOURCES[prompt_source]


def corpus_items(world, split: str = "train", kinds: Sequence[str] | None = None) -> list[dict]:
    """The split's SFT corpus as items ``{"scene_id", "prompt", "answer", "kind"}`` (corpus order)."""
    out = []
    for r in world.corpus(split):
        if kinds is not None and r["kind"] not in kinds:
            continue
        out.append(
            {
                "scene_id": r["scene_id"],
                "prompt": r["messages"][0]["content"][1]["text"],
                "answer": r["messages"][1]["content"][0]["text"],
                "kind": r["kind"],
                "noisy_object": r.get("noisy_object"),
            }
        )
    return out


def candidates(items: list[dict], n: int | None, seed: int, overdraw: float = 1.0) -> list[dict]:
    """The items a recipe processes: ``ceil(n * overdraw)`` of them (all if ``n`` is None)."""
    if overdraw < 1:
        raise ValueError(f"overdraw must be >= 1, got {overdraw}")
    return subsample(items, None if n is None else math.ceil(n * overdraw), seed)


def scene_map(world, splits: Sequence[str] = ("train", "val", "test", "ood")) -> dict:
    out = {}
    for s in splits:
        try:
            out.update({sc.scene_id: sc for sc in world.scenes(s)})
        except FileNotFoundError:
            pass
    return out


def world_spec(world):
    """The :class:`WorldSpec` a built world was made from (see :meth:`study.world.corpus.World.spec`)."""
    return world.spec()


@dataclass
class PoolMember:
    """A model that answers prompts: ``name`` is its provenance id (a checkpoint path or a label)."""

    name: str
    model: object
    processor: object


def as_member(m) -> PoolMember:
    """A :class:`PoolMember` from a checkpoint path (loaded with :func:`study.model.load_model`), a
    ``(name, model, processor)`` tuple or a member."""
    if isinstance(m, PoolMember):
        return m
    if isinstance(m, (str, Path)):
        from study.model import load_model

        model, processor = load_model(m)
        return PoolMember(str(m), model, processor)
    name, model, processor = m
    return PoolMember(str(name), model, processor)


def answer_items(
    member: PoolMember,
    world,
    items: list[dict],
    *,
    seed: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    batch_size: int = 64,
) -> list[str]:
    """``member``'s answer to each item (image of the item's scene + prompt), seeded."""
    from study.model import generate

    if not items:
        return []
    return generate(
        member.model,
        member.processor,
        [world.image(it["scene_id"]) for it in items],
        [it["prompt"] for it in items],
        do_sample=do_sample,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
    )
