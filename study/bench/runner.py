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

from study import io
from study.bench.parsers import DISAGREE_THRESHOLD, sensitivity_by_suite
from study.eval.runner import run_predictions
from study.model.generate import generate

AnswerFn = Callable[[list[str], list[str]], list[str]]  # (image paths, prompts) -> raw answers


def model_answer_fn(model, processor, *, max_new_tokens: int, batch_size: int, seed: int = 0) -> AnswerFn:
    """Greedy answers of ``model`` to (image file, prompt) pairs; images are read as RGB."""

    def answer(paths: list[str], prompts: list[str]) -> list[str]:
        images = []
        for p in paths:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        return generate(
            model, processor, images, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed
        )

    return answer


def answer_items(
    items: Sequence[dict], image_dir: str | Path, answer_fn: AnswerFn, *, batch_size: int = 16, progress: bool = True
) -> list[dict]:
    """Copies of ``items`` with ``answer`` set to ``answer_fn``'s raw text for the item's image and prompt."""
    # the items' scene_id is their image file name: the organism's batching loop does the rest
    return run_predictions(
        list(items),
        lambda names, prompts: answer_fn([str(Path(image_dir) / n) for n in names], prompts),
        batch_size=batch_size,
        progress=progress,
    )


def with_parser_sensitivity(metrics: dict, rows: Sequence[dict], threshold: float = DISAGREE_THRESHOLD) -> dict:
    """``metrics`` plus ``parser_sensitivity`` for every suite of rows that carry a yes/no label."""
    table = sensitivity_by_suite(rows, threshold=threshold)
    return {**metrics, "parser_sensitivity": table} if table else dict(metrics)


def write_bench_results(out_dir: str | Path, rows: Sequence[dict], metrics: dict, meta: dict) -> None:
    """Write ``predictions.jsonl`` and ``metrics.json`` (with ``_meta``) as one atomic directory swap."""
    with io.atomic_dir(out_dir) as tmp:
        io.write_jsonl(tmp / "predictions.jsonl", list(rows))
        io.write_json(tmp / "metrics.json", {**metrics, "_meta": meta})
