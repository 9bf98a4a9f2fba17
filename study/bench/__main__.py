"""``python -m study.bench``: evaluate a checkpoint on every real benchmark whose files params name.

    python -m study.bench [--params params.yaml] [--only pope amber halbench] [--model DIR]

Reads ``benchmarks`` (and ``model.base_path`` when ``benchmarks.model`` is empty) from the validated
params, answers each configured benchmark greedily, and writes ``<benchmarks.out>/<name>/`` as one atomic
directory (:mod:`study.bench.runner`). Loading is offline and safetensors-only (:func:`study.model.load.load_model`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from study.bench.files import BenchmarkFileError

NAMES = ("pope", "amber", "halbench")


def prepare(name: str, b) -> tuple[list[dict], str, Callable[[list[dict], int], dict]]:
    """Read and check benchmark ``name``'s files (params section ``b``, :class:`study.config.BenchmarksSection`):
    ``(items, image dir, score(rows, seed) -> metrics)``. Runs before any model is loaded, so a bad file costs nothing."""
    from study.bench import amber, halbench, pope_files

    limit = b.limit or None
    if name == "pope":
        items = pope_files.load_pope(b.pope.dir, b.pope.images, limit=limit, prompt_suffix=b.pope.prompt_suffix)
        return items, b.pope.images, lambda rows, seed: pope_files.score_pope(rows, n_boot=b.n_boot, seed=seed)
    if name == "amber":
        items, data = amber.load_amber(b.amber.dir, b.amber.images, query_file=b.amber.query_file, limit=limit)
        return items, b.amber.images, lambda rows, seed: amber.score_amber(rows, data, n_boot=b.n_boot, seed=seed)
    truth, _ = halbench.ground_truth(b.halbench.instances, b.halbench.captions or None)
    items = halbench.load_halbench(b.halbench.questions, b.halbench.images, limit=limit)
    return items, b.halbench.images, lambda rows, seed: halbench.score_halbench(rows, truth, n_boot=b.n_boot, seed=seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--only", nargs="+", choices=NAMES, help="evaluate only these (each must be configured)")
    ap.add_argument("--model", default=None, help="checkpoint dir (overrides benchmarks.model)")
    args = ap.parse_args(argv)

    from study.config import ParamsError, load_params

    try:
        params = load_params(args.params)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    b = params.benchmarks
    names = args.only or b.configured()
    unset = [n for n in names if n not in b.configured()]
    if not names or unset:
        which = ", ".join(unset) if unset else "none"
        print(
            f"error: benchmark(s) not configured: {which}; name their files in params.yaml "
            "(benchmarks.pope.dir, benchmarks.amber.dir, benchmarks.halbench.questions)",
            file=sys.stderr,
        )
        return 2
    model_dir = args.model or b.model or params.model.base_path
    if not model_dir:
        print(
            "error: no checkpoint to evaluate: set benchmarks.model or model.base_path, or pass --model",
            file=sys.stderr,
        )
        return 2

    try:
        prepared = {name: prepare(name, b) for name in names}
    except BenchmarkFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from study.bench.runner import answer_items, model_answer_fn, with_parser_sensitivity, write_bench_results
    from study.model.load import ModelPathError, load_model

    try:
        model, processor = load_model(model_dir)
    except ModelPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    answer_fn = model_answer_fn(
        model, processor, max_new_tokens=b.max_new_tokens, batch_size=b.batch_size, seed=params.seed
    )
    for name, (items, image_dir, score) in prepared.items():
        rows = answer_items(items, image_dir, answer_fn, batch_size=b.batch_size)
        metrics = with_parser_sensitivity(score(rows, params.seed), rows)
        out = Path(b.out) / name
        write_bench_results(
            out,
            rows,
            metrics,
            {
                "benchmark": name,
                "model": str(model_dir),
                "n_items": len(rows),
                "n_boot": b.n_boot,
                "seed": params.seed,
                "resample_unit": "image",
            },
        )
        flagged = [s for s, t in metrics.get("parser_sensitivity", {}).items() if t["sensitive"]]
        print(f"{name}: {len(rows)} items -> {out}" + (f"; parser-sensitive: {flagged}" if flagged else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
