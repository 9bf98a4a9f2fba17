"""What BDHS produced: the paper's Fig. 10 analog and the exact hallucination content of rejections.

Acceptance curve. With s_{j,t} the similarity of sample j at iteration t (``BDHSResult.history``),

    different(i) = #{j : min_{t <= i} s_{j,t} <= eps_s} / n          (semantically different after i tries)
    accepted(i)  = #{j : iterations_j <= i} / n                     (includes the forced last acceptance)

Content, per sample, on the scene graph (mentions = asserted categories of
:func:`study.eval.mentions.asserted_categories`, G = the scene's categories, C = mentions of the chosen):

    hallucinated         = [m in mentions(rejected) : m not in G]          (with repeats)
    new_hallucinated     = [m in hallucinated : m not in C]                 (not inherited from y+)
    in_context           = #{m in hallucinated : spec.context_of(m) == scene.context}
    colour_changed       = #{c in set(mentions(y-)) & set(C) : colours(y-, c) != colours(y+, c)},
                           colours(text, c) = colour words among the modifiers right before a mention of c
                           (both sides must name a colour for c; ``common_coloured`` counts those c).

Summary ratios are of corpus sums (``chair_i`` = sum hallucinated / sum mentions, etc.).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from study.eval.bootstrap import ratio
from study.eval.mentions import asserted_categories, is_negated, modifier_words, sentences
from study.world.scenes import Scene
from study.world.spec import WorldSpec


def acceptance_curve(results: Sequence, eps_s: float, n_bdhs: int | None = None) -> pd.DataFrame:
    """Columns: iteration, different, accepted (shares of samples; the Fig. 10 analog)."""
    n = max(len(results), 1)
    n_iter = n_bdhs or max((len(r.history) for r in results), default=0)
    rows = []
    for i in range(1, n_iter + 1):
        diff = sum(any(s <= eps_s for s in r.history[:i]) for r in results)
        rows.append({"iteration": i, "different": diff / n, "accepted": sum(r.iterations <= i for r in results) / n})
    return pd.DataFrame(rows)


def colour_claims(text: str, spec: WorldSpec) -> dict[str, set[str]]:
    """Category -> colour words in the modifier run right before each of its asserted mentions."""
    lexicon, mods = spec.word_to_category(), modifier_words(spec)
    out: dict[str, set[str]] = {}
    for toks in sentences(text):
        for i, t in enumerate(toks):
            if t not in lexicon or is_negated(toks, i, mods):
                continue
            j = i - 1
            while j >= 0 and toks[j] in mods:
                if toks[j] in spec.colors:
                    out.setdefault(lexicon[t], set()).add(toks[j])
                j -= 1
    return out


def rejection_content(chosen: str, rejected: str, scene: Scene, spec: WorldSpec) -> dict[str, int]:
    """Per-sample counts of the module docstring."""
    rej, cho = asserted_categories(rejected, spec), asserted_categories(chosen, spec)
    halluc = [c for c in rej if c not in scene.categories]
    col_r, col_c = colour_claims(rejected, spec), colour_claims(chosen, spec)
    common = [c for c in set(rej) & set(cho) if col_r.get(c) and col_c.get(c)]
    return {
        "mentions": len(rej),
        "hallucinated": len(halluc),
        "hallucinating": int(bool(halluc)),
        "new_hallucinated": sum(c not in cho for c in halluc),
        "in_context": sum(spec.context_of(c) == scene.context for c in halluc),
        "chosen_mentions": len(cho),
        "chosen_hallucinated": sum(c not in scene.categories for c in cho),
        "common_coloured": len(common),
        "colour_changed": sum(col_r[c] != col_c[c] for c in common),
    }


def content_table(results: Sequence, chosen: Sequence[str], scenes: Sequence[Scene], spec: WorldSpec) -> pd.DataFrame:
    """One row per sample: BDHS outcome plus :func:`rejection_content`."""
    rows = []
    for r, c, s in zip(results, chosen, scenes, strict=True):
        rows.append(
            {
                "scene_id": s.scene_id,
                "iterations": r.iterations,
                "guided": r.guided,
                "similarity": r.similarity,
                "visible_tokens": r.visible_tokens,
                **rejection_content(c, r.rejected, s, spec),
            }
        )
    return pd.DataFrame(rows)


def content_summary(table: pd.DataFrame) -> dict[str, float]:
    """Corpus ratios of a :func:`content_table`."""
    t = table.sum(numeric_only=True)
    n = len(table)
    return {
        "n": n,
        "chair_i": ratio(t["hallucinated"], t["mentions"]),
        "chair_s": ratio(t["hallucinating"], n),
        "new_hallucinated_per_answer": ratio(t["new_hallucinated"], n),
        "context_share": ratio(t["in_context"], t["hallucinated"]),
        "colour_change_rate": ratio(t["colour_changed"], t["common_coloured"]),
        "chosen_chair_i": ratio(t["chosen_hallucinated"], t["chosen_mentions"]),
        "mean_visible_tokens": float(table["visible_tokens"].mean()) if n else 0.0,
    }
