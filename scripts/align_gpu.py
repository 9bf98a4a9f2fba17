#!/usr/bin/env python
"""One alignment run of ``params.yaml`` on one or several GPUs (the study's GPU path).

    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/align_gpu.py --run dpo_povid --profile gpu
    accelerate launch --config_file configs/accelerate/single_gpu.yaml scripts/align_gpu.py --run ppo --profile gpu
    python scripts/align_gpu.py --run dpo_povid --profile gpu --dry-run      # validate and print the plan only

What it does:

1. Validates ``params.yaml`` with the profile applied (:func:`study.config.load_params`, every alignment
   knob included) before anything is loaded; a bad key exits with status 2 and names it.
2. For each training seed (``align.seeds``, or the run's own ``seeds``; ``--seed K`` for one), loads the
   policy -- ``--policy DIR``, else ``model.base_path`` (the real checkpoint, aligned directly as in the
   paper), else the organism's ``artifacts/models/sft`` -- in bfloat16 when ``align.bf16``, and aligns it
   with :func:`study.align.train` (the same call the ``align`` stage makes). Every process trains (TRL's
   trainers are DDP-aware); the merged policy is saved once, by the main process, with safetensors.
3. On the main process, after all seeds have trained, evaluates each aligned policy through the ``align``
   stage's own :func:`study.align.stage.evaluate_aligned` (predictions, metrics with the training summary and
   RL collapse report, ``scenes.jsonl`` for paired comparisons) and writes the seed-aggregated metrics
   (:func:`study.eval.seeds.aggregate_seeds`). ``--no-eval`` skips this.

Batch size: ``align.batch_size`` is per process and ``batch_size * grad_accum`` is the global batch (the
paper's batch size). Under N processes ``grad_accum`` is divided by N (N must divide it), so one GPU and
eight GPUs run the same optimisation.

Precision: ``align.bf16`` decides (bf16 weights + autocast, :mod:`study.align.common`). An accelerate
config whose ``mixed_precision`` disagrees with it is refused, since accelerate's setting would otherwise
switch autocast on behind the params' back.

Multi-process support: dpo / ipo / slic / avg_dpo / rloo (TRL trainers). online_dpo, online_bdhs, mixed_dpo
and ppo are loops of their own that are not distributed: run them with one process.

Outputs (outside the DVC pipeline's outputs): ``<out-root>/models/<run>/seed<k>``,
``<out-root>/eval/<run>/seed<k>``, ``<out-root>/metrics/<run>.json``, curves in
``<out-root>/dvclive/<run>/seed<k>`` (main process). ``--out-root`` defaults to ``artifacts/gpu``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable without `pip install -e .`
    sys.path.insert(0, str(ROOT))

MULTI_PROCESS_METHODS = ("dpo", "ipo", "slic", "avg_dpo", "rloo")


class PlanError(ValueError):
    """A run that cannot go ahead as asked (the message says why)."""


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def sharding() -> str:
    """What the launcher asked for: ``fsdp`` (``configs/accelerate/fsdp.yaml``), ``ddp`` (several processes)
    or ``none``. accelerate 1.16 shards only on accelerators: on CPU an FSDP launch trains as DDP (``MULTI_CPU``
    in the run's metrics)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    return "ddp" if world_size() > 1 else "none"


def check_fsdp_wrap(model, policy: str) -> list[str]:
    """The layer classes an FSDP launch wraps (``FSDP_TRANSFORMER_CLS_TO_WRAP``), each checked to be in the
    policy: accelerate checks this only where it shards, so a config naming a class the checkpoint lacks
    (a SigLIP tower has no ``CLIPEncoderLayer``) fails here, on every device, with the classes it has."""
    if sharding() != "fsdp":
        return []
    want = [c.strip() for c in os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",") if c.strip()]
    have = {type(m).__name__ for m in model.modules()}
    missing = [c for c in want if c not in have]
    if missing:
        layers = sorted(c for c in have if c.endswith("Layer"))
        raise PlanError(
            f"FSDP wraps {missing} (fsdp_transformer_layer_cls_to_wrap), which {policy} does not have; "
            f"its layer classes: {layers}"
        )
    return want


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/align_gpu.py", description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="an entry of align.runs or align.rm_runs (e.g. dpo_povid)")
    ap.add_argument("--profile", default=None, help="params profile (e.g. gpu); default: params.yaml's `profile`")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument(
        "--policy", default=None, help="checkpoint to align; default: model.base_path, else artifacts/models/sft"
    )
    ap.add_argument("--seed", type=int, default=None, help="train only this seed (default: every seed of the run)")
    ap.add_argument("--artifacts", default="artifacts", help="where the world and the preference data are")
    ap.add_argument("--out-root", default="artifacts/gpu")
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    ap.add_argument("--dry-run", action="store_true", help="validate and print the plan as JSON; load nothing")
    return ap.parse_args(argv)


def make_plan(args: argparse.Namespace) -> dict:
    """Validate everything that can be validated without loading a model; returns the run's plan."""
    from study.align import common
    from study.align.config import check_reward_model, make_params
    from study.config import load_params

    params = load_params(args.params, profile=args.profile)
    runs = params.align.all_runs()
    if args.run not in runs:
        raise PlanError(f"`align.runs` / `align.rm_runs` have no run {args.run!r}; runs: {sorted(runs)}")
    section = "rm_runs" if args.run in params.align.rm_runs else "runs"
    ap, data, seeds = params.align_run(args.run)
    check_reward_model(ap, prefix=f"align.{section}.{args.run}")
    if args.seed is not None:
        seeds = [args.seed]
    n = world_size()
    if n > 1 and ap.method not in MULTI_PROCESS_METHODS:
        raise PlanError(
            f"method {ap.method!r} runs in one process only (its loop is not distributed); launch "
            "with configs/accelerate/single_gpu.yaml. Multi-process methods: "
            f"{list(MULTI_PROCESS_METHODS)}"
        )
    global_batch = ap.batch_size * ap.grad_accum
    if n > 1:
        if ap.grad_accum % n:
            raise PlanError(
                f"align.grad_accum ({ap.grad_accum}) must be divisible by the number of processes ({n}) "
                f"to keep the global batch of {global_batch} pairs"
            )
        ap = make_params(ap, grad_accum=ap.grad_accum // n)
    mp = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if mp not in ("no", "bf16" if ap.bf16 else "no"):
        raise PlanError(
            f"the accelerate config sets mixed_precision={mp!r} but align.bf16 is {ap.bf16}: the params "
            "decide precision; use an accelerate config with mixed_precision: 'no' or the matching one"
        )
    common.check_precision(ap)
    art = Path(args.artifacts)
    out = Path(args.out_root)
    policy = args.policy or params.model.base_path or str(art / "models" / "sft")
    return {
        "run": args.run,
        "profile": params.profile,
        "method": ap.method,
        "params": ap,
        "data": str(art / "prefs" / f"{data}.parquet"),
        "world_dir": str(art / "world"),
        "world_spec": params.world.spec,
        "policy": policy,
        "seeds": seeds,
        "processes": n,
        "sharding": sharding(),
        "global_batch": ap.batch_size * ap.grad_accum * n,
        "study_seed": params.seed,
        "eval": params.eval,
        "models": str(out / "models" / args.run),
        "eval_dir": str(out / "eval" / args.run),
        "live_dir": str(out / "dvclive" / args.run),
        "metrics_path": str(out / "metrics" / f"{args.run}.json"),
    }


def describe(plan: dict) -> dict:
    ap = plan["params"]
    keys = (
        "lora",
        "lora_r",
        "lora_alpha",
        "bf16",
        "gradient_checkpointing",
        "learning_rate",
        "projector_lr",
        "epochs",
        "batch_size",
        "grad_accum",
        "beta",
        "loss_type",
    )
    return {
        **{k: v for k, v in plan.items() if k not in ("params", "eval")},
        "align": {k: getattr(ap, k) for k in keys},
        "eval": plan["eval"].model_dump(),
    }


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(plan: dict, *, evaluate: bool = True) -> dict:
    """Train every seed (all processes), then evaluate them (main process); returns the metrics."""
    import torch

    from study import io
    from study.align import train
    from study.model.load import check_model_dir, load_model
    from study.resume import default_work_dir, remove_if_empty
    from study.world.corpus import World

    ap = plan["params"]
    check_model_dir(plan["policy"])
    if not Path(plan["data"]).is_file():
        raise FileNotFoundError(
            f"align run {plan['run']!r}: no preference dataset at {plan['data']} "
            "(run the CPU pipeline's `preferences`/`bdhs` stages first)"
        )
    world = World(plan["world_dir"])
    dtype = torch.bfloat16 if ap.bf16 else None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local}" if torch.cuda.is_available() else None
    train_metrics = {}
    for k in plan["seeds"]:
        torch.manual_seed(k)
        model, processor = load_model(plan["policy"], dtype=dtype, device=device)
        wrapped = check_fsdp_wrap(model, plan["policy"])
        if wrapped and is_main():
            print(f"fsdp wraps {wrapped}", flush=True)
        model_dir = Path(plan["models"]) / f"seed{k}"
        train_metrics[k] = train(
            ap.method,
            policy=(model, processor),
            world=world,
            data=plan["data"],
            params=ap,
            out_dir=model_dir,
            live_dir=f"{plan['live_dir']}/seed{k}" if is_main() else None,
            work_dir=default_work_dir(plan["models"]) / f"seed{k}",
            seed=k,
        )
        del model
        _free()
    if is_main():
        remove_if_empty(default_work_dir(plan["models"]))  # each seed removed its own
    if not (evaluate and is_main()):
        return {"train": train_metrics}
    from study.align.stage import evaluate_aligned
    from study.eval.seeds import aggregate_seeds
    from study.world.spec import load_spec

    e, spec, per_seed = plan["eval"], load_spec(plan["world_spec"]), {}
    for k in plan["seeds"]:
        model, processor = load_model(Path(plan["models"]) / f"seed{k}", dtype=dtype, device=device)
        meta = {
            "run": plan["run"],
            "method": ap.method,
            "data": plan["data"],
            "seed": k,
            "split": e.split,
            "policy": plan["policy"],
            "profile": plan["profile"],
            "processes": plan["processes"],
            "global_batch": plan["global_batch"],
            "dtype": "bfloat16" if ap.bf16 else "float32",
        }
        per_seed[k] = evaluate_aligned(
            model,
            processor,
            world,
            spec,
            e,
            plan["study_seed"],
            train_metrics[k],
            meta,
            Path(plan["eval_dir"]) / f"seed{k}",
        )
        del model
        _free()
    metrics = aggregate_seeds(per_seed)
    io.write_json(plan["metrics_path"], metrics)
    return metrics


def main(argv=None) -> int:
    from study.align.config import AlignParamsError
    from study.config import ParamsError
    from study.model.load import ModelPathError
    from study.prefs.schema import PrefSchemaError
    from study.world.spec import SpecError

    args = parse_args(argv)
    try:
        plan = make_plan(args)
        if args.dry_run:
            print(json.dumps(describe(plan), indent=2, default=str))
            return 0
        if is_main():
            print(json.dumps(describe(plan), default=str), flush=True)
        run(plan, evaluate=not args.no_eval)
    except (
        ParamsError,
        AlignParamsError,
        PlanError,
        ModelPathError,
        PrefSchemaError,
        SpecError,
        FileNotFoundError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
