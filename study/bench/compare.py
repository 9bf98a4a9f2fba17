"""``python -m study.bench.compare``: paired comparison of two checkpoints' results on one real benchmark.

    python -m study.bench.compare A_DIR B_DIR [--more-a DIR ...] [--more-b DIR ...]
                                  [--n-boot N] [--seed S] [--out FILE.json] [--params params.yaml]

``A_DIR`` (the aligned checkpoint) and ``B_DIR`` (the reference) are ``<benchmarks.out>/<name>/`` directories
written by ``python -m study.bench``. Prints a Markdown table (suite, metric, A, B, Delta = A - B, its 95 %
paired-bootstrap interval over images, verdict; :mod:`study.bench.paired`) and, with ``--out``, writes the
same numbers as JSON (atomically). ``--more-a``/``--more-b`` add further seeds of a side (its value is the
mean over them). AMBER's generative suite and Object-HalBench are rescored from their ground truth, read
from the files ``--params`` names (``benchmarks.amber.dir``; ``benchmarks.halbench.instances``/``.captions``).
Bad input (a missing directory or file, two benchmarks, unmatched items) is a one-line error, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from study.bench.files import BenchmarkFileError


def load_truth(benchmark: str, params_path: str):
    """The ground truth that rescoring ``benchmark`` needs, from the files ``params_path`` names."""
    from study.config import load_section

    b = load_section("benchmarks", params_path)
    if benchmark == "amber":
        if not b.amber.dir:
            raise BenchmarkFileError(
                f"{params_path}: AMBER's generative suite is rescored from AMBER's annotations; "
                "set benchmarks.amber.dir (its data/ folder)"
            )
        from study.bench.amber import AmberData

        return AmberData(b.amber.dir)
    if not b.halbench.instances:
        raise BenchmarkFileError(
            f"{params_path}: Object-HalBench is rescored from COCO's annotations; set benchmarks.halbench.instances"
        )
    from study.bench.halbench import ground_truth

    return ground_truth(b.halbench.instances, b.halbench.captions or None)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.bench.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("a", metavar="A_DIR", help="results of model A (e.g. the aligned checkpoint)")
    ap.add_argument("b", metavar="B_DIR", help="results of model B (the reference, e.g. SFT)")
    ap.add_argument("--more-a", nargs="+", default=[], metavar="DIR", help="further seeds of A")
    ap.add_argument("--more-b", nargs="+", default=[], metavar="DIR", help="further seeds of B")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ap.add_argument("--out", default=None, metavar="FILE.json", help="also write the comparison as JSON")
    ap.add_argument(
        "--params", default="params.yaml", help="where AMBER / Object-HalBench ground truth is named (POPE: unused)"
    )
    args = ap.parse_args(argv)
    if args.n_boot < 1:
        print(f"error: --n-boot must be >= 1, got {args.n_boot}", file=sys.stderr)
        return 2

    from study import io
    from study.bench.paired import Results, check_comparable, compare_results, markdown, needs_truth
    from study.config import ParamsError

    try:
        a = [Results(p) for p in [args.a, *args.more_a]]
        b = [Results(p) for p in [args.b, *args.more_b]]
        bench = check_comparable([*a, *b])
        truth = load_truth(bench, args.params) if needs_truth(bench, a[0].rows) else None
        result = compare_results(a, b, truth, n_boot=args.n_boot, seed=args.seed)
    except (BenchmarkFileError, ParamsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(result))
    if args.out:
        io.write_json(args.out, result)
        print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
