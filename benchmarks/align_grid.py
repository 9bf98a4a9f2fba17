"""Which trainable set and learning rate to use for the organism: full fine-tuning vs LoRA, over a small
LR grid, for one offline method on one preference set (a script, not a test).

    python benchmarks/align_grid.py                                   # DPO on the BDHS set, the default grid
    python benchmarks/align_grid.py --method ipo --data artifacts/prefs/recipes/povid.parquet
    python benchmarks/align_grid.py --grid full:1e-5 full:3e-5 lora16:1e-4 --out /tmp/grid.json

Each grid point ``<mode>:<lr>`` (mode ``full`` or ``lora<r>``, alpha = 2 r, the paper's ratio; the
projector LR equals the LR) trains ``--method`` from the SFT model with ``params.yaml``'s ``align`` groups
otherwise, then goes through the study's exact evaluation (``params.yaml: eval``, the test scenes every
model of the study is scored on). Printed per point: trainable parameters, training time, and the paired
difference against SFT (one scene bootstrap shared by both models, :mod:`study.eval.paired`) of CHAIR_i,
recall, typed-QA hallucination and helpfulness, in points with 95 % intervals; ``*`` marks an interval
that excludes 0. Needs the ``sft`` and ``preferences``/``bdhs`` stages' outputs (``dvc repro bdhs``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHOWN = ("CHAIR_i", "Recall", "QA halluc.", "Helpful")  # columns of study.report.comparison.COLUMNS
DEFAULT_GRID = ["full:3e-6", "full:1e-5", "full:3e-5", "lora16:1e-5", "lora16:1e-4", "lora16:3e-4"]


def parse_point(text: str) -> dict:
    """``full:1e-5`` -> ``{"lora": False, "learning_rate": 1e-5, ...}``; ``lora16:1e-4`` -> LoRA r=16, alpha=32."""
    mode, _, lr = text.partition(":")
    try:
        rate = float(lr)
    except ValueError:
        raise SystemExit(f"--grid: {text!r} is not <mode>:<lr> (e.g. full:1e-5 or lora16:1e-4)") from None
    knobs = {"learning_rate": rate, "projector_lr": rate}
    if mode == "full":
        return {**knobs, "lora": False}
    if mode.startswith("lora") and mode[4:].isdigit() and int(mode[4:]) > 0:
        r = int(mode[4:])
        return {**knobs, "lora": True, "lora_r": r, "lora_alpha": 2 * r}
    raise SystemExit(f"--grid: mode {mode!r} must be `full` or `lora<r>` (e.g. lora16)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="dpo", choices=["dpo", "ipo", "slic"])
    ap.add_argument("--data", default="artifacts/prefs/bdhs.parquet")
    ap.add_argument("--model", default="artifacts/models/sft")
    ap.add_argument("--world", default="artifacts/world")
    ap.add_argument("--sft-eval", default="artifacts/eval/sft", help="the SFT model's evaluation (predictions)")
    ap.add_argument("--grid", nargs="+", default=DEFAULT_GRID)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    points = [(g, parse_point(g)) for g in args.grid]  # bad grid entries fail before any work

    import torch

    from study.align import train
    from study.config import load_params
    from study.eval.paired import load_predictions, paired_difference
    from study.eval.stage import evaluate_model
    from study.model.load import load_model
    from study.report.comparison import COLUMNS as ALL_COLUMNS
    from study.world.corpus import World

    torch.set_num_threads(args.threads)
    columns = [c for c in ALL_COLUMNS if c[0] in SHOWN]
    params = load_params(args.params)
    world = World(args.world)
    spec = world.spec()
    sft_preds, scenes = load_predictions(args.sft_eval)
    base = params.align_params(args.method)
    for _, knobs in points:
        params.align_params(args.method, **knobs)  # a bad grid point fails before any training
    results = []
    print(
        f"{args.method} on {args.data}; base {json.dumps({k: getattr(base, k) for k in ('beta', 'epochs', 'batch_size') if hasattr(base, k)})}"
    )
    print(f"{'point':<14}{'trainable':>11}{'train s':>9}  " + "  ".join(f"{c[0]:>22}" for c in columns))
    for name, knobs in points:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            m = train(
                args.method,
                policy=args.model,
                world=world,
                data=args.data,
                params=params.align_params(args.method, **knobs),
                out_dir=Path(tmp) / "model",
                seed=args.seed,
            )
            train_s = time.perf_counter() - t0
            model, processor = load_model(Path(tmp) / "model")
            preds, metrics = evaluate_model(model, processor, world, spec, params.eval, params.seed)
        row = {
            "point": name,
            **knobs,
            "train_s": train_s,
            "trainable": m.get("trainable_params"),
            "train_loss": m.get("train_loss"),
            "margin_last": m.get("rewards/margins_last"),
            "vs_sft": {},
        }
        cells = []
        for col, suite, metric, hib in columns:
            d = paired_difference(
                [preds], sft_preds, scenes, spec, suite, metric, n_boot=params.eval.n_boot, seed=params.seed
            )
            lo, hi = d["ci95"]
            sig = "*" if lo > 0 or hi < 0 else " "
            cells.append(f"{100 * d['delta']:+5.1f} [{100 * lo:+5.1f},{100 * hi:+5.1f}]{sig}")
            row["vs_sft"][col] = {"delta": d["delta"], "ci95": [lo, hi], "value": metrics[suite][metric]["value"]}
        results.append(row)
        print(
            f"{name:<14}{str(row['trainable'] or '-'):>11}{train_s:>9.1f}  " + "  ".join(f"{c:>22}" for c in cells),
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"method": args.method, "data": args.data, "base": base, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
