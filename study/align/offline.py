"""Offline DPO / IPO / SLiC (paper §1–2, Eq. 3): a thin layer over ``trl.DPOTrainer``.

For a fixed preference set D = {(x, y+, y-)} and h the log-ratio margin (:mod:`study.align.losses`),

    dpo:   L = E_D[ -log sigma(beta * h) ]            (TRL loss_type "sigmoid", Eq. 3)
    ipo:   L = E_D[ (h_len - 1 / (2 beta))^2 ]         (TRL "ipo", length-normalised h)
    slic:  L = E_D[ max(0, 1 - beta * h) ]            (TRL "hinge")

with pi_ref = the initial policy, frozen. TRL does the rest unchanged: its vision preference collator
(image processed on the fly, prompt left-padded, chosen/rejected right-padded, the same image for both),
its fused per-token log-probs, its loss and its metrics (``rewards/chosen|rejected|margins|accuracies``,
``logps/*``), which go to DVCLive. What this module adds: which parameters train (LoRA on the language
model + the projector fully, or full fine-tuning; :mod:`study.align.common`), the projector's own LR
(:class:`AlignDPOTrainer`), resume and atomic output.

Resume: checkpoints go to ``work_dir`` every ``save_steps`` steps (``save_total_limit=1``); a call that
finds a checkpoint there resumes from it (model/adapter, optimiser, scheduler, RNG and data position,
all restored by ``transformers.Trainer``) and the DVCLive curves continue. The output directory is
written once, at the end, through :func:`study.io.atomic_dir`; the work dir is removed after that.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from trl import DPOTrainer

from study.align import common
from study.align.config import AlignParams, check_columns
from study.resume import default_work_dir  # noqa: F401  (re-exported: online, rl, ppo, avg_dpo)


class AlignDPOTrainer(common.ProjectorLRMixin, DPOTrainer):
    """``DPOTrainer`` whose AdamW puts the multimodal projector in its own group at ``projector_lr`` (a
    keyword argument, :class:`study.align.common.ProjectorLRMixin`)."""


def make_dpo_trainer(
    model,
    processor,
    train_ds,
    p: AlignParams,
    work_dir: str | Path,
    seed: int,
    *,
    trainer_cls=AlignDPOTrainer,
    ref_model=None,
    eval_ds=None,
    callbacks=(),
    optimizers=(None, None),
    peft: bool | None = None,
    trainer_kwargs: dict | None = None,
    **arg_overrides,
):
    """A (subclass of) ``DPOTrainer`` configured from ``p``.

    ``model`` is a plain LLaVA (already through :func:`study.align.common.prepare_model` for ``bf16``):
    with ``p.lora`` the trainer wraps it with the LoRA config and the reference is the adapter-disabled
    network; otherwise it is fully fine-tuned against ``ref_model``
    (a frozen copy of the initial policy is made when ``ref_model`` is None). ``peft=False`` skips the
    wrapping (the caller passes an already wrapped model, as the online rounds do).
    """
    args = common.dpo_args(
        p, work_dir, seed, **({"eval_strategy": "epoch"} if eval_ds is not None else {}), **arg_overrides
    )
    peft_config = None
    if peft is None:
        peft = p.lora
    if peft:
        peft_config = common.lora_config(p)
    elif not hasattr(model, "peft_config"):
        common.set_full_finetune(model, p)
        if ref_model is None:
            ref_model = common.frozen_copy(model)
    model.train()
    return trainer_cls(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        callbacks=[c for c in callbacks if c is not None],
        optimizers=optimizers,
        peft_config=peft_config,
        projector_lr=p.projector_lr,
        **(trainer_kwargs or {}),
    )


def run_dpo_trainer(trainer, processor, out_dir, work: Path, info: dict, resume_from: str | None) -> dict:
    """Train (resuming if asked), save the merged policy atomically, remove the work dir, return metrics."""
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = {
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics["train_runtime"]),
        "steps": int(trainer.state.global_step),
        "distributed": common.distributed_kind(trainer),
        "resumed_from": Path(resume_from).name if resume_from else None,
        "trainable_params": sum(q.numel() for q in trainer.model.parameters() if q.requires_grad),
    }
    metrics.update(common.history_summary(trainer.state.log_history))
    if trainer.eval_dataset is not None:
        metrics.update(
            {
                k: float(v)
                for k, v in trainer.evaluate().items()
                if k.startswith("eval_") and isinstance(v, (int, float))
            }
        )
    metrics["wall_s"] = time.perf_counter() - t0
    common.save_policy(trainer.model, processor, out_dir, {**info, "metrics": metrics})  # main process; all wait
    if work.exists() and common.is_main_process():
        shutil.rmtree(work)
    return metrics


def train_offline(
    model,
    processor,
    world,
    data,
    p: AlignParams,
    out_dir: str | Path,
    *,
    live_dir=None,
    work_dir=None,
    seed: int = 0,
    eval_data=None,
    callbacks=(),
    annotator=None,
) -> dict:
    """DPO / IPO / SLiC (``p.method``) on preference ``data``; saves the merged policy to ``out_dir``.

    ``data``: preference rows (:mod:`study.prefs.schema`: prompt, chosen, rejected, scene_id, ...), whose
    images come from ``world``, or a ready TRL vision preference ``datasets.Dataset``. Returns the
    metrics (final loss, first/last reward margin and accuracy, runtime, resume point).
    """
    if p.method not in ("dpo", "ipo", "slic"):
        raise ValueError(f"train_offline runs dpo/ipo/slic, got method {p.method!r}")
    check_columns(data, p.method)
    model = common.prepare_model(model, p)  # bf16 weights (trainable ones are upcast by the trainer)
    train_ds = data if common.is_trl_dataset(data) else common.preference_dataset(data, world)
    eval_ds = None
    if eval_data is not None:
        check_columns(eval_data, p.method)
        eval_ds = eval_data if common.is_trl_dataset(eval_data) else common.preference_dataset(eval_data, world)
    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    ckpt = common.last_checkpoint(work)
    trainer = make_dpo_trainer(
        model,
        processor,
        train_ds,
        p,
        work,
        seed,
        eval_ds=eval_ds,
        callbacks=[common.dvclive_callback(live_dir, resume=ckpt is not None), *callbacks],
    )
    info = {"method": p.method, "loss_type": p.loss_type, "params": p.model_dump(), "seed": seed, "rows": len(train_ds)}
    return run_dpo_trainer(trainer, processor, out_dir, work, info, ckpt)
