"""Combine the metrics of one alignment run trained with several seeds.

Every metric leaf of the evaluation layout is ``{"value": v, "ci95": [lo, hi]}``. For n seeds with values
v_1..v_n the combined leaf is

    value = mean_k v_k
    ci95  = value -/+ t_{0.975, n-1} * s / sqrt(n),     s = sample std of v_1..v_n     (n >= 2)

i.e. a 95 % Student-t interval over training seeds: it measures how much the aligned model moves when
only the training seed changes (the spread the paper's single runs cannot show). With one seed the
seed's own scene-bootstrap CI is kept. ``per_seed`` lists v_1..v_n, ``ci95_scenes`` the scene-bootstrap
interval of the seed-mean (the mean of the seeds' interval ends: a summary, not a new bootstrap).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from scipy import stats


def _is_leaf(d) -> bool:
    return isinstance(d, Mapping) and "value" in d and "ci95" in d


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of a Student-t interval; needs at least two values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        raise ValueError("a t interval needs at least two values")
    m, s = float(v.mean()), float(v.std(ddof=1))
    h = float(stats.t.ppf(0.5 + level / 2, len(v) - 1)) * s / math.sqrt(len(v))
    return m, m - h, m + h


def _combine(leaves: list[dict]) -> dict:
    vals = [float(x["value"]) for x in leaves]
    if len(leaves) == 1:
        return {**leaves[0], "per_seed": vals}
    m, lo, hi = t_interval(vals)
    scenes = [float(np.mean([x["ci95"][i] for x in leaves])) for i in (0, 1)]
    return {"value": m, "ci95": [lo, hi], "per_seed": vals, "ci95_scenes": scenes}


def _walk(items: list[dict]) -> dict:
    out = {}
    for key in items[0]:
        parts = [it[key] for it in items if key in it]
        if len(parts) != len(items):
            continue  # a metric some seed lacks is left out rather than averaged over fewer seeds
        if _is_leaf(parts[0]):
            out[key] = _combine(parts)
        elif isinstance(parts[0], Mapping):
            out[key] = _walk(parts)
    return out


def aggregate_seeds(per_seed: Mapping[int, dict]) -> dict:
    """One metrics JSON (same layout as a single run's) from ``{seed: metrics}``; see the module docstring.

    ``_meta`` comes from the first seed with ``seeds`` and ``seed_ci_method`` added; ``train`` holds the
    mean of every numeric training statistic and ``train_per_seed`` the raw ones.
    """
    if not per_seed:
        raise ValueError("no seeds to aggregate")
    seeds = list(per_seed)
    items = [per_seed[s] for s in seeds]
    out = _walk([{k: v for k, v in it.items() if k not in ("_meta", "train")} for it in items])
    meta = dict(items[0].get("_meta", {}))
    meta.pop("seed", None)
    meta["seeds"] = seeds
    meta["seed_ci_method"] = (
        "Student-t 95% over training seeds" if len(seeds) > 1 else "single seed: scene bootstrap (see ci_method)"
    )
    out["_meta"] = meta
    trains = [it.get("train", {}) for it in items]
    numeric = [
        k
        for k, v in trains[0].items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and all(isinstance(t.get(k), (int, float)) for t in trains)
    ]
    out["train"] = {
        **{k: v for k, v in trains[0].items() if k not in numeric},
        **{k: float(np.mean([t[k] for t in trains])) for k in numeric},
    }
    out["train_per_seed"] = {str(s): t for s, t in zip(seeds, trains)}
    return out
