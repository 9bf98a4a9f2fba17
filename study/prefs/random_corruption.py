"""Random-corruption baseline (not in the paper): rejected = chosen with k random word swaps.

chosen = the SFT ground-truth corpus answer; rejected = chosen with ``k`` distinct token positions
(drawn uniformly among its whitespace tokens, punctuation included) each replaced by a word drawn
uniformly from the world's vocabulary (:func:`study.world.language.vocabulary`) other than the word it
replaces. Unlike POVID's corruptions these edits are neither plausible nor guaranteed to be
hallucinations (a swap can produce ungrammatical but harmless text), which is the point of the control:
it separates "any difference from y+" from "a realistic hallucination". ``source_ids``: ``{"chosen":
"corpus:{split}", "rejected": "random_swap", "k", "positions": [...]}``.
"""

from __future__ import annotations

import numpy as np

from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import corpus_items, kinds_for, subsample, world_spec
from study.world.language import vocabulary

RECIPE = "random_corruption"


def random_swap(text: str, vocab: list[str], k: int, rng: np.random.Generator) -> tuple[str, list[int]]:
    """``text`` with ``min(k, #tokens)`` random tokens swapped for other vocabulary words."""
    toks = text.split()
    if not toks:
        return text, []
    pos = sorted(int(i) for i in rng.choice(len(toks), size=min(k, len(toks)), replace=False))
    for i in pos:
        opts = [w for w in vocab if w != toks[i]]
        toks[i] = opts[int(rng.integers(len(opts)))]
    return " ".join(toks), pos


def random_corruption_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    k: int = 2,
    spec=None,
) -> list[dict]:
    """Random-swap rows (module docstring)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    spec = spec or world_spec(world)
    vocab = vocabulary(spec)
    items = subsample(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed)
    rng = np.random.default_rng([seed, 0x5A])
    rows = []
    for it in items:
        rej, pos = random_swap(it["answer"], vocab, k, rng)
        src = {"chosen": f"corpus:{split}", "rejected": "random_swap", "k": k, "positions": pos, "kind": it["kind"]}
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=it["answer"],
                rejected=rej,
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
            )
        )
    return validate_rows(rows, world)
