"""Paired comparison of two checkpoints' results on the same real benchmark (POPE, AMBER, Object-HalBench).

Both results directories are ``python -m study.bench`` output for one benchmark (``predictions.jsonl`` +
``metrics.json``, :mod:`study.bench.runner`). Model A (the aligned checkpoint; seeds a_1..a_n, one results
directory each) and model B (the reference; seeds b_1..b_m) must have answered the same items: rows are
matched on ``item_id``, and an item missing on either side, or carrying another image or label there, is an
error naming it. For every metric M that the benchmark's scorer reports for a suite (a function of column
sums of per-item statistics, :mod:`study.eval.bootstrap`), the difference is

    Delta = mean_k M(A_k) - mean_j M(B_j)

and its 95 % interval comes from ONE cluster bootstrap over the images, which both sides share: a replicate
draws image multiplicities w once (``w ~ Multinomial(G, 1/G)`` over the G images of the suite) and evaluates
every M(.) of both models on the same w; the interval is the 2.5th and 97.5th percentiles of the replicated
Deltas. This is :mod:`study.eval.paired`'s design with images in place of scenes. Image-to-image variation
common to both models cancels, so where the two models err on the same images the paired interval is much
narrower than the two results' separate CIs.
Seed-to-seed spread is not part of it (with one directory per side there is none to measure).

Suites, per-item statistics and metric formulas are the scorers' own: each benchmark's plan
(:mod:`study.bench.plan`; ``pope_plan``, ``amber_plan``, ``halbench_plan``), which its scorer scores too, so a
metric has one definition. Each side's recomputed value must equal its ``metrics.json`` value (else the
ground-truth files or the scorer differ from those the results were scored with, and that is an error).
AMBER's generative suite and Object-HalBench need their ground truth (AMBER's ``data/``, COCO's instances
and captions), which the results directory does not hold; POPE and AMBER's discriminative suites do not.

Verdict (:func:`study.eval.paired.verdict`): "better"/"worse" for A when the interval excludes 0, the sign
read through the metric's direction (:data:`HIGHER_IS_BETTER`), else "not resolved"; a metric without a
direction (``yes_ratio``, ``length``) gets "n/a".
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from study.bench.amber import amber_plan
from study.bench.files import BenchmarkFileError, read_json, read_json_lines, require_fields
from study.bench.halbench import halbench_plan
from study.bench.plan import Plan
from study.bench.pope_files import pope_plan
from study.eval.bootstrap import MetricFn, bootstrap_table, stack_stats
from study.eval.paired import verdict

BENCHMARKS = ("pope", "amber", "halbench")

# each metric's direction, stated once: True = higher is better for A, False = lower is better,
# None = no direction (reported with verdict "n/a")
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "accuracy": True,  # POPE, AMBER discriminative
    "precision": True,
    "recall": True,  # POPE, AMBER discriminative, Object-HalBench object recall
    "f1": True,
    "cover": True,  # AMBER generative
    "chair": False,  # AMBER generative
    "hal": False,
    "cog": False,
    "chair_i": False,  # Object-HalBench
    "chair_s": False,
    "yes_ratio": None,  # POPE: 0.5 is balanced, neither side of it is better
    "length": None,  # Object-HalBench words per answer
}
ROW_FIELDS = ("item_id", "suite", "scene_id", "answer")
SAME_ON_BOTH_SIDES = ("suite", "scene_id", "image", "label", "dimension", "amber_id")  # what defines an item
TOLERANCE = 1e-9  # recomputed vs metrics.json value (both are ratios of the same integer sums)


class Results:
    """One results directory of ``python -m study.bench``: its rows, metrics and benchmark name."""

    def __init__(self, path: str | Path):
        d = Path(path)
        if not d.is_dir():
            raise BenchmarkFileError(
                f"{d}: results directory not found; it should hold predictions.jsonl and metrics.json "
                "(python -m study.bench)"
            )
        pred = d / "predictions.jsonl"
        self.path = d
        self.rows: list[dict] = []
        seen: dict = {}
        for n, row in read_json_lines(pred, "one prediction row a line (python -m study.bench)"):
            require_fields(row, ROW_FIELDS, f"{pred}:{n}")
            if not isinstance(row["answer"], str):
                raise BenchmarkFileError(f"{pred}:{n}: answer must be a string, got {row['answer']!r}")
            if row["item_id"] in seen:
                raise BenchmarkFileError(f"{pred}:{n}: item_id {row['item_id']!r} repeats line {seen[row['item_id']]}")
            seen[row["item_id"]] = n
            self.rows.append(row)
        if not self.rows:
            raise BenchmarkFileError(f"{pred}: no prediction rows")
        self.metrics = read_json(d / "metrics.json", "the metrics of predictions.jsonl (python -m study.bench)")
        meta = self.metrics.get("_meta") if isinstance(self.metrics, dict) else None
        self.benchmark = meta.get("benchmark") if isinstance(meta, dict) else None
        if self.benchmark not in BENCHMARKS:
            raise BenchmarkFileError(
                f"{d / 'metrics.json'}: _meta.benchmark must be one of {list(BENCHMARKS)}, got {self.benchmark!r}"
            )

    @property
    def suites(self) -> list[str]:
        return list(dict.fromkeys(r["suite"] for r in self.rows))


def needs_truth(benchmark: str, rows: Sequence[dict]) -> bool:
    """Whether scoring ``rows`` needs ground truth that the results do not hold (AMBER generative, HalBench)."""
    if benchmark == "amber":
        return any(r["suite"] == "amber_generative" for r in rows)
    return benchmark == "halbench"


def suite_plan(benchmark: str, rows: Sequence[dict], truth=None) -> Plan:
    """The benchmark's own plan (:mod:`study.bench.plan`: the suites, statistics and metrics its scorer uses).
    ``truth``: :class:`~study.bench.amber.AmberData` for AMBER's generative suite, ``{image file: COCO
    categories}`` for Object-HalBench, else unused."""
    if benchmark == "pope":
        return pope_plan(rows)
    if benchmark == "amber":
        return amber_plan(rows, truth)
    if benchmark == "halbench":
        if not isinstance(truth, Mapping):
            raise ValueError(
                "Object-HalBench needs the COCO ground truth ({image file: categories}, halbench.ground_truth)"
            )
        return halbench_plan(rows, truth)
    raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")


def align_runs(a: Sequence[Sequence[dict]], b: Sequence[Sequence[dict]]) -> list[list[dict]]:
    """Every run's rows in the order of A's first run, after checking that all runs hold the same items.

    An item of one run that another lacks, or that has another image, suite or label there, raises
    ``ValueError`` naming the item (the first such, in file order)."""
    runs = [(f"A run {k}", rows) for k, rows in enumerate(a)] + [(f"B run {k}", rows) for k, rows in enumerate(b)]
    if not a or not b:
        raise ValueError("need at least one run of A and one of B")
    ref_name, ref = runs[0]
    ref_ids = {r["item_id"]: r for r in ref}
    out = []
    for name, rows in runs:
        by_id = {r["item_id"]: r for r in rows}
        if len(by_id) != len(rows):
            raise ValueError(f"{name}: an item_id repeats")
        for r in ref:
            if r["item_id"] not in by_id:
                raise ValueError(f"item {r['item_id']!r} of {ref_name} is missing from {name}")
        for r in rows:
            if r["item_id"] not in ref_ids:
                raise ValueError(f"item {r['item_id']!r} of {name} is missing from {ref_name}")
            for f in SAME_ON_BOTH_SIDES:
                if r.get(f) != ref_ids[r["item_id"]].get(f):
                    raise ValueError(
                        f"item {r['item_id']!r}: {f} is {r.get(f)!r} in {name} but "
                        f"{ref_ids[r['item_id']].get(f)!r} in {ref_name}: not the same benchmark files"
                    )
        out.append([by_id[r["item_id"]] for r in ref])
    return out


def _side_mean(fn: MetricFn, runs: Sequence[int]) -> MetricFn:
    """M averaged over the runs ``runs`` of the prefixed statistics ``{"<run>:<stat>": sum}``."""

    def mean(sums: Mapping[str, np.ndarray | float]):
        vals = []
        for j in runs:
            pre = f"{j}:"
            vals.append(fn({k[len(pre) :]: v for k, v in sums.items() if k.startswith(pre)}))
        return np.mean(vals, axis=0)

    return mean


def paired_table(
    a: Sequence[Sequence[dict]],
    b: Sequence[Sequence[dict]],
    benchmark: str,
    truth=None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """``{suite: {metric: {"a", "b", "delta", "ci95", "higher_is_better", "verdict", "a_runs", "b_runs",
    "n_items", "n_images"}}}`` for Delta = M(A) - M(B) (module docstring).

    ``a``/``b``: the prediction rows of each run (seed) of the two models; ``truth`` as for :func:`suite_plan`.
    All metrics of a suite and both models share one set of image-level replicates."""
    runs = align_runs(a, b)
    n_a = len(a)
    plan = suite_plan(benchmark, runs[0], truth)
    out: dict[str, dict[str, dict]] = {}
    for suite, (idx, stat_fn, metric_fns) in plan.items():
        stats: dict[str, np.ndarray] = {}
        for j, rows in enumerate(runs):
            for name, col in stack_stats([stat_fn(rows[i]) for i in idx]).items():
                stats[f"{j}:{name}"] = col
        groups = [runs[0][i]["scene_id"] for i in idx]
        fns: dict[str, MetricFn] = {}
        for m, fn in metric_fns.items():
            side_a, side_b = _side_mean(fn, range(n_a)), _side_mean(fn, range(n_a, len(runs)))
            fns[f"{m}\tdelta"] = lambda s, fa=side_a, fb=side_b: fa(s) - fb(s)
            for j in range(len(runs)):
                fns[f"{m}\trun{j}"] = _side_mean(fn, [j])
        table = bootstrap_table(stats, fns, n_boot=n_boot, seed=seed, groups=groups)
        out[suite] = {}
        for m in metric_fns:
            d = table[f"{m}\tdelta"]
            per_run = [table[f"{m}\trun{j}"]["value"] for j in range(len(runs))]
            hib = HIGHER_IS_BETTER[m]
            diff = {"delta": d["value"], "ci95": d["ci95"]}
            out[suite][m] = {
                "a": float(np.mean(per_run[:n_a])),
                "b": float(np.mean(per_run[n_a:])),
                **diff,
                "higher_is_better": hib,
                "verdict": "n/a" if hib is None else verdict(diff, hib),
                "a_runs": per_run[:n_a],
                "b_runs": per_run[n_a:],
                "n_items": len(idx),
                "n_images": len(set(groups)),
            }
    return out


def check_comparable(results: Sequence[Results]) -> str:
    """The one benchmark of ``results``; two benchmarks, or two sets of suites, raise ``ValueError``."""
    first = results[0]
    for r in results[1:]:
        if r.benchmark != first.benchmark:
            raise ValueError(
                f"{r.path} holds {r.benchmark} results but {first.path} holds {first.benchmark}: "
                "compare results of the same benchmark"
            )
        if set(r.suites) != set(first.suites):
            raise ValueError(f"{r.path} holds suites {r.suites} but {first.path} holds {first.suites}")
    return first.benchmark


def compare_results(
    a: Sequence[Results], b: Sequence[Results], truth=None, *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """:func:`paired_table` of loaded results directories, after checking that they are one benchmark's, hold
    the same suites, and that each run's recomputed values are its ``metrics.json`` values."""
    if not a or not b:
        raise ValueError("need at least one results directory of A and one of B")
    every = [*a, *b]
    bench = check_comparable(every)
    table = paired_table([r.rows for r in a], [r.rows for r in b], bench, truth, n_boot=n_boot, seed=seed)
    for suite, metrics in table.items():
        for m, row in metrics.items():
            for res, value in zip(every, row["a_runs"] + row["b_runs"]):
                stored = res.metrics.get(suite, {}).get(m, {}).get("value")
                if stored is None or abs(stored - value) > TOLERANCE:
                    raise ValueError(
                        f"{res.path / 'metrics.json'}: {suite} {m} is {stored!r} but its predictions score "
                        f"{value!r} here: the ground-truth files or the scorer differ from those it was scored "
                        "with (rescore it with python -m study.bench)"
                    )
    return {
        "benchmark": bench,
        "a": [str(r.path) for r in a],
        "b": [str(r.path) for r in b],
        "n_boot": n_boot,
        "seed": seed,
        "resample_unit": "image",
        "ci_method": "percentile, 95%, paired cluster bootstrap over images",
        "suites": table,
    }


def markdown(result: dict) -> str:
    """The comparison as a Markdown table: suite, metric, A, B, Delta, 95 % CI, verdict."""
    lines = [
        f"{result['benchmark']}: A = {', '.join(result['a'])}; B = {', '.join(result['b'])}; "
        f"paired bootstrap over images, {result['n_boot']} replicates, seed {result['seed']}",
        "",
        "| suite | metric | A | B | Delta | 95 % CI | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for suite, metrics in result["suites"].items():
        for m, r in metrics.items():
            lo, hi = r["ci95"]
            lines.append(
                f"| {suite} | {m} | {r['a']:.4f} | {r['b']:.4f} | {r['delta']:+.4f} | [{lo:+.4f}, {hi:+.4f}] "
                f"| {r['verdict']} |"
            )
    return "\n".join(lines)
