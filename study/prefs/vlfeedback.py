"""VLFeedback recipe (Li et al. 2023; paper Table 1): a pool of models answers, an annotator ranks.

For every candidate item (prompt + image of the split's corpus, :mod:`study.prefs.sources`) each pool
member (at least 3 checkpoints, e.g. the SFT organism and weaker/earlier checkpoints) samples one answer
(``temperature``, seeded per member). The annotator's :meth:`~study.prefs.annotators.Annotator.rank`
scores the answers; chosen = the best, rejected = the worst.

Ties. The best is the first member (pool order) with the highest score, the worst the last member with
the lowest score. A candidate is *skipped* when the best and worst scores tie (the annotator sees no
difference; this includes every pool that answered identically) or when the two texts are equal. The
ground-truth corpus answer is not in the pool (VLFeedback has no reference answer).

``source_ids``: ``{"chosen": member, "rejected": member, "pool": [members], "scores": [...],
"annotator": name, "sample_seed": seed}``. ``pool_answers`` is shared with :mod:`.vlf_corrupted`.
"""

from __future__ import annotations

from typing import Sequence

from study.config import MIN_POOL
from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import (
    PoolMember,
    answer_items,
    as_member,
    candidates,
    corpus_items,
    kinds_for,
    scene_map,
    subsample,
)

RECIPE = "vlfeedback"


def load_pool(pool: Sequence, min_size: int = MIN_POOL) -> list[PoolMember]:
    """Pool members from checkpoint paths / ``(name, model, processor)`` tuples (at least ``min_size``)."""
    members = [as_member(m) for m in pool]
    if len(members) < min_size:
        raise ValueError(f"a VLFeedback pool needs at least {min_size} checkpoints, got {len(members)}")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"pool members need distinct names, got {names}")
    return members


def pool_answers(
    members: list[PoolMember],
    world,
    items: list[dict],
    *,
    seed: int,
    temperature: float = 1.0,
    do_sample: bool = True,
    max_new_tokens: int = 96,
    batch_size: int = 64,
) -> list[list[str]]:
    """``answers[i][m]`` = member m's answer to item i (member m samples with seed ``seed + m``)."""
    per_member = [
        answer_items(
            m,
            world,
            items,
            seed=seed + k,
            do_sample=do_sample,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        for k, m in enumerate(members)
    ]
    return [[per_member[k][i] for k in range(len(members))] for i in range(len(items))]


def best_worst(scores: Sequence[float]) -> tuple[int, int] | None:
    """(first argmax, last argmin), or None when max == min (module docstring)."""
    hi, lo = max(scores), min(scores)
    if hi == lo:
        return None
    best = next(i for i, s in enumerate(scores) if s == hi)
    worst = max(i for i, s in enumerate(scores) if s == lo)
    return best, worst


def vlfeedback_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    pool: Sequence,
    annotator,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    batch_size: int = 64,
    overdraw: float = 1.5,
) -> list[dict]:
    """VLFeedback-style rows (module docstring)."""
    members = load_pool(pool)
    scenes = scene_map(world, (split,))
    items = candidates(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed, overdraw)
    answers = pool_answers(
        members, world, items, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    kept = []
    for it, ans in zip(items, answers):
        scores = annotator.rank(scenes[it["scene_id"]], it["prompt"], ans)
        bw = best_worst(scores)
        if bw is None or ans[bw[0]].strip() == ans[bw[1]].strip() or not ans[bw[0]].strip() or not ans[bw[1]].strip():
            continue
        kept.append((it, ans, scores, bw))
    rows = []
    for it, ans, scores, (b, w) in subsample(kept, n, seed):
        src = {
            "chosen": members[b].name,
            "rejected": members[w].name,
            "pool": [m.name for m in members],
            "scores": [float(s) for s in scores],
            "annotator": annotator.name,
            "sample_seed": seed,
            "kind": it["kind"],
        }
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=ans[b].strip(),
                rejected=ans[w].strip(),
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
            )
        )
    return validate_rows(rows, world)
