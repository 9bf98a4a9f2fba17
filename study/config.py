"""The study's knobs: ``params.yaml`` read into one validated object.

``params.yaml`` holds a base value for every knob and a ``profiles`` block whose entries override the
base; ``profile`` selects one. Validation happens before any work: an unknown key, a wrong type or an
out-of-range value raises :class:`ParamsError` naming the key (``world.n_train``) and what is allowed.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


REWARD_MODELS_DIR = "artifacts/models/rm"  # the reward_models stage's output: one model per rm.recipes entry


class ParamsError(ValueError):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldParams(_Section):
    spec: str = "data/world_spec.yaml"
    n_train: int = Field(3000, ge=1, le=1_000_000, description="training scenes")
    n_val: int = Field(200, ge=1, le=100_000)
    n_test: int = Field(200, ge=1, le=100_000)
    n_ood: int = Field(200, ge=1, le=100_000)
    max_objects: int = Field(6, ge=1, le=9)
    duplicate_prob: float = Field(0.15, ge=0, le=1)
    off_context_prob: float = Field(0.3, ge=0, le=1)
    typical_color_prob: float = Field(0.6, ge=0, le=1)
    faint_prob: float = Field(0.25, ge=0, le=1, description="share of objects drawn with weak contrast")
    faint_alpha: float = Field(0.3, gt=0, le=1, description="contrast of a faint object (1 = normal)")
    noise_std: float = Field(6.0, ge=0, le=64, description="pixel noise, in 0-255 units")
    qa_per_scene: int = Field(2, ge=0, le=10)
    exist_per_scene: int = Field(0, ge=0, le=10, description="extra balanced existence questions per scene")
    caption_noise_rate: float = Field(0.2, ge=0, le=1, description="descriptions naming one absent context object")
    synonym_prob: float = Field(0.2, ge=0, le=1)
    relation_prob: float = Field(0.5, ge=0, le=1)
    position_first_prob: float = Field(0.0, ge=0, le=1, description="object sentences naming the position first")


class ModelSection(_Section):
    base_path: str = Field("", description="local LLaVA checkpoint to start from; empty = build the organism")
    patch_size: int = Field(6, ge=1, le=64)
    vision_hidden: int = Field(64, ge=8, le=4096)
    vision_layers: int = Field(2, ge=1, le=48)
    vision_heads: int = Field(4, ge=1, le=64)
    text_hidden: int = Field(128, ge=8, le=8192)
    text_layers: int = Field(3, ge=1, le=80)
    text_heads: int = Field(4, ge=1, le=128)
    text_kv_heads: int = Field(2, ge=1, le=128)
    text_intermediate: int = Field(256, ge=8, le=32768)


class SFTSection(_Section):
    epochs: float = Field(5.0, gt=0, le=100)
    learning_rate: float = Field(2e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)
    weight_decay: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "constant", "warmup_stable_decay"] = Field(
        "cosine", description="LR after warm-up: cosine decay | constant | constant then a final cosine decay")
    val_rows: int = Field(300, ge=1, le=100_000)
    freeze_vision: bool = Field(True, description="keep the (pretrained) vision tower frozen, as LLaVA does")
    pool_fractions: list[float] = Field([0.1, 0.3], min_length=2,
                                        description="intermediate checkpoints kept for the VLFeedback-style pool")

    @field_validator("pool_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v) or len(set(v)) != len(v):
            raise ValueError(f"pool fractions must be distinct and in (0, 1), got {v}")
        return v


class VisionSection(_Section):
    """Vision-tower pretraining before SFT (:mod:`study.model.vision_pretrain`); ``epochs: 0`` skips it."""
    objective: Literal["presence", "clip"] = Field("presence", description="presence (multi-label BCE) | clip (contrastive)")
    epochs: float = Field(8.0, ge=0, le=100)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(64, ge=1, le=4096)
    weight_decay: float = Field(0.0, ge=0, le=1)


class LMSection(_Section):
    """Text-only pretraining of the organism's language model before it sees an image
    (:mod:`study.model.lm_pretrain`; the corpus knobs are ``world``'s); ``epochs: 0`` skips it."""
    epochs: float = Field(0.0, ge=0, le=100)
    learning_rate: float = Field(2e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)


class ProjectorSection(_Section):
    """Projector alignment with the tower and the language model frozen, on the train descriptions
    (:mod:`study.model.projector_align`, LLaVA's stage 1); ``epochs: 0`` skips it."""
    epochs: float = Field(0.0, ge=0, le=100)
    learning_rate: float = Field(2e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)


class EvalSection(_Section):
    split: Literal["test", "val", "ood"] = "test"
    n_scenes: int = Field(200, ge=1, le=100_000)
    n_pos: int = Field(3, ge=1, le=9, description="POPE positives (and negatives) per scene")
    n_boot: int = Field(1000, ge=10, le=100_000)
    batch_size: int = Field(64, ge=1, le=4096)
    max_new_tokens: int = Field(96, ge=1, le=2048)
    masked_keep_prob: float = Field(0.0, ge=0, le=1, description="image tokens kept in the masked diagnostic")
    masked_temperature: float = Field(1.0, gt=0, le=10, description="sampling temperature of the masked diagnostic")


class OrganismSection(_Section):
    """The ``organism`` stage: grounding report and validity gates of the SFT organism (study/eval/gates.py)."""
    gate_split: Literal["val", "test"] = Field("val", description="split the gates are decided on (test: report only)")
    probe_train: int = Field(1000, ge=10, le=1_000_000, description="train scenes the presence probes are fitted on")
    sft_seeds: list[int] = Field([0], min_length=1, description="SFT seeds gated (>= 3 for the stability gates)")

    @field_validator("sft_seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError(f"organism.sft_seeds must be distinct integers >= 0, got {v}")
        return v


class BDHSSection(_Section):
    rho_th: float = Field(0.9, ge=0, le=1, description="keep an image token iff u >= rho_th (Eq. 6)")
    eps_s: float = Field(0.97, ge=-1, le=1, description="resample while cosine(rejected, chosen) > eps_s")
    n_bdhs: int = Field(5, ge=1, le=50, description="tries; the last one is unguided")
    noise_steps: int = Field(0, ge=0, le=1000, description="diffusion noise steps (BDHS_noise); 0 = none")
    temperature: float = Field(1.0, gt=0, le=10)
    max_new_tokens: int = Field(48, ge=1, le=2048, description="per regenerated sentence")
    batch_size: int = Field(64, ge=1, le=4096)
    encoder_path: str = Field("", description="local sentence-transformers model; empty = bundled MiniLM")
    n_pairs: int = Field(600, ge=1, le=1_000_000, description="size of the offline BDHS dataset")
    sweep_rho: list[float] = Field([0.0, 0.5, 0.9, 0.99, 1.0], min_length=1)
    sweep_n: int = Field(100, ge=1, le=100_000, description="validation descriptions in the rho_th sweep")
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads for BDHS generation")

    @field_validator("sweep_rho")
    @classmethod
    def _rhos_in_range(cls, v: list[float]) -> list[float]:
        bad = [r for r in v if not 0 <= r <= 1]
        if bad:
            raise ValueError(f"every rho_th must be in [0, 1], got {bad}")
        return v


class PrefsSection(_Section):
    recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]] = Field(
        ["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"])
    n_pairs: int = Field(600, ge=1, le=1_000_000, description="common size of every recipe (the '5k' analog)")
    povid_noise_steps: int = Field(500, ge=0, le=1000, description="noisy-image teacher forcing (2nd rejected)")
    heldout_recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]] = Field(
        ["povid", "rlhfv", "vlfeedback"])
    heldout_n: int = Field(200, ge=1, le=100_000, description="held-out (val) pairs for annotator accuracy")
    noisy_accuracies: list[float] = Field([0.8, 0.95], description="noisy-oracle pairwise accuracies, in [0.5, 1]")
    threads: int = Field(1, ge=1, le=256)

    @field_validator("noisy_accuracies")
    @classmethod
    def _acc(cls, v: list[float]) -> list[float]:
        if any(not 0.5 <= a <= 1 for a in v):
            raise ValueError(f"noisy-oracle accuracies must be in [0.5, 1], got {v}")
        return v


class RMSection(_Section):
    """Reward models (paper §4.3, Table 7 analog): one RM per recipe of ``recipes`` (trained with TRL's
    RewardTrainer on that recipe's train pairs), each scored on the held-out pairs of every recipe of
    ``prefs.heldout_recipes``."""
    recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]] = Field(
        ["povid", "rlhfv", "vlfeedback"])
    learning_rate: float = Field(2e-4, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=4096, description="pairs per step")
    epochs: float = Field(1.0, gt=0, le=100)
    threads: int = Field(1, ge=1, le=256)


class AlignSection(_Section):
    """``base``: AlignParams knobs shared by every run; ``runs``: name -> {method, data, seeds?, overrides};
    ``rm_runs``: the same for runs judged by a reward model of the ``reward_models`` stage (they need
    ``annotator: reward_model`` and a ``reward_model_path``, which becomes a DVC dependency of their
    ``align_rm@<name>`` stage); ``seeds``: the training seeds of every run (each run trains and evaluates
    once per seed and reports the mean with a 95 % CI over seeds).

    Every run's knobs are validated here (:func:`study.align.config.run_params`), so a bad alignment knob
    fails when params are loaded, before any stage does work. That a reward model directory exists is
    checked when its run starts training (it is an output of an earlier stage)."""
    base: dict = Field(default_factory=dict)
    seeds: list = Field(default_factory=lambda: [0])
    runs: dict[str, dict] = Field(default_factory=dict)
    rm_runs: dict[str, dict] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _runs_are_valid(self) -> "AlignSection":
        from study.align.config import AlignParamsError, check_seeds, run_params

        try:
            check_seeds(self.seeds, "align.seeds")
            for section, runs in (("runs", self.runs), ("rm_runs", self.rm_runs)):
                for name, run in runs.items():
                    p, _, _ = run_params(name, run, self.base, section=section)
                    if section == "rm_runs" and (p.annotator != "reward_model" or "reward_model_path" not in run):
                        raise AlignParamsError(f"invalid alignment params: align.rm_runs.{name} must set annotator: "
                                               "reward_model and its own reward_model_path (runs judged otherwise go "
                                               "in align.runs)")
        except AlignParamsError as e:
            raise ValueError(str(e)) from None
        both = sorted(set(self.runs) & set(self.rm_runs))
        if both:
            raise ValueError(f"align.rm_runs: run names must differ from align.runs, both have {both}")
        return self

    def all_runs(self) -> dict[str, dict]:
        """Every run, ``runs`` then ``rm_runs`` (names are distinct)."""
        return {**self.runs, **self.rm_runs}


class StudyParams(_Section):
    profile: str = "quick"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    world: WorldParams = WorldParams()
    model: ModelSection = ModelSection()
    vision: VisionSection = VisionSection()
    lm: LMSection = LMSection()
    projector: ProjectorSection = ProjectorSection()
    sft: SFTSection = SFTSection()
    eval: EvalSection = EvalSection()
    organism: OrganismSection = OrganismSection()
    bdhs: BDHSSection = BDHSSection()
    prefs: PrefsSection = PrefsSection()
    rm: RMSection = RMSection()
    align: AlignSection = AlignSection()

    @model_validator(mode="after")
    def _reward_models_are_trained(self) -> "StudyParams":
        # an rm_run judged by a reward model of the `reward_models` stage needs that recipe in rm.recipes
        for name, run in self.align.rm_runs.items():
            path = Path(str(run["reward_model_path"]))
            if path.parent == Path(REWARD_MODELS_DIR) and path.name not in self.rm.recipes:
                raise ValueError(f"align.rm_runs.{name}.reward_model_path: {path} is not trained by the "
                                 f"reward_models stage; rm.recipes is {self.rm.recipes}")
        return self

    @model_validator(mode="after")
    def _organism_seeds(self) -> "StudyParams":
        if self.seed not in self.organism.sft_seeds:
            raise ValueError(f"organism.sft_seeds {self.organism.sft_seeds} must contain `seed` ({self.seed}): the "
                             "pipeline's SFT model is the first of them")
        return self


SECTIONS = ("world", "model", "sft", "eval", "bdhs")


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _format(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(x) for x in (*([prefix] if prefix else []), *e["loc"]))
        if e["type"] == "extra_forbidden":
            lines.append(f"`{key}` is not a known parameter")
        elif isinstance(e.get("input"), dict):  # a section-level check: its message names the key itself
            lines.append(f"`{key}`: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"`{key}`: {e['msg']} (got {e.get('input')!r})")
    return "invalid params: " + "; ".join(lines)


def resolve(raw: dict[str, Any], profile: str | None = None, overrides: dict | None = None) -> StudyParams:
    """Validate a raw params mapping, apply the selected profile and then ``overrides`` (a nested mapping,
    e.g. a benchmark's ``--set``), return the effective params."""
    if not isinstance(raw, dict):
        raise ParamsError("invalid params: the top level must be a mapping")
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    name = profile or raw.get("profile", "quick")
    if name not in profiles and profiles:
        raise ParamsError(f"invalid params: `profile` must be one of {sorted(profiles)}, got {name!r}")
    for pname, override in profiles.items():  # every profile must be valid, not only the selected one
        try:
            StudyParams.model_validate(_deep_merge(raw, override or {}))
        except ValidationError as e:
            raise ParamsError(_format(e, f"profiles.{pname}")) from None
    merged = _deep_merge(_deep_merge(raw, profiles.get(name, {}) or {}), overrides or {})
    merged["profile"] = name
    try:
        return StudyParams.model_validate(merged)
    except ValidationError as e:
        raise ParamsError(_format(e)) from None


def load_params(path: str | Path = "params.yaml", profile: str | None = None,
                overrides: dict | None = None) -> StudyParams:
    """Read, apply the profile and ``overrides`` (:func:`resolve`), validate."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    return resolve(yaml.safe_load(path.read_text()) or {}, profile, overrides)
