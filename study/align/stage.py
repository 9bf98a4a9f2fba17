"""The ``align@<run>`` stages: align the SFT model with one configured run, then evaluate it exactly.

A run is an entry of ``params.yaml: align.runs``: ``{method, data, seed?, ...AlignParams overrides}`` with
``data`` the name of a preference dataset under ``artifacts/prefs/<data>.parquet`` (offline methods and
Mixed-DPO) — online methods use its prompts/images and ground truth. The base knobs are ``align.base``.
The aligned model goes through the same evaluation as the SFT model (:mod:`study.eval.stage`), so its
metrics JSON has the same layout plus a ``train`` block.
"""
from __future__ import annotations

from pathlib import Path

import torch

from study import io
from study.config import EvalSection
from study.eval.runner import write_results
from study.eval.stage import evaluate_model
from study.model.load import load_model
from study.world.corpus import World
from study.world.spec import load_spec

def run_align(run: str, spec_run: dict, base: dict, eval: dict, seed: int, world_spec: str, world_dir: str,
              sft_dir: str, prefs_dir: str, out_dir: str, eval_dir: str, live_dir: str, metrics_path: str) -> dict:
    from study.align import train
    from study.align.config import run_params

    params, data, run_seed = run_params(run, spec_run, base)
    method, run_seed = params.method, seed if run_seed is None else run_seed
    e = EvalSection(**eval)
    data_path = Path(prefs_dir) / f"{data}.parquet"
    if not data_path.is_file():
        raise FileNotFoundError(f"align.runs.{run}.data: no preference dataset at {data_path}")
    torch.manual_seed(run_seed)
    world = World(world_dir)
    work = Path(out_dir).with_name(Path(out_dir).name + ".work")
    train_metrics = train(method, policy=sft_dir, world=world, data=str(data_path), params=params, out_dir=out_dir,
                          live_dir=live_dir, work_dir=work, seed=run_seed)
    model, processor = load_model(out_dir)
    preds, metrics = evaluate_model(model, processor, world, load_spec(world_spec), e, seed)
    metrics["train"] = {k: v for k, v in train_metrics.items() if isinstance(v, (int, float, str, bool))}
    metrics["_meta"].update({"run": run, "method": method, "data": data, "seed": run_seed, "split": e.split})
    with io.atomic_dir(eval_dir) as tmp:
        write_results(tmp, preds, metrics)
        io.write_jsonl(Path(tmp) / "scenes.jsonl", (s.to_dict() for s in world.scenes(e.split)[: e.n_scenes]))
    io.write_json(metrics_path, metrics)
    return metrics
