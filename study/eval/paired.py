"""Paired comparison of two models scored on the same evaluation items.

Every model of the study answers the same items (same split, scenes and prompts: the evaluation seed is
the study seed). For a metric M of one suite (a function of column sums of per-item statistics, see
:mod:`study.eval.bootstrap`) and models A (seeds a_1..a_n) and B (seeds b_1..b_m), the difference is

    Delta = mean_k M(A_k) - mean_j M(B_j)

and its 95 % interval comes from ONE cluster bootstrap over scenes shared by every model and seed: a
replicate draws scene multiplicities w once and evaluates every M(.) on the same w. Scene-to-scene
variation common to both models cancels, so the paired interval is much narrower than comparing the two
models' separate intervals. Verdict: "better"/"worse" when the interval excludes 0 (sign by the
metric's direction), else "not resolved". Seed-to-seed spread is not part of this interval (it is in
each run's own seed CI, :mod:`study.eval.seeds`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from study import io
from study.eval.bootstrap import bootstrap_ci, stack_stats
from study.eval.runner import SUITE_METRICS, item_stats, scene_index


def load_predictions(eval_dir: str | Path) -> tuple[list[list[dict]], list[dict]]:
    """``([predictions of each seed], scenes)`` of one evaluated model.

    ``eval_dir`` holds ``predictions.jsonl`` + ``scenes.jsonl`` (SFT) or ``seed<k>/`` subdirectories with
    them (an alignment run).
    """
    d = Path(eval_dir)
    dirs = [d] if (d / "predictions.jsonl").is_file() else sorted(p for p in d.glob("seed*") if p.is_dir())
    if not dirs:
        raise FileNotFoundError(f"no predictions.jsonl under {d}")
    return [io.read_jsonl(x / "predictions.jsonl") for x in dirs], io.read_jsonl(dirs[0] / "scenes.jsonl")


def paired_difference(
    a: Sequence[list[dict]],
    b: Sequence[list[dict]],
    scenes,
    spec,
    suite: str,
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """``{"delta", "ci95", "n_items"}`` for Delta = M(A) - M(B) (module docstring).

    ``a``/``b``: the prediction rows of each seed of the two models. Items are matched on ``item_id``;
    an item missing from any seed raises ``ValueError`` naming it.
    """
    fn = SUITE_METRICS[suite][metric]
    index = scene_index(scenes)
    runs = [("a", k, rows) for k, rows in enumerate(a)] + [("b", k, rows) for k, rows in enumerate(b)]
    by_id = [{r["item_id"]: r for r in rows if r["suite"] == suite} for _, _, rows in runs]
    ids = list(by_id[0])
    if not ids:
        raise ValueError(f"no items of suite {suite!r}")
    for (side, k, _), m in zip(runs, by_id):
        missing = [i for i in ids if i not in m]
        if missing or len(m) != len(ids):
            raise ValueError(f"model {side} seed {k}: items differ from the first run's (e.g. {missing[:1]})")
    stats: dict[str, np.ndarray] = {}
    for j, ((side, k, _), m) in enumerate(zip(runs, by_id)):
        for name, col in stack_stats([item_stats(m[i], index, spec) for i in ids]).items():
            stats[f"{j}:{name}"] = col
    groups = [by_id[0][i]["scene_id"] for i in ids]
    sides = [side for side, _, _ in runs]

    def delta(sums: Mapping[str, np.ndarray | float]):
        vals = {"a": [], "b": []}
        for j, side in enumerate(sides):
            pre = f"{j}:"
            vals[side].append(fn({k[len(pre) :]: v for k, v in sums.items() if k.startswith(pre)}))
        return np.mean(vals["a"], axis=0) - np.mean(vals["b"], axis=0)

    point, lo, hi = bootstrap_ci(stats, delta, n_boot=n_boot, seed=seed, groups=groups)
    return {"delta": point, "ci95": [lo, hi], "n_items": len(ids)}


def verdict(diff: dict, higher_is_better: bool) -> str:
    """'better' / 'worse' (for model A) when the paired interval excludes 0, else 'not resolved'."""
    lo, hi = diff["ci95"]
    if lo > 0:
        return "better" if higher_is_better else "worse"
    if hi < 0:
        return "worse" if higher_is_better else "better"
    return "not resolved"
