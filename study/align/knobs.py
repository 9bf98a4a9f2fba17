"""The alignment knobs in groups: every method's config is the shared :class:`AlignParams` plus the groups it reads.

As TRL pairs each trainer with its config (``DPOConfig``, ``OnlineDPOConfig``, ``RLOOConfig`` extend one
``TrainingArguments``), a method of :mod:`study.align.methods` reads :class:`AlignParams` (what trains, the
optimiser, precision: every method) plus the groups it declares. A group that several methods share lives
once (sampling from the policy, the judge, the online rounds, RL's reward handling, the pair-loss beta); what
only one method reads is that method's own group. ``SECTION`` is where a group's values live in
``params.yaml`` (``align.<SECTION>``; own groups under ``align.methods.<method>``); the BDHS group's values
are the ``bdhs`` section's, under their own names (``SOURCE``), so one value drives the offline BDHS data and
Online-BDHS.

No knob has a default here: ``params.yaml`` holds every value (:func:`study.config.align_params` reads it).
Validation is strict (``true`` is not ``1``, ``"no"`` is not ``False``) and happens at construction:
:func:`study.align.config.make_params` turns an error into one naming the knob and its range.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from study.config import Float

PAIR_LOSSES = ("dpo", "ipo", "slic")
LOSS_TYPE = {"dpo": "sigmoid", "ipo": "ipo", "slic": "hinge"}  # TRL DPOConfig.loss_type of each pair loss
ANNOTATORS = ("oracle", "noisy_oracle", "reward_model")


class Rule(ValueError):
    """A cross-field rule: ``param`` is the knob named, ``text`` what follows it."""

    def __init__(self, param: str, text: str):
        super().__init__(param + text)
        self.param, self.text = param, text


class Group(BaseModel):
    """A group of knobs; ``SECTION``: its place under ``params.yaml: align`` (None: a method's own group)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    SECTION: ClassVar[str | None] = None
    SOURCE: ClassVar[dict[str, str]] = {}  # knob -> its key in SECTION when the names differ


class AlignParams(Group):
    """The knobs every method reads: what trains, the optimiser, precision (``align.base``)."""

    SECTION: ClassVar[str] = "base"

    method: str = Field(description="a method of study.align.methods.REGISTRY")

    # parameters trained
    lora: bool
    lora_r: int = Field(ge=1, le=4096)
    lora_alpha: int = Field(ge=1, le=65536)
    lora_dropout: Float = Field(ge=0, lt=1)
    train_vision_tower: bool = Field(description="full fine-tuning only: also train the vision tower")

    # optimisation
    learning_rate: Float = Field(gt=0, le=1)
    projector_lr: Float = Field(gt=0, le=1, description="LR of the multi_modal_projector (trained fully)")
    epochs: Float = Field(gt=0, le=1000)
    batch_size: int = Field(ge=1, le=4096, description="pairs per step (RL: prompts per step)")
    grad_accum: int = Field(ge=1, le=1024)
    weight_decay: Float = Field(ge=0, le=1)
    warmup_ratio: Float = Field(ge=0, lt=1)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"]
    max_grad_norm: Float = Field(gt=0, le=1e6)
    max_length: int | None = Field(ge=8, description="DPO max_length; None = no truncation (VLM default)")
    logging_steps: int = Field(ge=1)
    save_steps: int = Field(ge=1, description="checkpoint every N steps (resume)")

    # precision / memory (the GPU path; study.align.common.prepare_model)
    bf16: bool = Field(
        description="bfloat16 weights and autocast; needs a GPU or a CPU with bf16 support "
        "(frozen weights in bf16, trainable ones kept in fp32)"
    )
    gradient_checkpointing: bool = Field(
        description="recompute activations in the backward pass (non-reentrant; trades ~20-30 % compute for memory)"
    )

    @model_validator(mode="after")
    def _lora_or_tower(self):
        if self.lora and self.train_vision_tower:
            raise Rule("train_vision_tower", ": true requires lora: false (LoRA targets the language model only)")
        return self

    @property
    def needs_annotator(self) -> bool:
        """The method judges answers it samples (it reads the :class:`Judge` group)."""
        from study.align import methods

        return methods.get(self.method).needs_annotator


class PairBeta(Group):
    """The pair loss's beta (IPO: tau), for every method trained on preference pairs (``align.pair``).

    Its scale differs by loss (IPO's tau sets a per-token margin target 1/(2 tau)), so one shared value cannot
    suit all three; the paper grids DPO {0.05, 0.1, 0.2, 0.5}, IPO {0.8, 0.9, 1.0}, SLiC {0.02, 0.1, 0.2}.
    With TRL's length-normalised IPO, tau = 0.1 would ask for a 5-nat margin per token, unreachable: the loss
    then stays at (1/(2 tau))^2 = 25 and only pushes margins apart (on the first organism the IPO run's loss
    went from 24.99 to 24.86 at tau 0.1, and from 0.308 to 0.294 at tau 0.9)."""

    SECTION: ClassVar[str] = "pair"

    beta_by_loss: dict[Literal[PAIR_LOSSES], Annotated[Float, Field(gt=0, le=100)]] = Field(  # type: ignore[valid-type]
        description="beta of each pair loss when `beta` is not set"
    )
    beta: Float | None = Field(gt=0, le=100, description="this run's beta; None = beta_by_loss of its pair loss")

    @model_validator(mode="after")
    def _resolve_beta(self):
        missing = sorted(set(PAIR_LOSSES) - set(self.beta_by_loss))
        if missing:
            raise Rule("beta_by_loss", f": needs a beta for every pair loss {list(PAIR_LOSSES)}, missing {missing}")
        if self.beta is None:  # the resolved value is what trains and what the run's record shows
            object.__setattr__(self, "beta", self.beta_by_loss[self.pair_loss_name])
        return self

    @property
    def pair_loss_name(self) -> str:
        """``dpo`` | ``ipo`` | ``slic``: the method itself for the offline objectives, else ``pair_loss``."""
        from study.align import methods

        return methods.get(self.method).loss or self.pair_loss

    @property
    def loss_type(self) -> str:
        """TRL ``DPOConfig.loss_type`` of this method's pair loss."""
        return LOSS_TYPE[self.pair_loss_name]


class PairLoss(Group):
    """Which pair loss a method that is not itself an objective applies (avg/online/mixed: own groups)."""

    pair_loss: Literal[PAIR_LOSSES] = Field(description="pair loss of avg/online/mixed methods")  # type: ignore[valid-type]


class Sampling(Group):
    """Answers drawn from the current policy (online and RL methods; ``align.sampling``)."""

    SECTION: ClassVar[str] = "sampling"

    temperature: Float = Field(gt=0, le=10, description="sampling temperature of the policy")
    max_new_tokens: int = Field(ge=1, le=4096)
    gen_batch_size: int = Field(ge=1, le=4096)


class Rounds(Group):
    """Online training in rounds of freshly sampled pairs (``align.online``)."""

    SECTION: ClassVar[str] = "online"

    round_size: int = Field(ge=1, description="online: prompts per round")


class Judge(Group):
    """Who prefers or scores the sampled answers (``align.judge``)."""

    SECTION: ClassVar[str] = "judge"

    annotator: Literal[ANNOTATORS]  # type: ignore[valid-type]
    annotator_accuracy: Float = Field(ge=0.5, le=1, description="noisy_oracle pairwise accuracy")
    reward_model_path: str = Field(description="local reward model dir (annotator=reward_model)")

    @model_validator(mode="after")
    def _reward_model_named(self):
        # that the directory exists is checked when training starts (check_reward_model): in the pipeline
        # the reward models are written by the `reward_models` stage, after params are first validated
        if self.annotator == "reward_model" and not self.reward_model_path:
            raise Rule("reward_model_path", ": must name a local reward model directory when annotator='reward_model'")
        return self


class RL(Group):
    """A scalar reward: its normalisation, the KL penalty and the collapse monitor (``align.rl``).

    Rewards are standardised by statistics of ``reward_norm_samples`` answers per prompt of the initial policy on
    ``reward_norm_prompts`` prompts (:meth:`study.align.reward.RewardScorer.fit`)."""

    SECTION: ClassVar[str] = "rl"

    audit_with_oracle: bool = Field(description="also log the exact oracle score (reward-hacking check)")
    kl_coef: Float = Field(ge=0, le=100, description="KL coefficient (RLOO beta / PPO per-token KL)")
    reward_norm_prompts: int = Field(ge=0, description="prompts sampled beforehand for reward mean/std; 0 = off")
    reward_norm_samples: int = Field(ge=1, le=64, description="answers per prompt for the reward mean/std")
    collapse_min_tokens: Float = Field(ge=0, description="collapse if mean answer length falls below this")
    collapse_length_ratio: Float = Field(ge=0, lt=1, description="... or below this share of its start value")
    stop_on_collapse: bool

    @model_validator(mode="after")
    def _scorer(self):
        if self.annotator == "noisy_oracle":
            raise Rule(
                "annotator",
                ": 'noisy_oracle' is a pairwise judge (its noise is on preferences, its score "
                "is the exact oracle's); RL methods need a scorer: use 'oracle' or 'reward_model'",
            )
        return self


class BDHSKnobs(Group):
    """Online-BDHS's sampler: the ``bdhs`` section's knobs, so one value drives the offline data and the runs."""

    SECTION: ClassVar[str] = "bdhs"
    SOURCE: ClassVar[dict[str, str]] = {
        "bdhs_rho_th": "rho_th",
        "bdhs_n": "n_bdhs",
        "bdhs_eps_s": "eps_s",
        "bdhs_noise_steps": "noise_steps",
    }

    bdhs_rho_th: Float = Field(ge=0, le=1, description="BDHS mask threshold")
    bdhs_n: int = Field(ge=1, le=50, description="BDHS N_BDHS")
    bdhs_eps_s: Float = Field(ge=-1, le=1, description="BDHS similarity threshold")
    bdhs_noise_steps: int = Field(ge=0, le=1000, description="BDHS_noise steps")


# --- each method's own group (params.yaml: align.methods.<method>) ---------------------------------------


class AvgDPOKnobs(PairLoss):
    gamma: Float = Field(ge=0, le=1, description="Avg-DPO weight of the first rejected answer, Eq. 5")


class MixedDPOKnobs(PairLoss):
    p: Float = Field(ge=0, le=1, description="Mixed-DPO: P(a sample is the offline pair), Eq. 4")


class OnlineBDHSKnobs(AvgDPOKnobs):
    regen_every: int = Field(ge=1, description="regenerate rejected answers every N rounds")
    bdhs_with_external: bool = Field(description="Avg-DPO with the dataset's rejected answer as the 2nd y-")


class RLOOKnobs(Group):
    rloo_k: int = Field(ge=2, le=64, description="RLOO samples per prompt (num_generations)")


class PPOKnobs(Group):
    ppo_epochs: int = Field(ge=1, le=100, description="PPO optimisation passes per rollout batch")
    ppo_minibatch: int = Field(ge=1, le=4096)
    clip_range: Float = Field(gt=0, lt=1, description="PPO ratio clip epsilon")
    clip_range_value: Float = Field(gt=0, le=100)
    vf_coef: Float = Field(gt=0, le=100)
    gae_gamma: Float = Field(ge=0, le=1)
    gae_lambda: Float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _minibatch(self):
        if self.ppo_minibatch > self.batch_size:
            raise Rule("ppo_minibatch", f": must be <= batch_size ({self.batch_size}), got {self.ppo_minibatch}")
        return self


class NoKnobs(Group):
    """A method with no knob of its own (the offline objectives)."""
