"""Benchmark the pipeline: `dvc repro` from scratch, a no-op `dvc repro`, per-stage time and peak memory.

Runs in a scratch copy of the project (your own artifacts are untouched):

    python benchmarks/pipeline_bench.py --profile quick            # whole quick study
    python benchmarks/pipeline_bench.py --profile full --until sft # world + SFT of the full profile
    python benchmarks/pipeline_bench.py --profile full --stages world sft evaluate preferences bdhs \
        align@dpo_bdhs align@avg_povid_distortion align@avg_povid_bdhs --keep   # a subset, in this order
    python benchmarks/pipeline_bench.py --profile full --set align.seeds=[0] --stages world sft preferences \
        align@online_dpo_oracle align@rloo                                        # one seed of the costly runs

Peak memory is the largest resident set of any process the pipeline started (the papermill kernels
included), from ``getrusage(RUSAGE_CHILDREN)``. Targets (issue 2, 2 CPU cores): quick repro <= 10 min,
full SFT <= 15 min, no-op repro <= 5 s, peak memory <= 4 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def set_override(params: dict, profile: str, assignment: str) -> None:
    """``KEY.PATH=VALUE`` (VALUE parsed as YAML) into the profile's override block, e.g. ``align.seeds=[0]``."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set: {assignment!r} is not KEY=VALUE (e.g. align.seeds=[0])")
    node = params["profiles"].setdefault(profile, {}) or {}
    params["profiles"][profile] = node
    *parents, leaf = key.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    node[leaf] = yaml.safe_load(value)


def scratch_copy(profile: str, dest: Path, overrides: tuple[str, ...] = ()) -> Path:
    for name in ("data", "notebooks", "study"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = profile
    for o in overrides:
        set_override(params, profile, o)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=dest, check=True)
    return dest


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--until", default=None, help="last stage to run (default: all)")
    ap.add_argument(
        "--stages",
        nargs="+",
        default=None,
        help="explicit stages to run in this order (each with --single-item; a stage's inputs must "
        "come from earlier ones)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy and print its path")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a knob of the profile (YAML value), e.g. --set align.seeds=[0]; repeatable",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="study-bench-"))
    repo = scratch_copy(args.profile, tmp, tuple(args.set))
    stages = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    if args.until:
        stages = stages[: stages.index(args.until) + 1]
    if args.stages:
        stages = list(args.stages)
    per_stage = {}
    t0 = time.perf_counter()
    for st in stages:
        per_stage[st] = timed(["dvc", "repro", "--single-item", st], repo)
    total = time.perf_counter() - t0
    noop = timed(["dvc", "repro"] + (list(args.stages) if args.stages else [args.until] if args.until else []), repo)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    sft = json.loads((repo / "metrics/sft.json").read_text()) if (repo / "metrics/sft.json").exists() else {}
    print(f"profile {args.profile}{' with ' + ', '.join(args.set) if args.set else ''}: stages {', '.join(stages)}")
    for st, s in per_stage.items():
        print(f"  {st:<26} {s / 60:6.2f} min")
    print(f"  total      {total / 60:6.2f} min  (dvc repro from scratch)")
    if sft:
        print(f"  SFT trainer runtime {sft['train_runtime_s'] / 60:.2f} min for {sft['train_rows']} rows/epoch")
    print(f"  no-op dvc repro {noop:.2f} s")
    print(f"  peak memory {peak_gb:.2f} GB (largest process)")
    if args.keep:
        print(f"  scratch copy: {repo}")
    else:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
