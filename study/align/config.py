"""Alignment knobs (:class:`AlignParams`) and the input checks that run BEFORE any training.

Every method of :mod:`study.align` takes one :class:`AlignParams`. Validation happens at construction:
an unknown key, a wrong type or an out-of-range value raises :class:`AlignParamsError` naming the
parameter and its allowed range (``align.beta must be > 0, got -1``). Types are strict: a boolean knob
takes only a boolean (``"no"``, ``1`` are refused), an integer knob only an integer (``true``, ``8.0`` are
refused), a float knob a float or an integer. Cross-field rules (a reward model path that must exist, a
pairwise-only annotator asked to give RL rewards, ...) are checked too. A run of ``params.yaml``
(:func:`run_params`) also needs an identifier as its name and a ``data`` path inside ``artifacts/prefs``.

Loss of each pairwise method (h = log-ratio margin, see :mod:`study.align.losses`)::

    method     TRL loss_type   per-pair loss
    dpo        sigmoid         -log sigma(beta * h)
    ipo        ipo             (h_len - 1 / (2 beta))^2    (TRL length-normalises h, see losses.py)
    slic       hinge           max(0, 1 - beta * h)

``avg_dpo``, ``online_dpo``, ``online_bdhs`` and ``mixed_dpo`` apply the loss named by ``pair_loss``
(default ``dpo``). :func:`check_columns` checks a preference dataset (rows, pandas or ``datasets``) for
the columns a method needs and raises :class:`AlignDataError` naming the missing column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from study.align import methods as registry
from study.config import Float

METHODS = registry.names()  # the methods built in (study.align.methods); a registered one joins REGISTRY
OFFLINE = tuple(n for n in registry.names("offline") if registry.get(n).loss)  # DPO / IPO / SLiC objectives
LOSS_TYPE = {"dpo": "sigmoid", "ipo": "ipo", "slic": "hinge"}
# beta of each pair loss unless a run sets `beta` (the paper's App. A grids: DPO {0.05, 0.1, 0.2, 0.5},
# IPO {0.8, 0.9, 1.0}, SLiC {0.02, 0.1, 0.2}; the chosen values are not reported). params.yaml's
# `align.base.beta_by_loss` is where the study sets them; these are the fallbacks of a bare AlignParams.
# With TRL's length-normalised IPO, tau = 0.1 would ask for a 5-nat margin per token, unreachable: the loss
# then stays at (1/(2 tau))^2 = 25 and only pushes margins apart: on the first organism the IPO run's loss went
# from 24.99 to 24.86 at tau 0.1, and from 0.308 to 0.294 at tau 0.9.
BETA_BY_LOSS = {"dpo": 0.1, "ipo": 0.9, "slic": 0.1}
ANNOTATORS = ("oracle", "noisy_oracle", "reward_model")

# The paper's learning-rate search grid (App. A): the values searched for offline
# DPO/IPO/SLiC, Online-DPO and Mixed-DPO on LLaVA-1.6-7B (LoRA r=128, alpha=256). The chosen value per
# method is NOT reported, so the `gpu` profile picks grid members and a sweep is
# `dvc exp run -S align.base.learning_rate=<value>` over these choices.
PAPER_LR_GRID = {
    "learning_rate": (1e-7, 5e-7, 1e-6, 5e-6),  # LoRA / language-model LR
    "projector_lr": (2e-5, 2e-6, 2e-7),  # multi_modal_projector LR (its own AdamW group)
}


class AlignParamsError(ValueError):
    """A bad alignment parameter; the message names it and what is allowed.

    ``issues``: ``(key, text)`` per problem, the message being ``invalid alignment params: `` + the
    ``key + text`` joined by ``; `` (empty for an error raised with a message only)."""

    def __init__(self, message: str, issues: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])

    @classmethod
    def of(cls, issues: list[tuple[str, str]]) -> "AlignParamsError":
        return cls("invalid alignment params: " + "; ".join(k + t for k, t in issues), issues)


class _Rule(ValueError):
    """A cross-field rule of :class:`AlignParams`: ``param`` is the knob named, ``text`` what follows it."""

    def __init__(self, param: str, text: str):
        super().__init__(param + text)
        self.param, self.text = param, text


class AlignDataError(ValueError):
    """A preference dataset the method cannot use; the message names the column (and the row)."""


_OPS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


class AlignParams(BaseModel):
    """All knobs of :mod:`study.align` (one flat section; unused ones are ignored by other methods)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # true is not 1, "no" is not False

    method: str = Field("dpo", description="a method of study.align.methods.REGISTRY")
    beta: Float | None = Field(
        None, gt=0, le=100, description="pair-loss beta (IPO: tau); None = beta_by_loss of this method's pair loss"
    )
    beta_by_loss: dict[Literal["dpo", "ipo", "slic"], Float] = Field(
        default_factory=lambda: dict(BETA_BY_LOSS),
        description="beta of each pair loss when `beta` is not set: its scale differs by loss (IPO's tau sets a "
        "per-token margin target 1/(2 tau)), so one shared value cannot suit all three",
    )
    pair_loss: Literal["dpo", "ipo", "slic"] = Field("dpo", description="pair loss of avg/online/mixed methods")
    p: Float = Field(0.5, ge=0, le=1, description="Mixed-DPO: P(a sample is the offline pair), Eq. 4")
    gamma: Float = Field(0.5, ge=0, le=1, description="Avg-DPO weight of the first rejected answer, Eq. 5")

    # parameters trained
    lora: bool = True
    lora_r: int = Field(128, ge=1, le=4096)
    lora_alpha: int = Field(256, ge=1, le=65536)
    lora_dropout: Float = Field(0.0, ge=0, lt=1)
    train_vision_tower: bool = Field(False, description="full fine-tuning only: also train the vision tower")

    # optimisation
    learning_rate: Float = Field(5e-6, gt=0, le=1)
    projector_lr: Float = Field(2e-6, gt=0, le=1, description="LR of the multi_modal_projector (trained fully)")
    epochs: Float = Field(3.0, gt=0, le=1000)
    batch_size: int = Field(16, ge=1, le=4096, description="pairs per step (RL: prompts per step)")
    grad_accum: int = Field(1, ge=1, le=1024)
    weight_decay: Float = Field(0.0, ge=0, le=1)
    warmup_ratio: Float = Field(0.1, ge=0, lt=1)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "cosine"
    max_grad_norm: Float = Field(1.0, gt=0, le=1e6)
    max_length: int | None = Field(None, ge=8, description="DPO max_length; None = no truncation (VLM default)")
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1, description="offline: checkpoint every N steps (resume)")

    # precision / memory (the GPU path; study.align.common.prepare_model)
    bf16: bool = Field(
        False,
        description="bfloat16 weights and autocast; needs a GPU or a CPU with bf16 support "
        "(frozen weights in bf16, trainable ones kept in fp32)",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="recompute activations in the backward pass (non-reentrant; trades ~20-30 % compute for memory)",
    )

    # online sampling
    round_size: int = Field(64, ge=1, description="online: prompts per round")
    temperature: Float = Field(1.0, gt=0, le=10, description="sampling temperature of the policy")
    max_new_tokens: int = Field(64, ge=1, le=4096)
    gen_batch_size: int = Field(64, ge=1, le=4096)
    regen_every: int = Field(1, ge=1, description="online BDHS: regenerate rejected answers every N rounds")
    bdhs_rho_th: Float | None = Field(None, ge=0, le=1, description="BDHS mask threshold (pipeline: bdhs.rho_th)")
    bdhs_n: int | None = Field(None, ge=1, le=50, description="BDHS N_BDHS (pipeline: bdhs.n_bdhs)")
    bdhs_eps_s: Float | None = Field(None, ge=-1, le=1, description="BDHS similarity threshold (pipeline: bdhs.eps_s)")
    bdhs_noise_steps: int | None = Field(
        None, ge=0, le=1000, description="BDHS_noise steps (pipeline: bdhs.noise_steps)"
    )
    bdhs_with_external: bool = Field(False, description="online BDHS: Avg-DPO with the dataset's rejected as 2nd y-")

    # judge / reward
    annotator: Literal[ANNOTATORS] = "oracle"  # type: ignore[valid-type]
    annotator_accuracy: Float = Field(0.9, ge=0.5, le=1, description="noisy_oracle pairwise accuracy")
    reward_model_path: str = Field("", description="local reward model dir (annotator=reward_model)")
    audit_with_oracle: bool = Field(True, description="RL: also log the exact oracle score (reward-hacking check)")

    # RL (RLOO / PPO)
    rloo_k: int = Field(4, ge=2, le=64, description="RLOO samples per prompt (num_generations)")
    kl_coef: Float = Field(0.4, ge=0, le=100, description="RL KL coefficient (RLOO beta / PPO per-token KL)")
    reward_norm_prompts: int = Field(64, ge=0, description="prompts sampled beforehand for reward mean/std; 0 = off")
    ppo_epochs: int = Field(4, ge=1, le=100, description="PPO optimisation passes per rollout batch")
    ppo_minibatch: int = Field(8, ge=1, le=4096)
    clip_range: Float = Field(0.2, gt=0, lt=1, description="PPO ratio clip epsilon")
    clip_range_value: Float = Field(0.2, gt=0, le=100)
    vf_coef: Float = Field(0.1, gt=0, le=100)
    gae_gamma: Float = Field(1.0, ge=0, le=1)
    gae_lambda: Float = Field(0.95, ge=0, le=1)
    collapse_min_tokens: Float = Field(2.0, ge=0, description="collapse if mean answer length falls below this")
    collapse_length_ratio: Float = Field(0.25, ge=0, lt=1, description="... or below this share of its start value")
    stop_on_collapse: bool = False

    @field_validator("method")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in registry.REGISTRY:
            raise _Rule("method", f" must be one of {list(registry.REGISTRY)}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _resolve_beta(self):
        missing = sorted(set(BETA_BY_LOSS) - set(self.beta_by_loss))
        if missing:
            raise _Rule("beta_by_loss", f": needs a beta for every pair loss {sorted(BETA_BY_LOSS)}, missing {missing}")
        if self.beta is None:  # the resolved value is what trains and what the run's record shows
            object.__setattr__(self, "beta", self.beta_by_loss[self.pair_loss_name])
        return self

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.annotator == "reward_model" and self.needs_annotator:
            if not self.reward_model_path:
                raise _Rule(
                    "reward_model_path", ": must name a local reward model directory when annotator='reward_model'"
                )
            # that the directory exists is checked when training starts (check_reward_model): in the pipeline
            # the reward models are written by the `reward_models` stage, after params are first validated
        if registry.get(self.method).kind == "rl" and self.annotator == "noisy_oracle":
            raise _Rule(
                "annotator",
                ": 'noisy_oracle' is a pairwise judge (its noise is on preferences, its score "
                "is the exact oracle's); RL methods need a scorer: use 'oracle' or 'reward_model'",
            )
        if self.lora and self.train_vision_tower:
            raise _Rule("train_vision_tower", ": true requires lora: false (LoRA targets the language model only)")
        if self.method == "ppo" and self.ppo_minibatch > self.batch_size:
            raise _Rule("ppo_minibatch", f": must be <= batch_size ({self.batch_size}), got {self.ppo_minibatch}")
        return self

    @property
    def pair_loss_name(self) -> str:
        """``dpo`` | ``ipo`` | ``slic``: the method itself for offline methods, else ``pair_loss``."""
        return registry.get(self.method).loss or self.pair_loss

    @property
    def loss_type(self) -> str:
        """TRL ``DPOConfig.loss_type`` of this method's pair loss."""
        return LOSS_TYPE[self.pair_loss_name]

    @property
    def needs_annotator(self) -> bool:
        return registry.get(self.method).needs_annotator


def check_reward_model(p: AlignParams, prefix: str = "align") -> None:
    """Raise :class:`AlignParamsError` if ``p`` scores with a reward model whose directory does not exist
    (or has no ``config.json``). Called by :func:`study.align.train` before the policy is loaded; not part
    of :class:`AlignParams` validation because in the pipeline the reward models are outputs of the
    ``reward_models`` stage, which runs after the params are first validated."""
    if p.annotator != "reward_model" or not p.needs_annotator:
        return
    d = Path(p.reward_model_path)
    if not (d.is_dir() and (d / "config.json").is_file()):
        raise AlignParamsError(
            f"invalid alignment params: {prefix}.reward_model_path: {p.reward_model_path!r} does "
            "not exist or has no config.json (train one with the `reward_models` stage or "
            "study.prefs.reward_model.train_reward_model)"
        )


def _issues(err: ValidationError) -> list[tuple[str, str]]:
    """``(param, text)`` per error of an :class:`AlignParams` validation; ``param`` is the knob's dotted
    location inside AlignParams ("" for the whole mapping)."""
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        got = e.get("input")
        ctx = e.get("ctx") or {}
        t = e["type"]
        cause = ctx.get("error")
        if isinstance(cause, _Rule):  # cross-field rule: it names its knob
            out.append((cause.param, cause.text))
        elif t == "extra_forbidden":
            out.append((loc, " is not a known parameter"))
        elif t in _OPS:
            bound = next(iter(ctx.values()))
            bound = f"{bound:g}" if isinstance(bound, float) else bound
            out.append((loc, f" must be {_OPS[t]} {bound}, got {got!r}"))
        elif t == "literal_error":
            out.append((loc, f" must be one of {ctx.get('expected')}, got {got!r}"))
        else:
            out.append((loc, f": {e['msg']} (got {got!r})"))
    return out


def _keyed(prefix: str, param: str) -> str:
    return f"{prefix}.{param}" if param else prefix


def make_params(raw: AlignParams | dict[str, Any] | None = None, prefix: str = "align", **overrides) -> AlignParams:
    """Validated :class:`AlignParams` from a mapping (e.g. ``params.yaml``'s ``align`` section) + overrides."""
    if isinstance(raw, AlignParams):
        raw = raw.model_dump()
    data = {**(raw or {}), **overrides}
    try:
        return AlignParams.model_validate(data)
    except ValidationError as e:
        raise AlignParamsError.of([(_keyed(prefix, p), t) for p, t in _issues(e)]) from None


RUN_KEYS = ("method", "data", "seeds")
RUN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DATA_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_seeds(seeds: Any, key: str) -> list[int]:
    """A non-empty list of distinct integer seeds >= 0; errors name ``key``."""
    if (
        not isinstance(seeds, (list, tuple))
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise AlignParamsError.of([(key, f" must be a non-empty list of integers >= 0, got {seeds!r}")])
    if len(set(seeds)) != len(seeds):
        raise AlignParamsError.of([(key, f" has repeated seeds: {list(seeds)}")])
    return [int(s) for s in seeds]


def check_run_name(name: Any, section: str = "runs") -> str:
    """A run name (a key of ``align.runs`` / ``align.rm_runs``) names a DVC stage, its output directories
    and metrics file: a letter, then letters, digits, ``_`` or ``-``."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise AlignParamsError.of(
            [
                (
                    f"align.{section}",
                    f": run name {name!r} must start with a letter and hold only letters, digits, `_` and `-`",
                )
            ]
        )
    return name


def check_data_path(data: Any, key: str) -> str:
    """A run's ``data``: a relative path inside ``artifacts/prefs`` (``recipes/povid`` names
    ``artifacts/prefs/recipes/povid.parquet``, :func:`study.stages.prefs_file`); no ``..``, no absolute path,
    no hidden or empty part."""
    parts = data.split("/") if isinstance(data, str) else []
    if not parts or not all(_DATA_PART.fullmatch(x) for x in parts):
        from study.stages import prefs_file

        raise AlignParamsError.of(
            [
                (
                    key,
                    f" must be a path inside {prefs_file('<data>').rsplit('/', 1)[0]} (it names {prefs_file('<data>')}): "
                    "parts of letters, digits, `_`, `-` and `.` joined by `/`, no `..`, not absolute; "
                    f"got {data!r}",
                )
            ]
        )
    return data


def run_params(
    name: str, run: dict[str, Any], base: dict[str, Any] | None = None, section: str = "runs"
) -> tuple[AlignParams, str, list[int] | None]:
    """One entry of ``params.yaml: align.<section>`` (``runs`` or ``rm_runs``): ``(AlignParams, data, seeds
    or None)``.

    The run's knobs other than :data:`RUN_KEYS` override ``base``; errors name the key as written:
    ``align.<section>.<name>.<key>`` for the run's own knobs (and defaults), ``align.base.<key> (in
    align.<section>.<name>)`` for a base knob that breaks a rule in this run. ``seeds`` (optional)
    replaces ``align.seeds`` for this run. ``name`` must be an identifier (:func:`check_run_name`) and
    ``data`` a path inside ``artifacts/prefs`` (:func:`check_data_path`).
    """
    check_run_name(name, section)
    where = f"align.{section}.{name}"
    for key in ("method", "data"):
        if key not in run:
            raise AlignParamsError.of([(where, f" needs `{key}`")])
    data = check_data_path(run["data"], f"{where}.data")
    base = base or {}
    knobs = {k: v for k, v in run.items() if k not in RUN_KEYS}
    method = registry.REGISTRY.get(run["method"])
    unread = sorted(k for k in knobs if method is not None and k in AlignParams.model_fields and k not in method.reads)
    if unread:  # a knob its method never reads would be silently ignored
        own = sorted(method.knobs) or "none beyond align.base's shared knobs"
        raise AlignParamsError.of(
            [(f"{where}.{k}", f" is not read by method {method.name!r} (its own knobs: {own})") for k in unread]
        )
    try:
        params = AlignParams.model_validate({**base, **knobs, "method": run["method"]})
    except ValidationError as e:
        issues = []
        for p, t in _issues(e):
            top = p.split(".")[0]
            if p and top not in run and top in base:
                issues.append((f"align.base.{p}", f"{t} (in {where})"))
            else:
                issues.append((_keyed(where, p), t))
        raise AlignParamsError.of(issues) from None
    seeds = check_seeds(run["seeds"], f"{where}.seeds") if "seeds" in run else None
    return params, data, seeds


def _columns_and_first(data) -> tuple[list[str], list[dict]]:
    if hasattr(data, "column_names") and hasattr(data, "num_rows"):  # datasets.Dataset
        return list(data.column_names), []
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # pandas
        return [str(c) for c in data.columns], data.to_dict(orient="records")
    rows = list(data)
    cols: list[str] = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    return cols, rows


def check_columns(data, method: str) -> int:
    """Raise :class:`AlignDataError` unless ``data`` has every column ``method`` needs; return the row count.

    ``data``: preference rows (list of dicts, pandas) in the :mod:`study.prefs.schema` format, or a ready TRL
    vision preference ``datasets.Dataset`` (offline methods). Every row must have every required column
    with a non-empty string (``rejected_2`` included for Avg-DPO).
    """
    if method not in registry.REGISTRY:
        raise AlignParamsError(
            f"invalid alignment params: align.method must be one of {list(registry.REGISTRY)}, got {method!r}"
        )
    spec = registry.get(method)
    if data is None:
        raise AlignDataError(f"method {method!r} needs a preference/prompt dataset, got None")
    cols, rows = _columns_and_first(data)
    is_trl = hasattr(data, "column_names") and "images" in cols
    if is_trl and spec.trl_columns is None:
        raise AlignDataError(
            f"method {method!r} needs preference rows (prompt/scene_id strings, the study.prefs "
            "schema), not a TRL vision dataset"
        )
    need = spec.trl_columns if is_trl else spec.columns
    n = data.num_rows if hasattr(data, "num_rows") else len(rows)
    if n == 0:
        raise AlignDataError(f"the dataset for method {method!r} is empty")
    for c in need:
        if c not in cols:
            raise AlignDataError(
                f"the dataset has no column {c!r}, which method {method!r} needs "
                f"(required: {list(need)}; found: {cols})"
            )
    for i, r in enumerate(rows):
        for c in need:
            v = r.get(c)
            if not isinstance(v, str) or not v.strip():
                raise AlignDataError(f"row {i}: column {c!r} is missing or empty (method {method!r} needs it)")
    return n


for _method in registry.REGISTRY.values():  # the built-in methods read only knobs AlignParams has
    registry.check_knobs(_method, set(AlignParams.model_fields))
