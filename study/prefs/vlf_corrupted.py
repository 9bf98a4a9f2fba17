"""VLFeedbackCorrupted recipe (paper Table 5; Table 2 row "VLFeedbackCorrupted (5k)").

chosen = a pool answer picked by the annotator; rejected = its plausible corruption
(:func:`study.prefs.povid.corrupt`, the same edits and the same verification as POVID), which removes
the style differences between models that a ranked pair carries.

Table 5 component variants:

    prompt_source  ``"mixed"``  every corpus prompt kind (diverse prompts, VLFeedback's nine sources), or
                   ``"llava"``  describe prompts only (the "LLaVA prompts" row).
    chosen_from    ``"ranked"``    the best-ranked answer over the whole pool (the default, "diverse");
                   ``"strongest"`` the answer of the pool member with the highest mean annotator score
                                   over the candidate items ("GPT-4V chosen only");
                   ``"weakest"``   the member with the lowest mean score ("LLaVA chosen only");
                   a member name   that member's answer.
                   Strongest / weakest are *measured* on the candidates, not assumed from pool order.

A candidate is skipped when its chosen answer is empty or no corruption verifiably makes it worse
(e.g. a short-QA answer that is already wrong). ``source_ids``: ``{"chosen": member, "rejected":
"povid_corruption", "edits", "chosen_from", "pool", "scores", "annotator", "member_means"}``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from study.prefs.povid import CORRUPTION_TYPES, corrupt
from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import candidates, corpus_items, kinds_for, scene_map, subsample, world_spec
from study.prefs.vlfeedback import load_pool, pool_answers
from study.world.scenes import cooccurrence

RECIPE = "vlf_corrupted"


def vlf_corrupted_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    pool: Sequence,
    annotator,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    chosen_from: str = "ranked",
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    batch_size: int = 64,
    max_edits: int = 2,
    types: tuple[str, ...] = CORRUPTION_TYPES,
    overdraw: float = 1.3,
    spec=None,
) -> list[dict]:
    """VLFeedbackCorrupted rows (module docstring)."""
    spec = spec or world_spec(world)
    members = load_pool(pool)
    names = [m.name for m in members]
    if chosen_from not in ("ranked", "strongest", "weakest") and chosen_from not in names:
        raise ValueError(
            f"chosen_from must be 'ranked', 'strongest', 'weakest' or a member of {names}, got {chosen_from!r}"
        )
    scenes = scene_map(world, (split,))
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    items = candidates(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed, overdraw)
    answers = pool_answers(
        members, world, items, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    scores = [annotator.rank(scenes[it["scene_id"]], it["prompt"], ans) for it, ans in zip(items, answers)]
    means = np.mean(np.array(scores, dtype=float), axis=0) if scores else np.zeros(len(members))
    if chosen_from == "ranked":
        pick = None
    elif chosen_from == "strongest":
        pick = int(np.argmax(means))
    elif chosen_from == "weakest":
        pick = int(np.argmin(means))
    else:
        pick = names.index(chosen_from)
    rng = np.random.default_rng([seed, 0xC0])
    from study.prefs.annotators import OracleAnnotator

    oracle = OracleAnnotator(spec)
    kept = []
    for it, ans, sc in zip(items, answers, scores):
        k = pick if pick is not None else next(i for i, s in enumerate(sc) if s == max(sc))
        chosen = ans[k].strip()
        if not chosen:
            continue
        c = corrupt(
            chosen,
            it["prompt"],
            scenes[it["scene_id"]],
            spec,
            cooc,
            rng,
            max_edits=max_edits,
            types=types,
            oracle=oracle,
        )
        if c is None or c.text.strip() == chosen:
            continue
        kept.append((it, chosen, c, k, sc))
    rows = []
    for it, chosen, c, k, sc in subsample(kept, n, seed):
        src = {
            "chosen": names[k],
            "rejected": "povid_corruption",
            "edits": c.edits,
            "chosen_from": chosen_from,
            "pool": names,
            "scores": [float(s) for s in sc],
            "annotator": annotator.name,
            "member_means": [float(m) for m in means],
            "kind": it["kind"],
            "prompt_source": prompt_source,
        }
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=chosen,
                rejected=c.text.strip(),
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
            )
        )
    return validate_rows(rows, world)
