"""The alignment methods by name: each one's trainer, the knobs it reads and the preference columns it needs.

A method is a :class:`Method` in :data:`REGISTRY`. Every method reads the shared knobs (:data:`BASE_KNOBS`:
what trains, the optimiser, precision); ``knobs`` lists the other :class:`~study.align.config.AlignParams`
fields it reads, its own group, as TRL pairs each trainer with its config. A run of ``params.yaml`` may set
only knobs of its method (:func:`study.align.config.run_params` names a knob the method does not read), while
``align.base`` holds values for every method and each method takes the ones it reads.

Adding a method is one module with its train function
``fn(model, processor, world, rows, params, out_dir, *, live_dir, work_dir, seed, annotator, **kw) -> dict``
and one :func:`register` call (``tests/align/test_align_methods.py`` registers a dummy method that way).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Literal

BASE_KNOBS = (
    "method",
    "beta",
    "beta_by_loss",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "train_vision_tower",
    "learning_rate",
    "projector_lr",
    "epochs",
    "batch_size",
    "grad_accum",
    "weight_decay",
    "warmup_ratio",
    "lr_scheduler",
    "max_grad_norm",
    "max_length",
    "logging_steps",
    "save_steps",
    "bf16",
    "gradient_checkpointing",
)
SAMPLING = ("temperature", "max_new_tokens", "gen_batch_size")  # answers drawn from the current policy
ROUNDS = ("round_size",)  # online: prompts per round
JUDGE = ("annotator", "annotator_accuracy", "reward_model_path")  # who prefers / scores the sampled answers
RL_KNOBS = ("audit_with_oracle", "kl_coef", "reward_norm_prompts", "collapse_min_tokens", "collapse_length_ratio")
RL_KNOBS += ("stop_on_collapse",)
BDHS_KNOBS = ("bdhs_rho_th", "bdhs_n", "bdhs_eps_s", "bdhs_noise_steps")  # the pipeline sets them from `bdhs`
PAIR_COLUMNS = ("prompt", "chosen", "rejected", "scene_id")
TRL_PAIR_COLUMNS = ("prompt", "chosen", "rejected", "images")


@dataclass(frozen=True)
class Method:
    """One alignment method. ``trainer``: ``"module:function"`` (imported when it runs); ``kind``: offline
    (a fixed dataset), online (pairs sampled from the current policy) or rl (a scalar reward); ``knobs``: the
    fields it reads besides :data:`BASE_KNOBS`; ``columns``: the preference columns it needs (``trl_columns``:
    those of a ready TRL vision preference dataset, None = not accepted); ``loss``: the pair loss of an
    offline objective (None: the ``pair_loss`` knob chooses); ``needs_annotator``: it judges sampled answers."""

    name: str
    trainer: str
    kind: Literal["offline", "online", "rl"]
    knobs: tuple[str, ...]
    columns: tuple[str, ...]
    trl_columns: tuple[str, ...] | None = None
    loss: str | None = None
    needs_annotator: bool = False

    @property
    def reads(self) -> frozenset[str]:
        """Every knob the method reads."""
        return frozenset(BASE_KNOBS) | frozenset(self.knobs)

    def train_fn(self) -> Callable[..., dict]:
        module, fn = self.trainer.split(":")
        return getattr(importlib.import_module(module), fn)


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`REGISTRY`; its knobs must be :class:`~study.align.config.AlignParams` fields
    (checked here once the config module is loaded, and by that module for the methods registered below)."""
    import sys

    config = sys.modules.get("study.align.config")
    if config is not None and hasattr(config, "AlignParams"):
        check_knobs(method, set(config.AlignParams.model_fields))
    REGISTRY[method.name] = method
    return method


def check_knobs(method: Method, fields: set[str]) -> None:
    unknown = sorted(set(method.knobs) - fields)
    if unknown:
        raise ValueError(f"method {method.name!r} reads knobs AlignParams does not have: {unknown}")


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise KeyError(name)
    return REGISTRY[name]


def names(kind: str | None = None) -> tuple[str, ...]:
    """The registered methods (of ``kind``), in registration order."""
    return tuple(n for n, m in REGISTRY.items() if kind is None or m.kind == kind)


OFFLINE = "study.align.offline:train_offline"
for _loss in ("dpo", "ipo", "slic"):
    register(Method(_loss, OFFLINE, "offline", (), PAIR_COLUMNS, TRL_PAIR_COLUMNS, loss=_loss))
register(
    Method(
        "avg_dpo",
        "study.align.avg_dpo:train_avg_dpo",
        "offline",
        ("pair_loss", "gamma"),
        (*PAIR_COLUMNS[:3], "rejected_2", "scene_id"),
        (*TRL_PAIR_COLUMNS[:3], "rejected_2", "images"),
    )
)
ONLINE = "study.align.online:train_online"
register(
    Method(
        "online_dpo",
        ONLINE,
        "online",
        ("pair_loss", *SAMPLING, *ROUNDS, *JUDGE),
        ("prompt", "scene_id"),
        needs_annotator=True,
    )
)
register(
    Method(
        "online_bdhs",
        ONLINE,
        "online",
        ("pair_loss", "gamma", *SAMPLING, *ROUNDS, "regen_every", "bdhs_with_external", *BDHS_KNOBS),
        ("prompt", "chosen", "scene_id"),
    )
)
register(
    Method(
        "mixed_dpo",
        ONLINE,
        "online",
        ("pair_loss", "p", *SAMPLING, *ROUNDS, *JUDGE),
        PAIR_COLUMNS,
        needs_annotator=True,
    )
)
register(
    Method(
        "rloo",
        "study.align.rl:train_rloo",
        "rl",
        (*SAMPLING, *JUDGE, *RL_KNOBS, "rloo_k"),
        ("prompt", "scene_id"),
        needs_annotator=True,
    )
)
PPO_KNOBS = ("ppo_epochs", "ppo_minibatch", "clip_range", "clip_range_value", "vf_coef", "gae_gamma", "gae_lambda")
register(
    Method(
        "ppo",
        "study.align.ppo:train_ppo",
        "rl",
        (*SAMPLING, *JUDGE, *RL_KNOBS, *PPO_KNOBS),
        ("prompt", "scene_id"),
        needs_annotator=True,
    )
)
