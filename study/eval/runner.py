"""Answer the items with an injected model, score the answers with bootstrap CIs, write the results.

``score`` needs only the prediction rows (items + ``answer``), the scenes of their split and the world
spec, so anyone can recompute ``metrics.json`` from ``predictions.jsonl`` and ``scenes/{split}.jsonl``
(see ``study/eval/LAYOUT.md``). CIs resample *scenes* (every item of a scene moves together) with one
seed for every suite, so the metrics of a suite, and two models scored on the same items, are paired.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

from tqdm.auto import tqdm

from study import io
from study.eval.bootstrap import bootstrap_table, stack_stats
from study.eval.chair import CHAIR_METRICS, chair_stats
from study.eval.helpfulness import HELPFULNESS_METRICS, helpfulness_stats
from study.eval.pope import POPE_METRICS, pope_stats
from study.eval.suites import SUITES
from study.eval.typed_qa import TYPED_METRICS, typed_stats
from study.world.scenes import Scene
from study.world.spec import WorldSpec

AnswerFn = Callable[[list[str], list[str]], list[str]]
SUITE_METRICS = {"describe": {**CHAIR_METRICS, **HELPFULNESS_METRICS}, "typed_qa": TYPED_METRICS,
                 **{s: POPE_METRICS for s in SUITES if s.startswith("pope_")}}


def run_predictions(items: list[dict], answer_fn: AnswerFn, batch_size: int = 32, progress: bool = True) -> list[dict]:
    """Copies of ``items`` with ``answer`` = the raw text ``answer_fn(scene_ids, prompts)`` returned."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="answer", disable=not progress, mininterval=2):
        batch = items[start:start + batch_size]
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


def score(predictions: list[dict], scenes: Iterable[Scene | dict] | Mapping[str, Scene], spec: WorldSpec,
          n_boot: int = 1000, seed: int = 0) -> dict:
    """``{suite: {metric: {"value", "ci95": [lo, hi]}}}`` for every suite present, plus ``_meta``."""
    unknown = {r["suite"] for r in predictions} - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites in predictions: {sorted(unknown)}")
    index = scene_index(scenes)
    out: dict = {}
    meta = {"n_items": {}, "n_scenes": {}, "n_boot": n_boot, "seed": seed, "resample_unit": "scene_id",
            "ci_method": "percentile, 95%"}
    for suite in [s for s in SUITES if any(r["suite"] == s for r in predictions)]:
        rows = [r for r in predictions if r["suite"] == suite]
        stats = stack_stats([item_stats(r, index, spec) for r in rows])
        groups = [r["scene_id"] for r in rows]
        out[suite] = bootstrap_table(stats, SUITE_METRICS[suite], n_boot=n_boot, seed=seed, groups=groups)
        meta["n_items"][suite] = len(rows)
        meta["n_scenes"][suite] = len(set(groups))
    out["_meta"] = meta
    return out


def score_files(predictions_path: str | Path, scenes_path: str | Path, spec: WorldSpec, n_boot: int = 1000,
                seed: int = 0) -> dict:
    """:func:`score` from ``predictions.jsonl`` and ``scenes/{split}.jsonl``."""
    return score(io.read_jsonl(predictions_path), io.read_jsonl(scenes_path), spec, n_boot=n_boot, seed=seed)


def write_results(out_dir: str | Path, predictions: list[dict], metrics: dict) -> None:
    """Write ``predictions.jsonl`` and ``metrics.json`` under ``out_dir`` (each file atomically)."""
    out_dir = Path(out_dir)
    io.write_jsonl(out_dir / "predictions.jsonl", predictions)
    io.write_json(out_dir / "metrics.json", metrics)
