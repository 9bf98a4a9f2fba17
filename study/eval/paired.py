"""Paired comparison of two models scored on the same evaluation items.

Every model of the study answers the same items (same split, scenes and prompts: the evaluation seed is
the study seed). For a metric M of one suite (a function of column sums of per-item statistics, see
:mod:`study.eval.bootstrap`), models A and B may each come from several *draws* s of the SFT model (the main
SFT model and the further ones of the ``sft_seeds`` stage; an aligned model's draw is the SFT model it was
trained from) and, within a draw, several training seeds j. Over the draws S both models have,

    Delta_s = mean_j M(A_sj) - mean_j M(B_sj)          Delta = mean_{s in S} Delta_s

(one draw: Delta = mean_j M(A_j) - mean_j M(B_j)). Each aligned model is thus compared with its own SFT model,
never with another draw's. The 95 % interval of Delta comes from ONE cluster bootstrap over scenes shared by
every model, draw and seed: a replicate draws scene multiplicities w once and evaluates every M(.) on the same
w. Scene-to-scene variation common to both models cancels, so the paired interval is much narrower than
comparing the two models' separate intervals. ``per_draw`` holds each Delta_s (point values).

Verdict (:func:`verdict`): "better"/"worse" when the interval excludes 0 (sign by the metric's direction) and,
with two or more draws, every Delta_s lies on the same side of 0 (a claim must hold on each SFT draw, not only
on their mean); else "not resolved". Seed-to-seed spread within a draw is not part of the interval (it is in
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


def _by_draw(x) -> dict:
    """``{draw: [rows of each training seed]}`` from either that mapping or a list (one draw, 0)."""
    return {k: list(v) for k, v in x.items()} if isinstance(x, Mapping) else {0: list(x)}


def paired_difference(
    a: Sequence[list[dict]] | Mapping[int, Sequence[list[dict]]],
    b: Sequence[list[dict]] | Mapping[int, Sequence[list[dict]]],
    scenes,
    spec,
    suite: str,
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """``{"delta", "ci95", "n_items", "draws", "per_draw"}`` for Delta = M(A) - M(B) (module docstring).

    ``a``/``b``: the prediction rows of each training seed of the two models, as a list (one SFT draw) or as
    ``{draw: [rows of each seed]}``; only the draws both have are compared (none in common raises
    ``ValueError``). Items are matched on ``item_id``; an item missing from any seed raises ``ValueError``
    naming it.
    """
    fn = SUITE_METRICS[suite][metric]
    index = scene_index(scenes)
    da, db = _by_draw(a), _by_draw(b)
    draws = [s for s in da if s in db]
    if not draws:
        raise ValueError(f"no SFT draw in common: model a has {sorted(da)}, model b {sorted(db)}")
    runs = [("a", d, k, rows) for d in draws for k, rows in enumerate(da[d])]
    runs += [("b", d, k, rows) for d in draws for k, rows in enumerate(db[d])]
    by_id = [{r["item_id"]: r for r in rows if r["suite"] == suite} for *_, rows in runs]
    ids = list(by_id[0])
    if not ids:
        raise ValueError(f"no items of suite {suite!r}")
    for (side, d, k, _), m in zip(runs, by_id):
        missing = [i for i in ids if i not in m]
        if missing or len(m) != len(ids):
            raise ValueError(f"model {side} draw {d} seed {k}: items differ from the first run's (e.g. {missing[:1]})")
    stats: dict[str, np.ndarray] = {}
    for j, m in enumerate(by_id):
        for name, col in stack_stats([item_stats(m[i], index, spec) for i in ids]).items():
            stats[f"{j}:{name}"] = col
    groups = [by_id[0][i]["scene_id"] for i in ids]

    def draw_deltas(sums: Mapping[str, np.ndarray | float]) -> list:
        vals: dict = {}
        for j, (side, d, _, _) in enumerate(runs):
            pre = f"{j}:"
            vals.setdefault((side, d), []).append(fn({k[len(pre) :]: v for k, v in sums.items() if k.startswith(pre)}))
        return [np.mean(vals[("a", d)], axis=0) - np.mean(vals[("b", d)], axis=0) for d in draws]

    point, lo, hi = bootstrap_ci(
        stats, lambda sums: np.mean(draw_deltas(sums), axis=0), n_boot=n_boot, seed=seed, groups=groups
    )
    totals = {k: v.sum(axis=0) for k, v in stats.items()}
    per_draw = {d: float(x) for d, x in zip(draws, draw_deltas(totals))}
    return {"delta": point, "ci95": [lo, hi], "n_items": len(ids), "draws": draws, "per_draw": per_draw}


def verdict(diff: dict, higher_is_better: bool) -> str:
    """'better' / 'worse' (for model A) when the paired interval excludes 0 and, with two or more SFT draws,
    every draw's own difference (``per_draw``) lies on that side of 0; else 'not resolved'."""
    lo, hi = diff["ci95"]
    per_draw = list(diff.get("per_draw", {}).values())
    per_draw = per_draw if len(per_draw) >= 2 else []  # one draw: the interval alone, as before draws existed
    if lo > 0 and all(x > 0 for x in per_draw):
        return "better" if higher_is_better else "worse"
    if hi < 0 and all(x < 0 for x in per_draw):
        return "worse" if higher_is_better else "better"
    return "not resolved"
