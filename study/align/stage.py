"""The ``align@<run>`` stages: align the SFT model with one configured run, then evaluate it exactly.

A run is an entry of ``params.yaml: align.runs``: ``{method, data, seeds?, ...knob overrides}`` with ``data``
the name of a preference dataset under ``artifacts/prefs/<data>.parquet`` (offline methods and Mixed-DPO) —
online methods use its prompts/images and ground truth. Its knobs are the ``align`` groups its method reads
(:mod:`study.align.knobs`). The aligned model goes through the same evaluation as the SFT model
(:mod:`study.eval.stage`), so its metrics JSON has the same layout plus a ``train`` block; each run is
trained once per seed (:meth:`study.config.StudyParams.align_run`: ``align.decisive_seeds`` for a run a
finding rests on, 3 in the full profile; ``align.seeds`` otherwise, 1) and its metrics are the mean over
seeds with a 95 % CI over seeds (:mod:`study.eval.seeds`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from study import io
from study.config import EvalSection
from study.eval.runner import write_results
from study.eval.seeds import aggregate_seeds
from study.eval.stage import evaluate_model
from study.model.load import load_model
from study.resume import default_work_dir, remove_if_empty
from study.world.corpus import World
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def train_summary(train_metrics: dict) -> dict:
    """The scalar training statistics of a run for its metrics JSON; one level of nested dicts is kept with
    ``/``-joined keys (e.g. the RL collapse report: ``collapse/collapsed``, ``collapse/reward_hacking``)."""
    scalar = (int, float, str, bool)
    out = {k: v for k, v in train_metrics.items() if isinstance(v, scalar)}
    for k, sub in train_metrics.items():
        if isinstance(sub, dict):
            out.update({f"{k}/{k2}": v for k2, v in sub.items() if isinstance(v, scalar)})
    return out


def evaluate_aligned(
    model,
    processor,
    world: World,
    spec,
    e: EvalSection,
    study_seed: int,
    train_metrics: dict,
    meta: dict,
    eval_dir: str | Path,
) -> dict:
    """Evaluate one aligned policy exactly as the SFT model is (:func:`study.eval.stage.evaluate_model`), add its
    training summary (:func:`train_summary`, the RL collapse report included) and ``meta`` to the metrics, and
    write predictions, metrics and the evaluated ``scenes.jsonl`` (what :mod:`study.eval.paired` compares on)
    to ``eval_dir`` atomically. The one evaluation path of the ``align`` stage and ``scripts/align_gpu.py``."""
    preds, metrics = evaluate_model(model, processor, world, spec, e, study_seed)
    metrics["train"] = train_summary(train_metrics)
    metrics["_meta"].update(meta)
    with io.atomic_dir(eval_dir) as tmp:
        write_results(tmp, preds, metrics)
        io.write_jsonl(Path(tmp) / "scenes.jsonl", (s.to_dict() for s in world.scenes(e.split)[: e.n_scenes]))
    return metrics


def run_align(ctx: StageContext) -> dict:
    """Train and evaluate ``run`` once per training seed, then write the seed-aggregated metrics JSON.

    Seed k writes its policy to ``<out_dir>/seed<k>``, its evaluation to ``<eval_dir>/seed<k>`` and its
    curves to ``<live_dir>/seed<k>``; resumable checkpoints live in ``<out_dir>.work/seed<k>`` (outside
    the DVC output, so a killed stage resumes there, if its params and data are unchanged:
    :func:`study.align.run_fingerprint`); the emptied ``<out_dir>.work`` is removed at the end. ``seed`` (the study seed) fixes the evaluation
    items and bootstrap replicates, identical for every model, so the models are scored on the same
    scenes. The metrics JSON is :func:`study.eval.seeds.aggregate_seeds` of the per-seed metrics.
    """
    from study.align import train

    run, x = ctx.run, ctx.paths
    params, data, seeds = ctx.params.align_run(run)
    e, seed, world_spec = ctx.params.eval, ctx.params.seed, ctx.params.world.spec
    world_dir, sft_dir, out_dir, eval_dir, live_dir = x.world_dir, x.sft_dir, x.out_dir, x.eval_dir, x.live_dir
    metrics_path, data_path = x.metrics_path, Path(x.data_path)
    if not data_path.is_file():
        raise FileNotFoundError(f"align run {run!r}: `data: {data}` has no preference dataset at {data_path}")
    world = World(world_dir)
    spec = load_spec(world_spec)
    work = default_work_dir(out_dir)
    per_seed = {}
    for k in seeds:
        torch.manual_seed(k)
        model_dir, live = Path(out_dir) / f"seed{k}", f"{live_dir}/seed{k}"
        train_metrics = train(
            params.method,
            policy=sft_dir,
            world=world,
            data=str(data_path),
            params=params,
            out_dir=model_dir,
            live_dir=live,
            work_dir=work / f"seed{k}",
            seed=k,
        )
        model, processor = load_model(model_dir)
        per_seed[k] = evaluate_aligned(
            model,
            processor,
            world,
            spec,
            e,
            seed,
            train_metrics,
            {"run": run, "method": params.method, "data": data, "seed": k, "split": e.split},
            Path(eval_dir) / f"seed{k}",
        )
    remove_if_empty(work)  # every seed removed its own work dir on success
    metrics = aggregate_seeds(per_seed)
    io.write_json(metrics_path, metrics)
    return metrics
