"""Same seed, same results across a refactor: run the pipeline at one profile for two commits and compare metrics.

    python benchmarks/behaviour_identity.py run REV OUT [--profile smoke]   # dvc repro of REV in a scratch copy
    python benchmarks/behaviour_identity.py compare OUT_A OUT_B             # every metric, key by key
    python benchmarks/behaviour_identity.py params REV OUT.json             # every run's resolved knobs
    python benchmarks/behaviour_identity.py compare-params A.json B.json    # knob by knob, every profile

``run`` exports commit ``REV`` (``git archive``) with this checkout's ``data/`` into a scratch folder, sets
``profile``, runs ``dvc repro`` there with that commit's own ``study`` package first on ``PYTHONPATH``, and
copies ``metrics/`` and ``paper/tables/`` to ``OUT`` (with the run's wall time in ``OUT/seconds.txt``).
``compare`` walks both ``metrics/`` trees: every JSON number, string and list must be equal, except values
under keys that measure time or speed (:data:`VOLATILE`); it prints each difference and exits 1 if any.

``params`` is the cheap check of a refactor of the params layout: with commit ``REV``'s own code it resolves
every alignment run of every profile (the config each run trains with, its data and seeds) and writes them
as JSON. ``compare-params`` exits 1 if any knob both hold differs, or a run's data or seeds; knobs only one
side holds are listed by name with their run counts (a knob a method never read leaves when its config
keeps only what it reads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = re.compile(
    r"(seconds|runtime|per_second|_per_s$|throughput|peak_rss|(^|_)time"
    r"|(sweep|report|sft|vision|world|lm|projector|curve|train|total|wall)_s$)"
)  # keys that measure time or speed (not chair_s: a metric)


def run(rev: str, out: Path, profile: str) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="identity_"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    for name in (".dvc", "dvc.lock", "data.dvc", "metrics", "paper/tables"):  # a fresh DVC project: nothing cached
        target = scratch / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    shutil.copytree(ROOT / "data", scratch / "data", dirs_exist_ok=True)
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    params["profile"] = profile
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(scratch)}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=scratch, check=True)
    t = time.time()
    r = subprocess.run(["dvc", "repro"], cwd=scratch, env=env, capture_output=True, text=True)
    seconds = time.time() - t
    if r.returncode:
        sys.exit(f"dvc repro of {rev} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("metrics", "paper/tables"):
        if (scratch / sub).exists():
            shutil.copytree(scratch / sub, out / sub, dirs_exist_ok=True)
    (out / "seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"{rev}: dvc repro at profile {profile} in {seconds:.0f} s -> {out}")
    shutil.rmtree(scratch, ignore_errors=True)


PROFILES = (None, "quick", "full", "smoke", "gpu")
_DUMP = """
import json, sys
from study.config import load_params
out = {}
for prof in %r:
    p = load_params("params.yaml", profile=prof)
    for run in p.align.all_runs():
        if hasattr(p, "align_run"):
            ap, data, seeds = p.align_run(run)
        else:  # before the knob groups
            from study.align.stage import align_run
            ap, data, seeds = align_run(p, run)
        out[f"{prof}/{run}"] = {"params": ap.model_dump(), "data": data, "seeds": seeds or p.align.seeds}
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True)
"""


def dump_params(rev: str, out: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="identity_params_"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    shutil.copytree(ROOT / "data", scratch / "data", dirs_exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(scratch)}
    subprocess.run([sys.executable, "-c", _DUMP % (PROFILES,), str(out.resolve())], cwd=scratch, env=env, check=True)
    shutil.rmtree(scratch)


def compare_params(a: Path, b: Path) -> int:
    from collections import Counter

    pa, pb = json.loads(a.read_text()), json.loads(b.read_text())
    diffs = [f"{r}: only in {'A' if r in pa else 'B'}" for r in sorted(set(pa) ^ set(pb))]
    only_a, only_b = Counter(), Counter()
    for r in sorted(set(pa) & set(pb)):
        x, y = pa[r], pb[r]
        diffs += [f"{r}.{k}: {x[k]!r} != {y[k]!r}" for k in ("data", "seeds") if x[k] != y[k]]
        kx, ky = x["params"], y["params"]
        diffs += [f"{r}.{k}: {kx[k]!r} != {ky[k]!r}" for k in sorted(set(kx) & set(ky)) if kx[k] != ky[k]]
        only_a.update(set(kx) - set(ky))
        only_b.update(set(ky) - set(kx))
    print("\n".join(diffs) if diffs else f"identical: every knob both hold, in {len(pa)} runs x profiles")
    for side, c in (("A", only_a), ("B", only_b)):
        if c:
            print(f"only in {side} (runs): " + ", ".join(f"{k} ({n})" for k, n in sorted(c.items())))
    return 1 if diffs else 0


def _diff(a, b, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if VOLATILE.search(str(k)):
                continue
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'B' if k not in a else 'A'}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def compare(a: Path, b: Path) -> int:
    files = sorted(
        {p.relative_to(a) for p in (a / "metrics").rglob("*.json")}
        | {p.relative_to(b) for p in (b / "metrics").rglob("*.json")}
    )
    diffs: list[str] = []
    for rel in files:
        if not (a / rel).is_file() or not (b / rel).is_file():
            diffs.append(f"{rel}: only in {'B' if not (a / rel).is_file() else 'A'}")
            continue
        _diff(json.loads((a / rel).read_text()), json.loads((b / rel).read_text()), str(rel), diffs)
    print("\n".join(diffs) if diffs else f"identical: {len(files)} metrics files (time and speed keys excluded)")
    return 1 if diffs else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("rev")
    r.add_argument("out", type=Path)
    r.add_argument("--profile", default="smoke")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    d = sub.add_parser("params")
    d.add_argument("rev")
    d.add_argument("out", type=Path)
    cp = sub.add_parser("compare-params")
    cp.add_argument("a", type=Path)
    cp.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.rev, args.out, args.profile)
        return 0
    if args.cmd == "params":
        dump_params(args.rev, args.out)
        return 0
    if args.cmd == "compare-params":
        return compare_params(args.a, args.b)
    return compare(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
