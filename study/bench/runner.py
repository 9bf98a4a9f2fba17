"""Answer a real benchmark's items with any LLaVA-family model and write its results directory.

The results layout is the organism's (``study/eval/LAYOUT.md``): ``predictions.jsonl`` (one row per item,
with the raw ``answer``) and ``metrics.json`` (every metric with its 95 % bootstrap CI, resampling images),
plus, for yes/no suites, ``metrics["parser_sensitivity"]`` (:mod:`study.bench.parsers`). The directory is
built in a temporary sibling and swapped in whole (:func:`study.io.atomic_dir`), so an evaluation killed
part-way leaves the previous results or none, never a partial directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from PIL import Image
from tqdm.auto import tqdm

from study import io
from study.bench.parsers import DISAGREE_THRESHOLD, sensitivity_by_suite
from study.model.generate import generate

AnswerFn = Callable[[list[str], list[str]], list[str]]   # (image paths, prompts) -> raw answers


def model_answer_fn(model, processor, *, max_new_tokens: int, batch_size: int, seed: int = 0) -> AnswerFn:
    """Greedy answers of ``model`` to (image file, prompt) pairs; images are read as RGB."""
    def answer(paths: list[str], prompts: list[str]) -> list[str]:
        images = []
        for p in paths:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        return generate(model, processor, images, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        seed=seed)
    return answer


def answer_items(items: Sequence[dict], image_dir: str | Path, answer_fn: AnswerFn, *, batch_size: int = 16,
                 progress: bool = True) -> list[dict]:
    """Copies of ``items`` with ``answer`` set to ``answer_fn``'s raw text for the item's image and prompt."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="answer", disable=not progress, mininterval=2):
        batch = items[start:start + batch_size]
        answers = answer_fn([str(Path(image_dir) / it["image"]) for it in batch], [it["prompt"] for it in batch])
        if len(answers) != len(batch):
            raise ValueError(f"answer_fn returned {len(answers)} answers for {len(batch)} prompts")
        out += [{**it, "answer": str(a)} for it, a in zip(batch, answers)]
    return out


def with_parser_sensitivity(metrics: dict, rows: Sequence[dict], threshold: float = DISAGREE_THRESHOLD) -> dict:
    """``metrics`` plus ``parser_sensitivity`` for every suite of rows that carry a yes/no label."""
    table = sensitivity_by_suite(rows, threshold=threshold)
    return {**metrics, "parser_sensitivity": table} if table else dict(metrics)


def write_bench_results(out_dir: str | Path, rows: Sequence[dict], metrics: dict, meta: dict) -> None:
    """Write ``predictions.jsonl`` and ``metrics.json`` (with ``_meta``) as one atomic directory swap."""
    with io.atomic_dir(out_dir) as tmp:
        io.write_jsonl(tmp / "predictions.jsonl", list(rows))
        io.write_json(tmp / "metrics.json", {**metrics, "_meta": meta})
