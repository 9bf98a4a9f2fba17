"""RL reward plumbing and collapse monitoring, shared by RLOO (:mod:`.rl`) and PPO (:mod:`.ppo`).

Objective (Eq. 2): max_theta E_{x, y ~ pi_theta}[ r(x, y) - beta * KL(pi_theta(.|x) || pi_ref(.|x)) ],
pi_ref = the initial policy (frozen; with LoRA, the network with its adapters disabled).

Reward r (:class:`RewardScorer`): the annotator's ``score(scene, prompt, answer)`` -- the exact oracle
or a learned reward model (:class:`study.prefs.annotators.RewardModelAnnotator`, i.e. r_phi of a
Bradley-Terry model, Eq. 1) -- normalised as in the paper to zero mean and unit variance with
statistics computed BEFOREHAND (:meth:`RewardScorer.fit`: ``reward_norm_samples`` samples per prompt of the initial policy on
``reward_norm_prompts`` prompts): r~ = (r - mu) / sigma. The noisy oracle is refused for RL (its noise is
pairwise; its score is the exact oracle's). With ``audit_with_oracle`` and a non-oracle reward, the exact
oracle score of the same samples is logged too (``audit/oracle_score``), which is what exposes reward
hacking: the training reward rises while the audit falls.

Collapse (:class:`CollapseMonitor`, both methods): flagged when the mean answer length falls below
``collapse_min_tokens`` or below ``collapse_length_ratio`` x its first value; reward hacking is flagged
when the training reward ends higher than it started while the oracle audit ends lower (first vs last
three logged values). The report is returned in the metrics (``collapse``) and logged; with
``stop_on_collapse`` training stops at the first collapse.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from transformers import TrainerCallback

from study.align import common
from study.align.config import AlignParams

# ---------------------------------------------------------------------------------------------- reward


class RewardScorer:
    """r~(scene_id, prompt, answer) = (annotator.score - mean) / std, plus an optional audit scorer."""

    def __init__(self, annotator, scenes: dict, *, mean: float = 0.0, std: float = 1.0, audit=None):
        self.annotator, self.scenes, self.mean, self.std, self.audit = annotator, scenes, mean, std, audit

    def raw(self, scene_ids: Sequence[str], prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        return common.score_batch(self.annotator, [self.scenes[s] for s in scene_ids], prompts, answers)

    def normalise(self, raw: Sequence[float]) -> list[float]:
        return [(float(r) - self.mean) / self.std for r in raw]

    def __call__(self, scene_ids, prompts, answers) -> list[float]:
        return self.normalise(self.raw(scene_ids, prompts, answers))

    def audit_scores(self, scene_ids, prompts, answers) -> list[float] | None:
        if self.audit is None:
            return None
        return common.score_batch(self.audit, [self.scenes[s] for s in scene_ids], prompts, answers)

    def fit(self, model, processor, world, rows: list[dict], p: AlignParams, seed: int) -> dict:
        """Set mean/std from ``reward_norm_samples`` samples per prompt of ``model`` on the first ``reward_norm_prompts`` rows of a
        seeded permutation; returns the statistics."""
        from study.model.generate import generate

        n = min(p.reward_norm_prompts, len(rows))
        pick = np.random.default_rng([seed, 31337]).permutation(len(rows))[:n]
        sel = [rows[i] for i in pick] * p.reward_norm_samples
        was = model.training
        model.eval()
        try:
            answers = generate(
                model,
                processor,
                [world.image(r["scene_id"]) for r in sel],
                [r["prompt"] for r in sel],
                do_sample=True,
                temperature=p.temperature,
                max_new_tokens=p.max_new_tokens,
                batch_size=p.gen_batch_size,
                seed=seed,
            )
        finally:
            model.train(was)
        raw = self.raw([r["scene_id"] for r in sel], [r["prompt"] for r in sel], answers)
        self.mean = float(np.mean(raw))
        sd = float(np.std(raw))
        self.std = sd if sd > 1e-8 else 1.0
        return {"reward_mean": self.mean, "reward_std": self.std, "reward_norm_samples": len(raw)}


def make_scorer(p: AlignParams, world, annotator=None, seed: int = 0) -> RewardScorer:
    annotator = annotator or common.make_annotator(p, world, seed)
    audit = None
    if p.audit_with_oracle and p.annotator != "oracle":
        from study.prefs.annotators import OracleAnnotator

        audit = OracleAnnotator(common.world_spec(world), seed=seed)
    return RewardScorer(annotator, common.scene_lookup(world), audit=audit)


def trl_reward_func(scorer: RewardScorer):
    """A TRL reward function: normalised annotator score of each completion (dataset columns ``scene_id``
    and ``prompt_text`` are forwarded by TRL); logs the raw mean and the oracle audit."""

    def annotator_reward(prompts, completions, scene_id, prompt_text, log_metric=None, **kwargs):
        answers = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        answers = [a if isinstance(a, str) else " ".join(x.get("text", "") for x in a) for a in answers]
        raw = scorer.raw(scene_id, prompt_text, answers)
        if log_metric is not None:
            log_metric("reward_raw", float(np.mean(raw)))
            audit = scorer.audit_scores(scene_id, prompt_text, answers)
            if audit is not None:
                log_metric("audit/oracle_score", float(np.mean(audit)))
        return scorer.normalise(raw)

    return annotator_reward


# -------------------------------------------------------------------------------------------- collapse


class CollapseMonitor:
    """Tracks mean answer length, training reward and audit score; flags collapse and reward hacking."""

    def __init__(self, min_tokens: float, length_ratio: float, window: int = 3):
        self.min_tokens, self.length_ratio, self.window = min_tokens, length_ratio, window
        self.lengths: list[float] = []
        self.rewards: list[float] = []
        self.audits: list[float] = []
        self.collapsed_at: int | None = None
        self.reason: str | None = None

    def update(
        self, step: int, mean_length: float | None, reward: float | None = None, audit: float | None = None
    ) -> str | None:
        for lst, v in ((self.lengths, mean_length), (self.rewards, reward), (self.audits, audit)):
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                lst.append(float(v))
        if self.collapsed_at is None and mean_length is not None and self.lengths:
            first = self.lengths[0]
            if mean_length < self.min_tokens:
                self.reason = f"mean answer length {mean_length:.2f} < collapse_min_tokens {self.min_tokens}"
            elif first > 0 and mean_length < self.length_ratio * first:
                self.reason = (
                    f"mean answer length {mean_length:.2f} < {self.length_ratio} x its start value {first:.2f}"
                )
            if self.reason:
                self.collapsed_at = step
        return self.reason

    def _delta(self, xs: list[float]) -> float | None:
        if len(xs) < 2:
            return None
        w = max(1, min(self.window, len(xs) // 2))
        return float(np.mean(xs[-w:]) - np.mean(xs[:w]))

    def report(self) -> dict:
        dr, da = self._delta(self.rewards), self._delta(self.audits)
        hacking = bool(dr is not None and da is not None and dr > 0 and da < 0)
        return {
            "collapsed": self.collapsed_at is not None,
            "collapse_step": self.collapsed_at,
            "collapse_reason": self.reason,
            "reward_hacking": hacking,
            "length_first": self.lengths[0] if self.lengths else None,
            "length_last": self.lengths[-1] if self.lengths else None,
            "reward_delta": dr,
            "audit_delta": da,
        }


class CollapseCallback(TrainerCallback):
    """Feeds TRL's RLOO logs (``completions/mean_length``, ``reward``, ``audit/oracle_score``) to a monitor."""

    def __init__(self, monitor: CollapseMonitor, stop: bool = False):
        self.monitor, self.stop = monitor, stop

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "completions/mean_length" not in logs:
            return
        reason = self.monitor.update(
            state.global_step, logs.get("completions/mean_length"), logs.get("reward"), logs.get("audit/oracle_score")
        )
        if reason and self.stop:
            control.should_training_stop = True
