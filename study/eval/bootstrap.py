"""Percentile bootstrap confidence intervals for ratio-of-sums metrics.

Every metric of :mod:`study.eval` is written as a function of *column sums* of per-item statistics,
e.g. CHAIR_i = sum(hallucinated) / sum(mentions), accuracy = sum(correct) / sum(n). A metric function
``metric_fn(sums) -> value`` receives ``{stat: sum}`` where each sum is a float (point estimate) or an
array of shape ``(B,)`` (one entry per bootstrap replicate), and must broadcast over it.

Resampling unit. With ``groups`` (e.g. the items' scene ids) the statistics are first summed within
each group and the *groups* are resampled with replacement (a cluster bootstrap: the 6 POPE questions
of a scene move together). Because the metrics are ratios of sums this is exact. Without ``groups``
every item is its own group.

Replicate b draws G groups uniformly with replacement (multiplicities ``w_b ~ Multinomial(G, 1/G)``),
computes ``S_b = w_b @ X`` (X: groups x stats) and ``theta_b = metric_fn(S_b)``. The interval is the
``[(1 - level)/2, (1 + level)/2]`` percentiles of ``theta_1..theta_B``. The same seed gives the same
replicates, so metrics of one suite (and of two models scored on the same items) are paired.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

MetricFn = Callable[[Mapping[str, np.ndarray | float]], np.ndarray | float]
_CHUNK_CELLS = 4_000_000  # replicates x groups per chunk of multiplicities (bounded memory)


def ratio(num, den):
    """``num / den`` element-wise, defined as 0.0 where ``den == 0`` (scalar in, float out)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return float(out) if out.ndim == 0 else out


def stack_stats(rows: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """List of per-item stat dicts (same keys) -> ``{stat: array over items}``."""
    keys = sorted({k for r in rows for k in r})
    return {k: np.array([float(r.get(k, 0.0)) for r in rows]) for k in keys}


def _group_matrix(stats: Mapping[str, np.ndarray], groups: Sequence | None) -> tuple[list[str], np.ndarray]:
    keys = sorted(stats)
    n = len(next(iter(stats.values()))) if stats else 0
    x = np.column_stack([np.asarray(stats[k], dtype=float) for k in keys]) if keys else np.zeros((n, 0))
    if groups is None:
        return keys, x
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} items")
    _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    g = np.zeros((int(inv.max()) + 1 if n else 0, len(keys)))
    np.add.at(g, inv, x)
    return keys, g


def resampled_sums(
    stats: Mapping[str, np.ndarray], n_boot: int, seed: int, groups: Sequence | None = None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Column sums of the data (point) and of ``n_boot`` group-level resamples (each shape ``(B,)``)."""
    keys, x = _group_matrix(stats, groups)
    point = {k: float(v) for k, v in zip(keys, x.sum(axis=0))}
    g = len(x)
    if g == 0 or n_boot <= 0:
        return point, {k: np.full(max(n_boot, 0), point[k]) for k in keys}
    rng = np.random.default_rng(seed)
    sums = np.empty((n_boot, len(keys)))
    chunk = max(1, _CHUNK_CELLS // g)
    p = np.full(g, 1.0 / g)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        sums[start : start + b] = rng.multinomial(g, p, size=b) @ x
    return point, {k: sums[:, i] for i, k in enumerate(keys)}


def _interval(boot: np.ndarray, point: float, level: float) -> tuple[float, float]:
    if boot.size == 0:
        return point, point
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_ci(
    per_item_stats: Mapping[str, np.ndarray],
    metric_fn: MetricFn,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence | None = None,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(point, lo, hi)``: the metric on all items and its percentile bootstrap interval.

    With no items the point is ``metric_fn`` of zero sums (0.0 for :func:`ratio` metrics) and the
    interval collapses onto it.
    """
    point_sums, boot_sums = resampled_sums(per_item_stats, n_boot, seed, groups)
    point = float(metric_fn(point_sums))
    return (point, *_interval(np.asarray(metric_fn(boot_sums), dtype=float), point, level))


def bootstrap_table(
    per_item_stats: Mapping[str, np.ndarray],
    metric_fns: Mapping[str, MetricFn],
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence | None = None,
    level: float = 0.95,
) -> dict[str, dict]:
    """``{name: {"value": point, "ci95": [lo, hi]}}`` for several metrics on the *same* replicates."""
    point_sums, boot_sums = resampled_sums(per_item_stats, n_boot, seed, groups)
    out = {}
    for name, fn in metric_fns.items():
        point = float(fn(point_sums))
        lo, hi = _interval(np.asarray(fn(boot_sums), dtype=float), point, level)
        out[name] = {"value": point, "ci95": [lo, hi]}
    return out
