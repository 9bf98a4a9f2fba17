"""RLHF (paper Eq. 2, §5.5) with ``trl.RLOOTrainer``; reward plumbing in :mod:`.reward`, compact PPO in
:mod:`.ppo` (both re-exported here).

Objective (Eq. 2): max_theta E_{x, y ~ pi_theta}[ r(x, y) - beta * KL(pi_theta(.|x) || pi_ref(.|x)) ],
pi_ref = the initial policy (frozen; with LoRA, the network with its adapters disabled); r = the
normalised annotator score (:class:`study.align.reward.RewardScorer`).

RLOO (``trl.RLOOTrainer``, it handles our LLaVA + processor on CPU; checked): k = ``rloo_k`` samples per
prompt at ``temperature``; TRL subtracts beta * sum_t (log pi - log pi_ref) from each sample's reward
(beta = ``kl_coef``) and uses the leave-one-out baseline, A_i = R_i - 1/(k-1) sum_{j != i} R_j, with its
clipped importance ratio per sequence. TRL builds the reference from the policy's ``name_or_path``, so
for full fine-tuning the initial policy is first saved to ``work_dir/init`` (safetensors) and the policy's
``name_or_path`` points there. ``batch_size`` counts prompts: TRL's per-device batch is batch_size * k.

Caveat (TRL behaviour, not changed here): TRL scores the sampled tokens with a forward pass that gets no
``position_ids``, so rows whose prompt was left-padded are scored at shifted positions relative to
generation (which derives positions from the attention mask). Our prompts differ by a few tokens at most.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from trl import RLOOConfig, RLOOTrainer

from study.align import common
from study.align.config import AlignParams, check_columns
from study.align.ppo import (  # noqa: F401
    Rollout,
    ValueHead,
    gae,
    kl_penalised_rewards,
    logps_values,
    masked_mean,
    masked_whiten,
    ppo_loss,
    rollout,
    train_ppo,
)
from study.align.reward import CollapseCallback, CollapseMonitor, RewardScorer, make_scorer, trl_reward_func  # noqa: F401

# ------------------------------------------------------------------------------------------------ RLOO


class AlignRLOOTrainer(common.ProjectorLRMixin, RLOOTrainer):
    """``RLOOTrainer`` whose AdamW puts the multimodal projector in its own group at ``projector_lr``."""


def rloo_args(p: AlignParams, output_dir, seed: int, **overrides) -> RLOOConfig:
    kw = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=p.batch_size * p.rloo_k,
        num_generations=p.rloo_k,
        max_completion_length=p.max_new_tokens,
        temperature=p.temperature,
        beta=p.kl_coef,
        learning_rate=p.learning_rate,
        num_train_epochs=p.epochs,
        gradient_accumulation_steps=p.grad_accum,
        max_grad_norm=p.max_grad_norm,
        weight_decay=p.weight_decay,
        lr_scheduler_type=p.lr_scheduler,
        warmup_steps=p.warmup_ratio,
        logging_steps=p.logging_steps,
        save_strategy="steps",
        save_steps=p.save_steps,
        save_total_limit=1,
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=common.use_cpu(),
        **common.precision_args(p),
        remove_unused_columns=False,
        normalize_advantages=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    kw.update(overrides)
    return RLOOConfig(**kw)


def train_rloo(
    model,
    processor,
    world,
    data,
    p: AlignParams,
    out_dir: str | Path,
    *,
    annotator=None,
    live_dir=None,
    work_dir=None,
    seed: int = 0,
    callbacks=(),
    scorer: RewardScorer | None = None,
) -> dict:
    """RLOO with ``trl.RLOOTrainer``; saves the merged policy to ``out_dir``; returns metrics + collapse report."""
    from study.align.offline import default_work_dir

    check_columns(data, "rloo")
    rows = common.as_records(data)
    model = common.prepare_model(model, p)
    scorer = scorer or make_scorer(p, world, annotator, seed)
    stats = scorer.fit(model, processor, world, rows, p, seed) if p.reward_norm_prompts else {}
    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    trainer_dir = work / "trainer"
    ckpt = common.last_checkpoint(trainer_dir)
    peft_config = common.lora_config(p) if p.lora else None
    if not p.lora:
        common.set_full_finetune(model, p)
        init = work / "init"
        if not (init / "config.json").is_file():  # TRL builds pi_ref from name_or_path: the initial policy
            common.save_policy(model, processor, init)
        model.config._name_or_path = str(init)
    monitor = CollapseMonitor(p.collapse_min_tokens, p.collapse_length_ratio)
    model.train()
    trainer = AlignRLOOTrainer(
        model=model,
        reward_funcs=trl_reward_func(scorer),
        args=rloo_args(p, trainer_dir, seed),
        train_dataset=common.prompt_dataset(rows, world),
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[
            c
            for c in (
                common.dvclive_callback(live_dir, resume=ckpt is not None),
                CollapseCallback(monitor, p.stop_on_collapse),
                *callbacks,
            )
            if c is not None
        ],
        projector_lr=p.projector_lr,
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=ckpt)
    metrics = {
        "train_loss": float(result.training_loss),
        "steps": int(trainer.state.global_step),
        "distributed": common.distributed_kind(trainer),
        "wall_s": time.perf_counter() - t0,
        "resumed_from": Path(ckpt).name if ckpt else None,
        **stats,
    }
    metrics.update(
        common.history_summary(
            trainer.state.log_history,
            ("reward", "reward_raw", "kl", "audit/oracle_score", "completions/mean_length", "entropy"),
        )
    )
    metrics["collapse"] = monitor.report()
    common.save_policy(
        trainer.model,
        processor,
        out_dir,
        {"method": "rloo", "params": p.model_dump(), "seed": seed, "rows": len(rows), "metrics": metrics},
    )
    if work.exists() and common.is_main_process():
        shutil.rmtree(work)
    return metrics
