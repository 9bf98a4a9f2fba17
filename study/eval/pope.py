"""POPE-style existence questions built from scene graphs, and POPE's own answer parser.

Construction, per scene: k = min(n_pos, #present categories) present categories drawn uniformly
(without replacement) give "yes" questions; k absent categories (fewer only if fewer are absent) give
"no" questions, chosen by the split type:

    random       uniform among the absent categories;
    popular      the absent categories with the highest train frequency f(c) = #train scenes holding c;
    adversarial  the absent categories with the highest co-occurrence score
                 a(c) = sum_{p in present} C[p, c],  C = study.world.scenes.cooccurrence(train scenes),
                 i.e. C[p, c] = P(c present | p present) on train.

Ranking ties break by the category order of the spec. Randomness comes from a generator seeded by
(seed, crc32(scene_id)), so the positives are the same for every split type and an item does not
depend on which other scenes are evaluated. Prompt: ``existence_qa(category, present)[0]``.

Parsing (POPE ``evaluate.py``): keep the text before the first ``.``; the answer is "no" iff that
part contains the token ``no`` or ``not`` (tokens as in :func:`study.eval.mentions.tokenize`, so ``No``
and ``no,`` count too), else "yes". An empty answer is therefore "yes", as in POPE.

Metrics, positive class = yes: accuracy = (TP+TN)/N, precision = TP/(TP+FP) (0.0 when nothing is
predicted yes), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN) (= 2PR/(P+R); 0.0 when TP = 0),
yes_ratio = #yes predictions / N.
"""

from __future__ import annotations

import zlib

import numpy as np

from study.eval.bootstrap import ratio
from study.eval.mentions import tokenize
from study.world.language import existence_qa
from study.world.scenes import Scene, cooccurrence
from study.world.spec import WorldSpec

SPLIT_TYPES = ("random", "popular", "adversarial")


def scene_rng(seed: int, scene_id: str, stream: int) -> np.random.Generator:
    """A generator for one scene and one purpose, independent of the other scenes."""
    return np.random.default_rng([seed, zlib.crc32(scene_id.encode()), stream])


def train_statistics(spec: WorldSpec, train_scenes: list[Scene]) -> tuple[np.ndarray, np.ndarray]:
    """``(frequency, C)``: #train scenes holding each category, and the co-occurrence matrix."""
    cats = spec.category_names
    freq = np.array([sum(c in s.categories for s in train_scenes) for c in cats], dtype=float)
    return freq, cooccurrence(train_scenes, cats)


def _top(candidates: list[str], score: dict[str, float], order: dict[str, int], k: int) -> list[str]:
    return sorted(candidates, key=lambda c: (-score[c], order[c]))[:k]


def pope_questions(
    spec: WorldSpec,
    scene: Scene,
    split_type: str,
    *,
    frequency: np.ndarray,
    cooc: np.ndarray,
    n_pos: int = 3,
    seed: int = 0,
) -> list[dict]:
    """The scene's POPE questions: ``[{"object", "label", "prompt"}]``, positives first."""
    if split_type not in SPLIT_TYPES:
        raise ValueError(f"split_type must be one of {SPLIT_TYPES}, got {split_type!r}")
    cats = spec.category_names
    order = {c: i for i, c in enumerate(cats)}
    present = [c for c in cats if c in scene.categories]
    absent = [c for c in cats if c not in scene.categories]
    k = min(n_pos, len(present))
    pos = [present[i] for i in sorted(scene_rng(seed, scene.scene_id, 0).choice(len(present), k, replace=False))]
    k_neg = min(k, len(absent))
    if split_type == "random":
        idx = scene_rng(seed, scene.scene_id, 1).choice(len(absent), k_neg, replace=False)
        neg = [absent[i] for i in sorted(idx)]
    elif split_type == "popular":
        neg = _top(absent, {c: frequency[order[c]] for c in absent}, order, k_neg)
    else:
        pidx = [order[c] for c in present]
        neg = _top(absent, {c: float(cooc[pidx, order[c]].sum()) for c in absent}, order, k_neg)
    return [{"object": c, "label": "yes", "prompt": existence_qa(c, True)[0]} for c in pos] + [
        {"object": c, "label": "no", "prompt": existence_qa(c, False)[0]} for c in neg
    ]


def pope_parse(answer: str) -> str:
    """POPE's rule: "no" iff the first sentence holds the token ``no`` or ``not``; else "yes"."""
    first = answer.split(".")[0]
    return "no" if any(t in ("no", "not") for t in tokenize(first)) else "yes"


def pope_stats(answer: str, label: str) -> dict[str, int]:
    """Confusion-matrix counts of one question (positive class = yes)."""
    if label not in ("yes", "no"):
        raise ValueError(f"POPE label must be 'yes' or 'no', got {label!r}")
    pred_yes, is_yes = pope_parse(answer) == "yes", label == "yes"
    return {
        "n": 1,
        "tp": int(pred_yes and is_yes),
        "fp": int(pred_yes and not is_yes),
        "fn": int(not pred_yes and is_yes),
        "tn": int(not pred_yes and not is_yes),
        "pred_yes": int(pred_yes),
    }


POPE_METRICS = {
    "accuracy": lambda s: ratio(s["tp"] + s["tn"], s["n"]),
    "precision": lambda s: ratio(s["tp"], s["tp"] + s["fp"]),
    "recall": lambda s: ratio(s["tp"], s["tp"] + s["fn"]),
    "f1": lambda s: ratio(2 * s["tp"], 2 * s["tp"] + s["fp"] + s["fn"]),
    "yes_ratio": lambda s: ratio(s["pred_yes"], s["n"]),
}
