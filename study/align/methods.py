"""The alignment methods by name: each one's trainer, the knob groups it reads and the preference columns it needs.

A method is a :class:`Method` in :data:`REGISTRY`. Its config is :class:`~study.align.knobs.AlignParams` (the
knobs every method reads) plus the shared groups it declares and its own group (:mod:`study.align.knobs`), as
TRL pairs each trainer with its config: :attr:`Method.config` is that class, so a knob the method does not
read is refused by name, and one it needs but ``params.yaml`` lacks is an error naming it.

Adding a method is one module with its train function
``fn(model, processor, world, rows, params, out_dir, *, live_dir, work_dir, seed, annotator, **kw) -> dict``
(and its own group class, if it has knobs) plus one :func:`register` call; ``tests/align/test_align_methods.py``
registers a dummy method that way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Literal

from pydantic import create_model

from study.align import knobs as k

PAIR_COLUMNS = ("prompt", "chosen", "rejected", "scene_id")
TRL_PAIR_COLUMNS = ("prompt", "chosen", "rejected", "images")


@dataclass(frozen=True)
class Method:
    """One alignment method. ``trainer``: ``"module:function"`` (imported when it runs); ``kind``: offline
    (a fixed dataset), online (pairs sampled from the current policy) or rl (a scalar reward); ``groups``:
    the shared knob groups it reads besides :class:`~study.align.knobs.AlignParams`; ``own``: its own group
    (``params.yaml: align.methods.<name>``); ``columns``: the preference columns it needs (``trl_columns``:
    those of a ready TRL vision preference dataset, None = not accepted); ``loss``: the pair loss of an
    offline objective (None: the ``pair_loss`` knob chooses)."""

    name: str
    trainer: str
    kind: Literal["offline", "online", "rl"]
    groups: tuple[type[k.Group], ...]
    columns: tuple[str, ...]
    own: type[k.Group] = k.NoKnobs
    trl_columns: tuple[str, ...] | None = None
    loss: str | None = None
    config: type[k.AlignParams] = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        # the method's config class: AlignParams + groups + own; fields are collected from the reversed MRO,
        # so listing AlignParams last puts its knobs first. A knob two of them declare would be one place too
        # many (and pydantic would keep one silently): refused here.
        seen: dict[str, str] = {}
        for g in (k.AlignParams, *self.groups, self.own):
            for f in g.model_fields:
                if f in seen and seen[f] != g.__name__:
                    raise ValueError(f"method {self.name!r}: knob {f!r} is declared by {seen[f]} and {g.__name__}")
                seen.setdefault(f, g.__name__)
        name = "".join(w.capitalize() for w in self.name.split("_")) + "Config"
        object.__setattr__(
            self, "config", create_model(name, __base__=(self.own, *reversed(self.groups), k.AlignParams))
        )

    @property
    def knobs(self) -> tuple[str, ...]:
        """The knobs it reads besides AlignParams', in config order."""
        return tuple(f for f in self.config.model_fields if f not in k.AlignParams.model_fields)

    @property
    def reads(self) -> frozenset[str]:
        """Every knob the method reads."""
        return frozenset(self.config.model_fields)

    @property
    def needs_annotator(self) -> bool:
        """It judges answers it samples (it reads the :class:`~study.align.knobs.Judge` group)."""
        return k.Judge in self.groups

    def train_fn(self) -> Callable[..., dict]:
        module, fn = self.trainer.split(":")
        return getattr(importlib.import_module(module), fn)


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`REGISTRY`."""
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    """The registered method ``name`` (``KeyError`` otherwise)."""
    return REGISTRY[name]


def names(kind: str | None = None) -> tuple[str, ...]:
    """The registered methods (of ``kind``), in registration order."""
    return tuple(n for n, m in REGISTRY.items() if kind is None or m.kind == kind)


PAIR = (k.PairBeta,)
ONLINE_GROUPS = (k.PairBeta, k.Sampling, k.Rounds)
RL_GROUPS = (k.Sampling, k.Judge, k.RL)

OFFLINE = "study.align.offline:train_offline"
for _loss in ("dpo", "ipo", "slic"):
    register(Method(_loss, OFFLINE, "offline", PAIR, PAIR_COLUMNS, trl_columns=TRL_PAIR_COLUMNS, loss=_loss))
register(
    Method(
        "avg_dpo",
        "study.align.avg_dpo:train_avg_dpo",
        "offline",
        PAIR,
        (*PAIR_COLUMNS[:3], "rejected_2", "scene_id"),
        own=k.AvgDPOKnobs,
        trl_columns=(*TRL_PAIR_COLUMNS[:3], "rejected_2", "images"),
    )
)
ONLINE = "study.align.online:train_online"
register(Method("online_dpo", ONLINE, "online", (*ONLINE_GROUPS, k.Judge), ("prompt", "scene_id"), own=k.PairLoss))
register(
    Method(
        "online_bdhs",
        ONLINE,
        "online",
        (*ONLINE_GROUPS, k.BDHSKnobs),
        ("prompt", "chosen", "scene_id"),
        own=k.OnlineBDHSKnobs,
    )
)
register(Method("mixed_dpo", ONLINE, "online", (*ONLINE_GROUPS, k.Judge), PAIR_COLUMNS, own=k.MixedDPOKnobs))
register(Method("rloo", "study.align.rl:train_rloo", "rl", RL_GROUPS, ("prompt", "scene_id"), own=k.RLOOKnobs))
register(Method("ppo", "study.align.ppo:train_ppo", "rl", RL_GROUPS, ("prompt", "scene_id"), own=k.PPOKnobs))
