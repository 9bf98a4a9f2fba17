"""CHAIR on detailed descriptions, against the exact scene graph.

For answer a with asserted mentions M_a (non-negated, :func:`~study.eval.mentions.asserted_categories`,
one entry per mention, repeats kept) and ground-truth categories G_a = the scene's categories:

    H_a        = [m in M_a : m not in G_a]                  hallucinated mentions (category level)
    CHAIR_i    = sum_a |H_a| / sum_a |M_a|                  (0.0 when the corpus has no mention)
    CHAIR_s    = #{a : |H_a| >= 1} / #answers               (every answer counts, empty ones too)
    recall     = sum_a |set(M_a) & G_a| / sum_a |G_a|       (micro coverage of distinct GT categories)
    context_share = sum_a #{m in H_a : context_of(m) == scene.context} / sum_a |H_a|   (0.0 if no H)

Recall split by whether a ground-truth category belongs to the scene's context (C_a = its context's
categories): the objects a co-occurrence prior expects, and the ones it does not.

    recall_in_context  = sum_a |set(M_a) & G_a & C_a| / sum_a |G_a & C_a|
    recall_off_context = sum_a |set(M_a) & (G_a - C_a)| / sum_a |G_a - C_a|

On the world's ``ood`` split (categories drawn uniformly) most objects are off context, so
the ``ood`` recall in ``ood recall / val recall`` (a validity gate) is mostly that split's ``recall_off_context``:
comparing it with ``val``'s says whether a low ratio is off-context objects read badly everywhere (low on ``val``
too) or the model failing out of distribution.

Edge cases: an empty answer or one naming no object adds nothing to CHAIR_i, is not a hallucinating
answer (but is in CHAIR_s's denominator) and covers none of its |G_a| objects.
"""

from __future__ import annotations

from study.eval.bootstrap import ratio
from study.eval.mentions import asserted_categories
from study.world.scenes import Scene
from study.world.spec import WorldSpec


def chair_stats(text: str, scene: Scene, spec: WorldSpec) -> dict[str, int]:
    """Per-answer counts whose corpus sums give every CHAIR metric."""
    mentioned = asserted_categories(text, spec)
    gt = scene.categories
    halluc = [c for c in mentioned if c not in gt]
    return {
        "answers": 1,
        "mentions": len(mentioned),
        "hallucinated": len(halluc),
        "hallucinating": int(bool(halluc)),
        "hallucinated_in_context": sum(spec.context_of(c) == scene.context for c in halluc),
        "gt_covered": len(set(mentioned) & gt),
        "gt": len(gt),
        "gt_covered_in_context": sum(spec.context_of(c) == scene.context for c in set(mentioned) & gt),
        "gt_in_context": sum(spec.context_of(c) == scene.context for c in gt),
    }


CHAIR_METRICS = {
    "chair_i": lambda s: ratio(s["hallucinated"], s["mentions"]),
    "chair_s": lambda s: ratio(s["hallucinating"], s["answers"]),
    "recall": lambda s: ratio(s["gt_covered"], s["gt"]),
    "context_share": lambda s: ratio(s["hallucinated_in_context"], s["hallucinated"]),
    "recall_in_context": lambda s: ratio(s["gt_covered_in_context"], s["gt_in_context"]),
    "recall_off_context": lambda s: ratio(s["gt_covered"] - s["gt_covered_in_context"], s["gt"] - s["gt_in_context"]),
}
