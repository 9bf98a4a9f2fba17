"""How a benchmark's items become suites and metrics: the one place the scorers and the paired comparison share.

A *plan* is ``{suite: (row indices, per-item statistics function, metric functions)}``: the rows of a suite,
the statistics of one row (a mapping of numbers that :func:`study.eval.bootstrap.stack_stats` stacks), and the
metrics as functions of their column sums. Each benchmark builds its plan once (``pope_plan``, ``amber_plan``,
``halbench_plan``); :func:`score_by_plan` scores it with image-level bootstrap CIs (the benchmark's score),
:mod:`study.bench.paired` compares two models under the same plan.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from study.eval.bootstrap import MetricFn, bootstrap_table, stack_stats

StatFn = Callable[[dict], Mapping[str, float]]
Plan = dict[str, tuple[list[int], StatFn, Mapping[str, MetricFn]]]


def score_by_plan(rows: Sequence[dict], plan: Plan, *, n_boot: int, seed: int) -> dict:
    """``{suite: {metric: {"value", "ci95"}}}``: each suite's metrics with 95 % CIs resampling images
    (``scene_id``, the image file)."""
    return {
        suite: bootstrap_table(
            stack_stats([stat(rows[i]) for i in idx]),
            metrics,
            n_boot=n_boot,
            seed=seed,
            groups=[rows[i]["scene_id"] for i in idx],
        )
        for suite, (idx, stat, metrics) in plan.items()
    }
