"""Compact PPO for the LLaVA policy (TRL 1.16 has no PPOTrainer), on the same generation and reward plumbing
as RLOO (:mod:`.reward`).

Objective (Eq. 2): max_theta E[ r(x, y) - kl_coef * KL(pi_theta || pi_ref) ], pi_ref = the initial policy.

Algorithm (:func:`train_ppo`):
  * value head V = Linear(H, 1) on the policy's last hidden state (shared trunk), V(s_t) read at the
    position that predicts answer token t;
  * per-token reward r_t = -kl_coef * (log pi_old(a_t|s_t) - log pi_ref(a_t|s_t)), plus the normalised
    score on the answer's last token (:func:`kl_penalised_rewards`);
  * GAE (:func:`gae`): delta_t = r_t + gamma V_{t+1} - V_t (V after the last token = 0),
    A_t = sum_l (gamma lambda)^l delta_{t+l}, returns R_t = A_t + V_t; advantages whitened per batch;
  * loss (:func:`ppo_loss`): clipped surrogate -E_t[min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t)],
    rho_t = pi_theta / pi_old, plus vf_coef * 1/2 E_t[max((V - R)^2, (V_old + clip(V - V_old, +-eps_v) - R)^2)];
  * ``ppo_epochs`` passes of minibatches over each rollout batch (one sample per prompt), grad-norm clip.
Logits are divided by ``temperature`` wherever log-probs are taken, so that pi_old is the sampling
distribution (as TRL does).

Collapse and reward hacking are tracked by :class:`study.align.reward.CollapseMonitor`.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from study.align import common
from study.align.config import AlignParams, check_columns
from study.align.reward import CollapseMonitor, RewardScorer, make_scorer


class ValueHead(nn.Module):
    """V(s) = w . h_L(s) + b on the policy's last hidden state."""

    def __init__(self, hidden: int):
        super().__init__()
        self.v = nn.Linear(hidden, 1)
        nn.init.normal_(self.v.weight, std=1.0 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.v.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.v(h).squeeze(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return ((x - mean) * torch.rsqrt(var + eps)) * mask


def kl_penalised_rewards(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """r_t = -kl_coef (log pi_old - log pi_ref)_t on every answer token, + score on the last one. [B, T]."""
    mask = mask.to(logp.dtype)
    rewards = -kl_coef * (logp - ref_logp) * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.size(0))
    has = mask.sum(1) > 0
    rewards[rows[has], last[has]] += scores.to(rewards.dtype)[has]
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded answers; returns (advantages, returns), [B, T]."""
    mask = mask.to(values.dtype)
    T = rewards.size(1)
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.size(0), dtype=rewards.dtype)
    for t in reversed(range(T)):
        nxt_mask = mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        nxt_v = values[:, t + 1] * nxt_mask if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nxt_v - values[:, t]
        last = delta + gamma * lam * nxt_mask * last
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def ppo_loss(
    logp, old_logp, adv, values, old_values, returns, mask, *, clip: float, clip_v: float, vf_coef: float
) -> dict:
    """Clipped-surrogate policy loss + clipped value loss (module docstring), token-averaged under ``mask``."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - clip, 1 + clip)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    v_clipped = old_values + torch.clamp(values - old_values, -clip_v, clip_v)
    vf_loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (v_clipped - returns) ** 2), mask)
    return {
        "loss": pg_loss + vf_coef * vf_loss,
        "pg_loss": pg_loss,
        "vf_loss": vf_loss,
        "clipfrac": masked_mean((pg2 > pg1).to(logp.dtype), mask),
        "approx_kl": masked_mean(0.5 * (logp - old_logp) ** 2, mask),
    }


@dataclass
class Rollout:
    input_ids: torch.Tensor  # [B, P + T] prompt (left-padded) + answer (right-padded)
    attention_mask: torch.Tensor  # [B, P + T]
    position_ids: torch.Tensor  # [B, P + T]
    pixel_values: torch.Tensor
    prompt_len: int  # P
    completion_mask: torch.Tensor  # [B, T]: answer tokens up to and including the first EOS
    texts: list[str]
    image_sizes: torch.Tensor | None = None  # [B, 2] (LLaVA-NeXT's anyres tiling needs them)

    def take(self, idx) -> "Rollout":
        return Rollout(
            self.input_ids[idx],
            self.attention_mask[idx],
            self.position_ids[idx],
            self.pixel_values[idx],
            self.prompt_len,
            self.completion_mask[idx],
            [self.texts[i] for i in idx.tolist()],
            None if self.image_sizes is None else self.image_sizes[idx],
        )


@torch.no_grad()
def rollout(model, processor, images, prompts, *, temperature: float, max_new_tokens: int, seed: int) -> Rollout:
    """One sampled answer per prompt, with token ids (same prompt rendering and position ids as
    :func:`study.model.generate.generate`)."""
    from study.model.generate import image_token_id, render_prompts

    tok = processor.tokenizer
    torch.manual_seed(seed)
    dev = next(model.parameters()).device
    enc = processor(
        images=list(images),
        text=render_prompts(processor, prompts),
        return_tensors="pt",
        padding=True,
        padding_side="left",
    )
    pos = (enc["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
    was = model.training
    model.eval()
    try:
        gen = model.generate(
            **{k: v.to(dev) for k, v in enc.items()},
            position_ids=pos.to(dev),
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            suppress_tokens=[image_token_id(model)],
        ).cpu()  # as TRL: no sampled image token
    finally:
        model.train(was)
    P = enc["input_ids"].shape[1]
    comp = gen[:, P:]
    is_eos = comp == tok.eos_token_id
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full((comp.size(0),), comp.size(1)))
    cmask = (torch.arange(comp.size(1))[None] <= first[:, None]).long()
    comp = comp.masked_fill(cmask == 0, tok.pad_token_id)
    attn = torch.cat([enc["attention_mask"], cmask], 1)
    texts = [t.strip() for t in tok.batch_decode(comp, skip_special_tokens=True)]
    return Rollout(
        torch.cat([enc["input_ids"], comp], 1),
        attn,
        (attn.cumsum(-1) - 1).clamp(min=0),
        enc["pixel_values"],
        P,
        cmask,
        texts,
        enc.get("image_sizes"),
    )


def logps_values(model, value_head: ValueHead | None, ro: Rollout, temperature: float):
    """Per-token log pi(a_t | s_t) of the answer tokens and V(s_t) (None without a value head), [B, T]."""
    dev = next(model.parameters()).device
    out = model(
        input_ids=ro.input_ids.to(dev),
        attention_mask=ro.attention_mask.to(dev),
        position_ids=ro.position_ids.to(dev),
        pixel_values=ro.pixel_values.to(dev),
        **({} if ro.image_sizes is None else {"image_sizes": ro.image_sizes.to(dev)}),
        output_hidden_states=value_head is not None,
        use_cache=False,
    )
    P = ro.prompt_len
    logits = out.logits[:, P - 1 : -1].float() / temperature
    labels = ro.input_ids[:, P:].to(dev)
    logp = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(-1)
    values = value_head(out.hidden_states[-1][:, P - 1 : -1].float()) if value_head is not None else None
    return logp, values


def _ref_logps(model, ref, ro: Rollout, temperature: float):
    with torch.no_grad():
        if ref is not None:
            return logps_values(ref, None, ro, temperature)[0]
        with model.disable_adapter():
            return logps_values(model, None, ro, temperature)[0]


def train_ppo(
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
    """Compact PPO (module docstring); saves the merged policy (value head dropped) to ``out_dir``.

    Resume: after every rollout batch the trainable weights (policy + value head), optimiser, scheduler
    and loop state go to ``work_dir/state`` (atomically); a new call continues after the last batch.
    """
    from study.align.offline import default_work_dir
    from study.align.online import load_state, round_indices, save_state

    check_columns(data, "ppo")
    rows = common.as_records(data)
    model = common.prepare_model(model, p)
    scorer = scorer or make_scorer(p, world, annotator, seed)
    stats = scorer.fit(model, processor, world, rows, p, seed) if p.reward_norm_prompts else {}
    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    ref = None
    if p.lora:
        model = common.wrap_lora(model, p)
    else:
        ref = common.frozen_copy(model)
        common.set_full_finetune(model, p)
    common.upcast_trainable(model)  # bf16: frozen weights bf16, trained ones fp32 (no autocast in this loop)
    if p.gradient_checkpointing:
        common.enable_checkpointing(model)
    model.train()
    hidden = model.config.get_text_config().hidden_size
    torch.manual_seed(seed)
    value_head = ValueHead(hidden).to(next(model.parameters()).device)
    both = nn.ModuleDict({"policy": model, "value": value_head})
    groups = common.param_groups(model, p.learning_rate, p.projector_lr, p.weight_decay)
    groups.append(
        {"params": list(value_head.parameters()), "lr": p.learning_rate, "weight_decay": 0.0, "name": "value"}
    )
    optimizer = torch.optim.AdamW(groups, lr=p.learning_rate)
    n_batches = max(1, math.ceil(p.epochs * len(rows) / p.batch_size))
    mb_per_batch = math.ceil(p.batch_size / p.ppo_minibatch)
    scheduler = common.schedule(optimizer, p, n_batches * p.ppo_epochs * mb_per_batch)
    monitor = CollapseMonitor(p.collapse_min_tokens, p.collapse_length_ratio)
    loop = {"round": -1, "history": []}
    state_dir = work / "state"
    resumed = state_dir.is_dir()
    if resumed:
        loop = load_state(state_dir, both, optimizer, scheduler)
        for h in loop["history"]:
            monitor.update(h["batch"], h["mean_length"], h["reward"], h.get("audit/oracle_score"))
    live = None
    if live_dir is not None:
        from dvclive import Live

        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=resumed)
    t0 = time.perf_counter()
    start = loop["round"] + 1
    for b in range(start, n_batches):
        idx = round_indices(len(rows), p.batch_size, b, seed)
        sel = [rows[i] for i in idx]
        prompts, sids = [r["prompt"] for r in sel], [r["scene_id"] for r in sel]
        ro = rollout(
            model,
            processor,
            [world.image(s) for s in sids],
            prompts,
            temperature=p.temperature,
            max_new_tokens=p.max_new_tokens,
            seed=int(np.random.SeedSequence([seed, b]).generate_state(1)[0]),
        )
        mask = ro.completion_mask.float()
        with torch.no_grad():
            model.eval()
            old_logp, old_values = logps_values(model, value_head, ro, p.temperature)
            ref_logp = _ref_logps(model, ref, ro, p.temperature)
            model.train()
        raw = scorer.raw(sids, prompts, ro.texts)
        scores = torch.tensor(scorer.normalise(raw), dtype=torch.float32)
        rewards = kl_penalised_rewards(scores, old_logp.cpu(), ref_logp.cpu(), mask, p.kl_coef)
        adv, ret = gae(rewards, old_values.cpu(), mask, p.gae_gamma, p.gae_lambda)
        adv = masked_whiten(adv, mask)
        logs: dict[str, list] = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "approx_kl": []}
        g = torch.Generator().manual_seed(int(seed) * 7919 + b)
        for _ in range(p.ppo_epochs):
            perm = torch.randperm(len(sel), generator=g)
            for s in range(0, len(sel), p.ppo_minibatch):
                mb = perm[s : s + p.ppo_minibatch]
                sub = ro.take(mb)
                logp, values = logps_values(model, value_head, sub, p.temperature)
                dev = logp.device
                out = ppo_loss(
                    logp,
                    old_logp[mb].to(dev),
                    adv[mb].to(dev),
                    values,
                    old_values[mb].to(dev),
                    ret[mb].to(dev),
                    mask[mb].to(dev),
                    clip=p.clip_range,
                    clip_v=p.clip_range_value,
                    vf_coef=p.vf_coef,
                )
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_([q for q in both.parameters() if q.requires_grad], p.max_grad_norm)
                optimizer.step()
                scheduler.step()
                for k in logs:
                    logs[k].append(float(out[k].detach()))
        kl = float((((old_logp - ref_logp) * mask.to(old_logp.device)).sum(1)).mean())
        h = {
            "batch": b,
            "reward": float(scores.mean()),
            "reward_raw": float(np.mean(raw)),
            "kl": kl,
            "mean_length": float(mask.sum(1).mean()),
            **{k: float(np.mean(v)) for k, v in logs.items()},
            "lr": float(scheduler.get_last_lr()[0]),
        }
        audit = scorer.audit_scores(sids, prompts, ro.texts)
        if audit is not None:
            h["audit/oracle_score"] = float(np.mean(audit))
        reason = monitor.update(b, h["mean_length"], h["reward"], h.get("audit/oracle_score"))
        loop["history"].append(h)
        loop["round"] = b
        if live is not None:
            for k, v in h.items():
                if k != "batch":
                    live.log_metric(common.metric_name(f"ppo/{k}"), v)
            live.next_step()
        save_state(state_dir, both, optimizer, scheduler, loop)
        if reason and p.stop_on_collapse:
            break
    if live is not None:
        live.end()
    hist = loop["history"]
    metrics = {
        "batches": len(hist),
        "wall_s": time.perf_counter() - t0,
        "resumed_at_batch": start if resumed else None,
        **stats,
    }
    for k in ("reward", "reward_raw", "kl", "mean_length", "audit/oracle_score", "clipfrac", "vf_loss"):
        vals = [x[k] for x in hist if k in x]
        if vals:
            metrics[f"{k}_first"], metrics[f"{k}_last"] = vals[0], vals[-1]
    metrics["collapse"] = monitor.report()
    metrics["history"] = hist
    common.save_policy(
        model,
        processor,
        out_dir,
        {
            "method": "ppo",
            "params": p.model_dump(),
            "seed": seed,
            "rows": len(rows),
            "metrics": {k: v for k, v in metrics.items() if k != "history"},
        },
    )
    if work.exists():
        shutil.rmtree(work)
    return metrics
