"""Answer the items with an injected model, score the answers with bootstrap CIs, write the results.

``score`` needs only the prediction rows (items + ``answer``), the scenes of their split and the world
spec, so anyone can recompute ``metrics.json`` from ``predictions.jsonl`` and ``scenes/{split}.jsonl``
(see ``study/eval/LAYOUT.md``); :func:`score_files` first checks that the file holds exactly the items the
scenes imply (:func:`check_predictions`). CIs resample *scenes* (every item of a scene moves together) with one
seed for every suite, so the metrics of a suite, and two models scored on the same items, are paired.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Mapping

from tqdm.auto import tqdm

from study import io
from study.eval.bootstrap import bootstrap_table, stack_stats
from study.eval.chair import CHAIR_METRICS, chair_stats
from study.eval.helpfulness import HELPFULNESS_METRICS, helpfulness_stats
from study.eval.pope import POPE_METRICS, pope_stats
from study.eval.suites import SUITES, build_items
from study.eval.typed_qa import TYPED_METRICS, typed_stats
from study.world.scenes import Scene
from study.world.spec import WorldSpec

AnswerFn = Callable[[list[str], list[str]], list[str]]
SUITE_METRICS = {
    "describe": {**CHAIR_METRICS, **HELPFULNESS_METRICS},
    "typed_qa": TYPED_METRICS,
    **{s: POPE_METRICS for s in SUITES if s.startswith("pope_")},
}
# the fields item_stats reads besides item_id, suite, scene_id and answer
ROW_FIELDS = {
    "describe": (),
    "typed_qa": ("qtype", "object", "expected"),
    **{s: ("label",) for s in SUITES if s.startswith("pope_")},
}


class PredictionsError(ValueError):
    """Prediction rows that are not exactly the items their scenes imply, or that hold a malformed row."""


def run_predictions(items: list[dict], answer_fn: AnswerFn, batch_size: int = 32, progress: bool = True) -> list[dict]:
    """Copies of ``items`` with ``answer`` = the raw text ``answer_fn(scene_ids, prompts)`` returned."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="answer", disable=not progress, mininterval=2):
        batch = items[start : start + batch_size]
        answers = answer_fn([it["scene_id"] for it in batch], [it["prompt"] for it in batch])
        if len(answers) != len(batch):
            raise ValueError(f"answer_fn returned {len(answers)} answers for {len(batch)} prompts")
        out += [{**it, "answer": str(a)} for it, a in zip(batch, answers)]
    return out


def scene_index(scenes: Iterable[Scene | dict] | Mapping[str, Scene]) -> dict[str, Scene]:
    if isinstance(scenes, Mapping):
        return dict(scenes)
    objs = [s if isinstance(s, Scene) else Scene.from_dict(s) for s in scenes]
    return {s.scene_id: s for s in objs}


def item_stats(row: dict, scenes: Mapping[str, Scene], spec: WorldSpec) -> dict[str, int]:
    """The per-item statistics of one prediction row (summed by the suite's metric functions)."""
    suite, answer = row["suite"], row["answer"]
    if suite == "describe":
        if row["scene_id"] not in scenes:
            raise KeyError(f"{row['item_id']}: scene {row['scene_id']!r} is not in the scenes given to score()")
        scene = scenes[row["scene_id"]]
        return {**chair_stats(answer, scene, spec), **helpfulness_stats(answer, scene, spec)}
    if suite == "typed_qa":
        return typed_stats(row["qtype"], answer, row["expected"], row["object"], spec)
    if suite in SUITE_METRICS:
        return pope_stats(answer, row["label"])
    raise ValueError(f"{row.get('item_id')}: unknown suite {suite!r}")


def score(
    predictions: list[dict],
    scenes: Iterable[Scene | dict] | Mapping[str, Scene],
    spec: WorldSpec,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """``{suite: {metric: {"value", "ci95": [lo, hi]}}}`` for every suite present, plus ``_meta``.

    Scores the rows it is given (e.g. :func:`run_predictions`' output, or one suite of it) without checking
    that they are complete; rows read from elsewhere go through :func:`check_predictions` first, as in
    :func:`score_files`.
    """
    unknown = {r["suite"] for r in predictions} - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites in predictions: {sorted(unknown)}")
    index = scene_index(scenes)
    out: dict = {}
    meta = {
        "n_items": {},
        "n_scenes": {},
        "n_boot": n_boot,
        "seed": seed,
        "resample_unit": "scene_id",
        "ci_method": "percentile, 95%",
    }
    for suite in [s for s in SUITES if any(r["suite"] == s for r in predictions)]:
        rows = [r for r in predictions if r["suite"] == suite]
        stats = stack_stats([item_stats(r, index, spec) for r in rows])
        groups = [r["scene_id"] for r in rows]
        out[suite] = bootstrap_table(stats, SUITE_METRICS[suite], n_boot=n_boot, seed=seed, groups=groups)
        meta["n_items"][suite] = len(rows)
        meta["n_scenes"][suite] = len(set(groups))
    out["_meta"] = meta
    return out


def implied_counts(
    spec: WorldSpec,
    scenes: Iterable[Scene | dict] | Mapping[str, Scene],
    n_pos: int = 3,
    suites: tuple[str, ...] = SUITES,
) -> Counter:
    """``{"{suite}:{scene_id}": number of items}`` that :func:`build_items` makes for ``scenes``.

    The train statistics and the item seed choose *which* POPE negatives and typed questions a scene gets,
    never how many (that depends on the spec, the scene and ``n_pos`` only), so the counts need neither:
    the scenes stand in for the train scenes here.
    """
    objs = list(scene_index(scenes).values())
    items = build_items(spec, objs, objs, n_pos=n_pos, suites=suites)
    return Counter(f"{it['suite']}:{it['scene_id']}" for it in items)


def check_predictions(
    rows: list,
    scenes: Iterable[Scene | dict] | Mapping[str, Scene],
    spec: WorldSpec,
    *,
    n_pos: int = 3,
    suites: tuple[str, ...] = SUITES,
    allow_partial: bool = False,
    source: str = "predictions",
) -> dict[str, int]:
    """Raise :class:`PredictionsError` (a ``ValueError``) unless ``rows`` are exactly the items that
    :func:`build_items` makes for ``scenes`` (with this ``n_pos`` and ``suites``); else return
    ``{"expected", "scored", "missing"}`` item counts.

    The rule, in order (``source`` starts every message; rows are numbered from 1 in file order):

    - no rows: ``"{source}: no predictions"``;
    - malformed rows (not an object; ``item_id``, ``suite``, ``scene_id`` or ``answer`` not a string, e.g. a
      null answer; a field the suite is graded on absent or null): named by row number and ``item_id``;
    - otherwise one error naming, per problem, its count and first 5 offenders: duplicate
      ``item_id`` (with its rows), extra items (a ``{suite}:{scene_id}`` with more items than its scene
      implies, e.g. an unknown scene, suite or POPE object; with their rows) and missing items
      (``{suite}:{scene_id}`` with fewer). Items are matched per ``{suite}:{scene_id}`` by count
      (:func:`implied_counts`): which POPE negatives a scene gets depends on train statistics the
      scorer does not have.

    ``allow_partial=True`` lets items be missing (never duplicates, extras or malformed rows).
    """
    if not rows:
        raise PredictionsError(f"{source}: no predictions")
    bad = [f"row {i}{_row_name(r)}: {why}" for i, r in enumerate(rows, 1) if (why := _malformed(r))]
    if bad:
        raise PredictionsError(f"{source}: {len(bad)} malformed row(s): {_few(bad)}")
    first: dict[str, int] = {}  # item_id -> first row
    dups: dict[str, list[int]] = {}
    given: dict[str, list[int]] = {}  # "{suite}:{scene_id}" -> rows of its distinct items
    for i, r in enumerate(rows, 1):
        if r["item_id"] in first:
            dups.setdefault(r["item_id"], [first[r["item_id"]]]).append(i)
        else:
            first[r["item_id"]] = i
            given.setdefault(f"{r['suite']}:{r['scene_id']}", []).append(i)
    implied = implied_counts(spec, scenes, n_pos=n_pos, suites=suites)
    extra = {g: v for g, v in given.items() if len(v) > implied[g]}
    missing = {g: n for g, n in implied.items() if len(given.get(g, ())) < n}
    problems = []
    if dups:
        problems.append(
            f"{len(dups)} duplicate item(s): " + _few([f"{k} (rows {', '.join(map(str, v))})" for k, v in dups.items()])
        )
    if extra:
        problems.append(
            f"{sum(len(v) - implied[g] for g, v in extra.items())} extra item(s), not implied by the "
            f"scenes (n_pos={n_pos}): "
            + _few(
                [f"{g} (got {len(v)}, implied {implied[g]}; rows {', '.join(map(str, v))})" for g, v in extra.items()]
            )
        )
    n_missing = sum(n - len(given.get(g, ())) for g, n in missing.items())
    if missing and not allow_partial:
        problems.append(
            f"{n_missing} missing item(s) of the {sum(implied.values())} the scenes imply "
            f"(n_pos={n_pos}; allow_partial=True scores the rest): "
            + _few([f"{g} (got {len(given.get(g, ()))}, implied {n})" for g, n in missing.items()])
        )
    if problems:
        raise PredictionsError(f"{source}: " + "; ".join(problems))
    return {"expected": sum(implied.values()), "scored": len(rows), "missing": n_missing}


def _malformed(row) -> str | None:
    if not isinstance(row, dict):
        return f"not a JSON object (a {type(row).__name__})"
    for k in ("item_id", "suite", "scene_id", "answer"):
        if not isinstance(row.get(k), str):
            return f"`{k}` must be a string, got {_json_type(row[k])}" if k in row else f"no `{k}`"
    absent = [k for k in ROW_FIELDS.get(row["suite"], ()) if row.get(k) is None]
    return f"no {', '.join(f'`{k}`' for k in absent)} (or null)" if absent else None


def _row_name(row) -> str:
    return f" ({row['item_id']})" if isinstance(row, dict) and isinstance(row.get("item_id"), str) else ""


def _json_type(v) -> str:
    return (
        "null"
        if v is None
        else {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}.get(
            type(v), type(v).__name__
        )
    )


def _few(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names) - k} more)" if len(names) > k else "")


def score_files(
    predictions_path: str | Path,
    scenes_path: str | Path,
    spec: WorldSpec,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    n_pos: int = 3,
    suites: tuple[str, ...] = SUITES,
    allow_partial: bool = False,
) -> dict:
    """:func:`score` from ``predictions.jsonl`` and ``scenes/{split}.jsonl`` (the scenes evaluated, e.g. the
    results' own ``scenes.jsonl``), after :func:`check_predictions`: the file must hold every item
    :func:`build_items` makes for those scenes (``n_pos``, ``suites``: as they were built), once each, and
    nothing else, or a :class:`PredictionsError` names the file and the offending items or rows.

    ``allow_partial=True`` (exploration only) scores a file with missing items and says so in
    ``metrics["partial"] = {"expected": N, "scored": M, "missing": N - M}`` (item counts; present whenever
    ``allow_partial`` is set). Strict scoring adds no key: a complete file gives :func:`score`'s metrics.
    """
    rows, scenes = io.read_jsonl(predictions_path), io.read_jsonl(scenes_path)
    counts = check_predictions(
        rows, scenes, spec, n_pos=n_pos, suites=suites, allow_partial=allow_partial, source=str(predictions_path)
    )
    metrics = score(rows, scenes, spec, n_boot=n_boot, seed=seed)
    if allow_partial:
        metrics["partial"] = counts
    return metrics


def write_results(out_dir: str | Path, predictions: list[dict], metrics: dict) -> None:
    """Write ``predictions.jsonl`` and ``metrics.json`` under ``out_dir`` (each file atomically)."""
    out_dir = Path(out_dir)
    io.write_jsonl(out_dir / "predictions.jsonl", predictions)
    io.write_json(out_dir / "metrics.json", metrics)
