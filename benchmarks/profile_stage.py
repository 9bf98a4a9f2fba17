"""Where a stage's time goes: one stage (or one alignment run) under cProfile, in scratch directories.

    python benchmarks/profile_stage.py align --run dpo_povid          # an offline run
    python benchmarks/profile_stage.py align --run online_dpo_oracle  # an online run
    python benchmarks/profile_stage.py align --run rloo               # an RL run
    python benchmarks/profile_stage.py sft --set sft.epochs=1         # SFT, shortened

It reads the workspace's inputs (``artifacts/world``, the SFT model, the preference data: run ``dvc pull`` or
``dvc repro`` first) through the stage's own ``run_<stage>`` with every output path moved under ``--out``, so
nothing DVC tracks is touched. Prints the wall time, the CPU (model, AVX-512), the share of the wall time
spent inside a few named parts (generation, the reference model, backward, optimizer, evaluation, saving)
and the top functions by cumulative time; writes the raw profile to ``<out>/<name>.prof`` (``snakeviz`` or
``python -m pstats`` read it). cProfile adds overhead to every Python call (about 1.2-2x here), so compare
shares within one profile, not wall times across tools.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# part -> (file fragment, function name) whose cumulative time is that part's time
PARTS = {
    "generation (sampling, greedy eval)": ("generation/utils.py", "generate"),
    "reference log-probs": ("trl/", "compute_ref_log_probs"),
    "training step (forward+backward)": ("transformers/trainer.py", "training_step"),
    "backward": ("torch/autograd/__init__.py", "backward"),
    "optimizer step": ("torch/optim/optimizer.py", "wrapper"),
    "evaluation of the trained model": ("study/align/stage.py", "evaluate_aligned"),
    "checkpoint saving": ("transformers/trainer.py", "_save_checkpoint"),
    "data collation": ("trl/", "__call__"),
}


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        return f"{model}, AVX-512: {'avx512f' in info}"
    except (OSError, StopIteration):
        return "unknown CPU"


def _parse_sets(sets: list[str]) -> dict:
    import yaml

    out: dict = {}
    for s in sets:
        key, _, val = s.partition("=")
        d = out
        *parents, leaf = key.split(".")
        for k in parents:
            d = d.setdefault(k, {})
        d[leaf] = yaml.safe_load(val)
    return out


def _context(stage: str, run: str | None, overrides: dict, out: Path):
    from study.config import load_params
    from study.pipeline import PATHS, StageContext

    p = load_params(ROOT / "params.yaml", overrides=overrides)
    paths = PATHS[stage](p, run)
    written = {"out_dir", "metrics_path", "live_dir", "eval_dir", "pool_dir", "out_path", "sweep_path", "union_dir"}
    moved = {k: (str(out / k) if k in written and v else v) for k, v in paths.items()}
    return StageContext(stage, run, p, SimpleNamespace(**moved))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["sft", "align", "evaluate", "preferences", "bdhs"])
    ap.add_argument("--run", default=None, help="align: an entry of align.runs / align.rm_runs")
    ap.add_argument("--set", nargs="*", default=[], help="dotted overrides, e.g. sft.epochs=1")
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile_stage"))
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from study.align.stage import run_align
    from study.bdhs.stage import run_bdhs
    from study.eval.stage import run_eval
    from study.model.stage import run_sft
    from study.prefs.stage import run_preferences

    fn = {"sft": run_sft, "align": run_align, "evaluate": run_eval, "preferences": run_preferences, "bdhs": run_bdhs}
    name = args.run or args.stage
    out = args.out / name
    ctx = _context(args.stage, args.run, _parse_sets(args.set), out)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(fn[args.stage], ctx)
    wall = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(out / f"{name}.prof")
    stats = pstats.Stats(prof)
    print(f"\n== {args.stage} {name} ({' '.join(args.set)}) — {_cpu()}, torch threads {args.threads}")
    print(f"wall {wall:.1f} s (under cProfile)")
    rows = stats.stats  # (file, line, func) -> (cc, nc, tt, ct, callers)
    print("\npart                                   s   share  (cumulative; parts nest, so shares do not add up)")
    for part, (frag, func) in PARTS.items():
        ct = sum(v[3] for (f, _, n), v in rows.items() if frag in f and n == func)
        print(f"{part:36s} {ct:7.1f} {ct / wall:6.1%}")
    print(f"\ntop {args.top} by cumulative time (study, trl, transformers, torch):")
    keep = [(k, v) for k, v in rows.items() if any(s in k[0] for s in ("study/", "trl/", "transformers/", "torch/"))]
    for (f, line, func), v in sorted(keep, key=lambda kv: -kv[1][3])[: args.top]:
        short = f.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        print(f"{v[3]:8.1f} s {v[3] / wall:6.1%}  {v[1]:>8} calls  {short}:{line} {func}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
