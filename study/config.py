"""The study's knobs: ``params.yaml`` read into one validated object.

``params.yaml`` holds a base value for every knob and a ``profiles`` block whose entries override the
base; ``profile`` selects one. Validation happens before any work: an unknown key, a wrong type or an
out-of-range value raises :class:`ParamsError` naming the key as written (``world.n_train``, or
``profiles.smoke.world.n_train`` when a profile's override is the culprit) and what is allowed.

Types are strict: a boolean is a YAML boolean (``"no"``, ``1`` are refused), a count is an integer
(``true``, ``3.0`` are refused), a float takes an integer too. The organism's shapes must fit
(``model.patch_size`` divides the world's image size, hidden sizes divide by head counts, ...), align
run names are identifiers and a run's ``data`` stays inside ``artifacts/prefs``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

REWARD_MODELS_DIR = "artifacts/models/rm"  # the reward_models stage's output: one model per rm.recipes entry
POOL_RECIPES = ("vlfeedback", "vlf_corrupted")  # recipes whose answers come from the answer pool
MIN_POOL = 3  # checkpoints a VLFeedback-style pool ranks, at least (study.prefs.vlfeedback)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ParamsError(ValueError):
    pass


# PyYAML reads YAML 1.1, where `1e-5` (no dot) is a string; YAML 1.2 (and `dvc exp run -S`, which writes
# floats like `1e-05`) reads it as a number. Only that spelling is read as a float: other strings stay refused.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml_float(v: Any) -> Any:
    return float(v) if isinstance(v, str) and _EXPONENT_FLOAT.fullmatch(v.strip()) else v


Float = Annotated[float, BeforeValidator(_yaml_float)]
"""A strict float (an int is accepted, a bool or a string is not) that also reads ``1e-5``."""


class Issue(NamedTuple):
    """One problem of a params mapping. ``keys``: the dotted keys involved, from the top of params.yaml; the
    first is the one named unless a profile sets another of them. ``text``: what follows the key
    (``": ..."`` or ``" ..."``); ``others``: the text for each further key when that one is named.
    ``quoted``: the key is shown in backticks (alignment knobs are shown bare, as :mod:`study.align.config`
    names them)."""

    keys: tuple[str, ...]
    text: str
    quoted: bool = True
    others: tuple[str, ...] = ()

    def render(self, index: int = 0, profile: str | None = None, note: str = "") -> str:
        key = self.keys[index] if profile is None else f"profiles.{profile}.{self.keys[index]}"
        shown = f"`{key}`" if self.quoted else key
        return f"{shown}{note}{self.text if index == 0 else self.others[index - 1]}"


class RuleError(ValueError):
    """A cross-field rule of a section broken; carries its :class:`Issue` list (keys from the top level)."""

    def __init__(self, issues: list[Issue]):
        super().__init__("; ".join(i.render() for i in issues))
        self.issues = issues

    @classmethod
    def one(cls, key: str, text: str) -> "RuleError":
        return cls([Issue((key,), text)])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WorldParams(_Section):
    spec: str
    n_train: int = Field(ge=1, le=1_000_000, description="training scenes")
    n_val: int = Field(ge=1, le=100_000)
    n_test: int = Field(ge=1, le=100_000)
    n_ood: int = Field(ge=1, le=100_000)
    max_objects: int = Field(ge=1, le=9)
    duplicate_prob: Float = Field(ge=0, le=1)
    off_context_prob: Float = Field(ge=0, le=1)
    typical_color_prob: Float = Field(ge=0, le=1)
    faint_prob: Float = Field(ge=0, le=1, description="share of objects drawn with weak contrast")
    faint_alpha: Float = Field(gt=0, le=1, description="contrast of a faint object (1 = normal)")
    noise_std: Float = Field(ge=0, le=64, description="pixel noise, in 0-255 units")
    qa_per_scene: int = Field(ge=0, le=10)
    exist_per_scene: int = Field(ge=0, le=10, description="extra balanced existence questions per scene")
    caption_noise_rate: Float = Field(ge=0, le=1, description="descriptions naming one absent context object")
    synonym_prob: Float = Field(ge=0, le=1)
    relation_prob: Float = Field(ge=0, le=1)
    position_first_prob: Float = Field(ge=0, le=1, description="object sentences naming the position first")
    summary_prob: Float = Field(ge=0, le=1, description="descriptions holding a position-free summary list")
    summary_place: Literal["first", "last"] = Field(description="where the summary list goes in a description")
    list_off_context: Literal["last", "anywhere"] = Field(
        description="where the list names categories foreign to the scene's context"
    )
    exist_cooccur_prob: Float = Field(
        ge=0, le=1, description="P(a 'no' existence question names one of the context's absent core objects)"
    )


class ModelSection(_Section):
    base_path: str = Field(description="local LLaVA checkpoint to start from; empty = build the organism")
    patch_size: int = Field(ge=1, le=64)
    vision_hidden: int = Field(ge=8, le=4096)
    vision_layers: int = Field(ge=1, le=48)
    vision_heads: int = Field(ge=1, le=64)
    text_hidden: int = Field(ge=8, le=8192)
    text_layers: int = Field(ge=1, le=80)
    text_heads: int = Field(ge=1, le=128)
    text_kv_heads: int = Field(ge=1, le=128)
    text_intermediate: int = Field(ge=8, le=32768)

    @model_validator(mode="after")
    def _shapes_fit(self) -> "ModelSection":
        """The organism's attention shapes (the model would fail on them at build or first forward)."""
        if self.base_path:  # a checkpoint brings its own architecture: these knobs are not used
            return self
        issues = []
        vh, vn, th, tn, kv = (
            self.vision_hidden,
            self.vision_heads,
            self.text_hidden,
            self.text_heads,
            self.text_kv_heads,
        )
        if vh % vn:
            issues.append(
                Issue(
                    ("model.vision_hidden", "model.vision_heads"),
                    f": {vh} must be divisible by model.vision_heads ({vn})",
                    others=(f": {vn} must divide model.vision_hidden ({vh})",),
                )
            )
        if th % tn:
            issues.append(
                Issue(
                    ("model.text_hidden", "model.text_heads"),
                    f": {th} must be divisible by model.text_heads ({tn})",
                    others=(f": {tn} must divide model.text_hidden ({th})",),
                )
            )
        elif (th // tn) % 2:
            why = "which must be even (rotary position embeddings rotate pairs of dimensions)"
            issues.append(
                Issue(
                    ("model.text_hidden", "model.text_heads"),
                    f": {th} / model.text_heads ({tn}) gives attention heads of size {th // tn}, {why}",
                    others=(f": model.text_hidden ({th}) / {tn} gives attention heads of size {th // tn}, {why}",),
                )
            )
        if tn % kv:
            issues.append(
                Issue(
                    ("model.text_heads", "model.text_kv_heads"),
                    f": {tn} must be a multiple of model.text_kv_heads ({kv}) (grouped-query attention)",
                    others=(f": {kv} must divide model.text_heads ({tn}) (grouped-query attention)",),
                )
            )
        if issues:
            raise RuleError(issues)
        return self


class SFTSection(_Section):
    epochs: Float = Field(gt=0, le=100)
    learning_rate: Float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096)
    weight_decay: Float = Field(ge=0, le=1)
    warmup_ratio: Float = Field(ge=0, lt=1)
    lr_scheduler: Literal["cosine", "constant", "warmup_stable_decay"] = Field(
        description="LR after warm-up: cosine decay | constant | constant then a final cosine decay"
    )
    val_rows: int = Field(ge=1, le=100_000)
    freeze_vision: bool = Field(description="keep the (pretrained) vision tower frozen, as LLaVA does")
    on_base: Literal["pass", "train"] = Field(
        description="with model.base_path set: pass = the checkpoint is the SFT model (nothing trained; "
        "study.model.pointer) | train = SFT on the organism world from it"
    )
    pool_fractions: list[Float] = Field(
        min_length=2, description="intermediate checkpoints kept for the VLFeedback-style pool"
    )

    @field_validator("pool_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v) or len(set(v)) != len(v):
            raise ValueError(f"pool fractions must be distinct and in (0, 1), got {v}")
        return v


class VisionSection(_Section):
    """Vision-tower pretraining before SFT (:mod:`study.model.vision_pretrain`); ``epochs: 0`` skips it."""

    objective: Literal["presence", "clip", "dense"] = Field(
        description="presence (multi-label BCE) | clip (contrastive) | dense (per-patch object/colour/size)"
    )
    scenes: Literal["world", "uniform"] = Field(
        description="world: the world's train split | uniform: n_scenes scenes without co-occurrence "
        "(study.world.uniform, the analog of CLIP's web data)",
    )
    n_scenes: int = Field(ge=1, le=1_000_000, description="uniform pretraining scenes (scenes: uniform)")
    epochs: Float = Field(ge=0, le=100)
    learning_rate: Float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096)
    weight_decay: Float = Field(ge=0, le=1)


class LMSection(_Section):
    """Text-only pretraining of the organism's language model before it sees an image
    (:mod:`study.model.lm_pretrain`; the corpus knobs are ``world``'s); ``epochs: 0`` skips it."""

    epochs: Float = Field(ge=0, le=100)
    learning_rate: Float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096)
    weight_decay: Float = Field(ge=0, le=1)
    warmup_ratio: Float = Field(ge=0, lt=1)
    lr_scheduler: Literal["cosine", "constant", "warmup_stable_decay"]
    prior_passage: Literal["none", "context"] = Field(
        description="the language-prior rows' passage: none (a bare description prompt) | context (the scene's "
        "context sentence only: what a model says when it sees the background and no object)"
    )


class ProjectorSection(_Section):
    """Projector alignment with the tower and the language model frozen, on the train descriptions
    (:mod:`study.model.projector_align`, LLaVA's stage 1); ``epochs: 0`` skips it."""

    epochs: Float = Field(ge=0, le=100)
    learning_rate: Float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096)
    weight_decay: Float = Field(ge=0, le=1)
    warmup_ratio: Float = Field(ge=0, lt=1)
    lr_scheduler: Literal["cosine", "constant", "warmup_stable_decay"]


class EvalSection(_Section):
    split: Literal["test", "val", "ood"]
    n_scenes: int = Field(ge=1, le=100_000)
    n_pos: int = Field(ge=1, le=9, description="POPE positives (and negatives) per scene")
    n_boot: int = Field(ge=10, le=100_000)
    batch_size: int = Field(ge=1, le=4096)
    max_new_tokens: int = Field(ge=1, le=2048)
    masked_keep_prob: Float = Field(ge=0, le=1, description="image tokens kept in the masked diagnostic")
    masked_temperature: Float = Field(gt=0, le=10, description="sampling temperature of the masked diagnostic")


class OrganismSection(_Section):
    """The ``organism`` stage: grounding report and validity gates of the SFT organism (study/eval/gates.py)."""

    gate_split: Literal["val", "test"] = Field(description="split the gates are decided on (test: report only)")
    probe_train: int = Field(ge=10, le=1_000_000, description="train scenes the presence probes are fitted on")
    sft_seeds: list[int] = Field(min_length=1, description="SFT seeds gated (>= 3 for the stability gates)")

    @field_validator("sft_seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError(f"organism.sft_seeds must be distinct integers >= 0, got {v}")
        return v


class ReplicatesSection(_Section):
    """The ``replicates`` stage: every decisive run again on each further SFT draw (study/align/replicates.py)."""

    enabled: bool = Field(
        description="rebuild the decisive runs on every further seed of organism.sft_seeds (none: nothing to do)"
    )


class BDHSSection(_Section):
    rho_th: Float = Field(ge=0, le=1, description="keep an image token iff u >= rho_th (Eq. 6)")
    eps_s: Float = Field(ge=-1, le=1, description="resample while cosine(rejected, chosen) > eps_s")
    n_bdhs: int = Field(ge=1, le=50, description="tries; the last one is unguided")
    noise_steps: int = Field(ge=0, le=1000, description="diffusion noise steps (BDHS_noise); 0 = none")
    temperature: Float = Field(gt=0, le=10)
    do_sample: bool = Field(description="sample regenerated sentences (BDHS samples; false = greedy)")
    max_new_tokens: int = Field(ge=1, le=2048, description="per regenerated sentence")
    batch_size: int = Field(ge=1, le=4096)
    encoder_path: str = Field(description="local sentence-transformers model; empty = bundled MiniLM")
    n_pairs: int = Field(ge=1, le=1_000_000, description="size of the offline BDHS dataset")
    sweep_rho: list[Float] = Field(min_length=1)
    sweep_n: int = Field(ge=1, le=100_000, description="validation descriptions in the rho_th sweep")
    threads: int = Field(ge=1, le=256, description="torch CPU threads for BDHS generation")

    @field_validator("sweep_rho")
    @classmethod
    def _rhos_in_range(cls, v: list[float]) -> list[float]:
        bad = [r for r in v if not 0 <= r <= 1]
        if bad:
            raise ValueError(f"every rho_th must be in [0, 1], got {bad}")
        return v


class PrefsSection(_Section):
    recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]]
    n_pairs: int = Field(ge=1, le=1_000_000, description="common size of every recipe (the '5k' analog)")
    povid_noise_steps: int = Field(ge=0, le=1000, description="noisy-image teacher forcing (2nd rejected)")
    heldout_recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]]
    heldout_n: int = Field(ge=1, le=100_000, description="held-out (val) pairs for annotator accuracy")
    rlhfv_answerer: Literal["pool", "policy"] = Field(
        description="whose answers the RLHF-V-style recipe corrects: pool = the strongest pool checkpoint "
        "other than the SFT model (RLHF-V corrected another model's answers) | policy = the SFT model",
    )
    noisy_accuracies: list[Float] = Field(description="noisy-oracle pairwise accuracies, in [0.5, 1]")
    pool_models: list[str] = Field(
        description="local checkpoint dirs of the answer pool's weaker members, weakest first ([] = the SFT "
        "run's intermediate checkpoints, sft.pool_fractions); e.g. smaller LLaVAs beside a pretrained base"
    )
    threads: int = Field(ge=1, le=256)

    @field_validator("pool_models")
    @classmethod
    def _pool(cls, v: list[str]) -> list[str]:
        if any(not str(d).strip() for d in v) or len(set(v)) != len(v):
            raise ValueError(f"pool_models must be distinct non-empty paths, got {v}")
        return v

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

    recipes: list[Literal["povid", "rlhfv", "vlfeedback", "vlf_corrupted", "random_corruption"]]
    learning_rate: Float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096, description="pairs per step")
    epochs: Float = Field(gt=0, le=100)
    max_steps: int = Field(ge=-1, le=10_000_000, description="> 0 overrides epochs; -1 = epochs decide")
    warmup_ratio: Float = Field(ge=0, lt=1)
    weight_decay: Float = Field(ge=0, le=1)
    logging_steps: int = Field(ge=1, le=100_000)
    center_rewards_coefficient: Float | None = Field(ge=0, le=100, description="TRL's reward centring; null = off")
    lora: bool = Field(description="LoRA on the language model, score head trained fully; false = full fine-tuning")
    lora_r: int = Field(ge=1, le=4096)
    lora_alpha: int = Field(ge=1, le=65536)
    bf16: bool = Field(description="frozen weights bf16, trainable ones fp32, bf16 autocast (GPU or a CPU with bf16)")
    gradient_checkpointing: bool = Field(description="non-reentrant activation checkpointing")
    threads: int = Field(ge=1, le=256)


class AlignSection(_Section):
    """The alignment knobs in groups (:mod:`study.align.knobs`): ``base`` (every method), the shared groups
    ``pair``, ``sampling``, ``online``, ``judge``, ``rl``, and ``methods``: each method's own knobs. ``runs``:
    name -> {method, data, seeds?, overrides}; ``rm_runs``: the same for runs judged by a reward model of the
    ``reward_models`` stage (they need ``annotator: reward_model`` and a ``reward_model_path``, which becomes a
    DVC dependency of their ``align_rm@<name>`` stage); ``seeds``: the training seeds of every run (each run
    trains and evaluates once per seed and reports the mean with a 95 % CI over seeds).

    Every method's config and every run's knobs are validated when params load
    (:meth:`StudyParams._align_runs_are_valid`), so a bad alignment knob fails before any stage does work.
    That a reward model directory exists is checked when its run starts training (it is an output of an
    earlier stage)."""

    base: dict
    pair: dict
    sampling: dict
    online: dict
    judge: dict
    rl: dict
    methods: dict[str, dict]
    seeds: list
    decisive_seeds: list
    runs: dict[str, dict]
    rm_runs: dict[str, dict]

    @model_validator(mode="after")
    def _layout(self) -> "AlignSection":
        from study.align.config import AlignParamsError, check_layout, check_seeds

        try:
            check_seeds(self.seeds, "align.seeds")
            check_seeds(self.decisive_seeds, "align.decisive_seeds")
            check_layout(self.groups())
        except AlignParamsError as e:
            raise RuleError(
                [Issue((k,), t, quoted=False) for k, t in e.issues] or [Issue(("align",), f": {e}")]
            ) from None
        both = sorted(set(self.runs) & set(self.rm_runs))
        if both:
            raise RuleError.one("align.rm_runs", f": run names must differ from align.runs, both have {both}")
        return self

    def groups(self) -> dict[str, dict]:
        """The knob groups (everything but the runs and seeds), as :func:`study.align.config.method_knobs` reads them."""
        return {k: v for k, v in self.model_dump().items() if k not in ("seeds", "decisive_seeds", "runs", "rm_runs")}

    def all_runs(self) -> dict[str, dict]:
        """Every run, ``runs`` then ``rm_runs`` (names are distinct)."""
        return {**self.runs, **self.rm_runs}


class PopeBenchmark(_Section):
    """POPE's label files (``coco_pope_{random,popular,adversarial}.json``) and COCO val2014 images."""

    dir: str = Field(description="folder holding the three label files; '' = not evaluated")
    images: str = Field(description="COCO val2014 image folder")
    prompt_suffix: str = Field(description="text appended to every question (e.g. LLaVA's answer-format line)")


class AmberBenchmark(_Section):
    """AMBER's ``data/`` folder (annotations.json, relation.json, safe_words.txt, query/) and its images."""

    dir: str = Field(description="AMBER's data folder; '' = not evaluated")
    images: str = Field(description="AMBER's image folder")
    query_file: str = Field(description="query file, relative to dir")


class HalBenchmark(_Section):
    """Object-HalBench-style CHAIR: a question file, COCO images and COCO annotation files."""

    questions: str = Field(description="one {question_id, image, text} a line; '' = not evaluated")
    images: str = Field(description="COCO image folder")
    instances: str = Field(description="COCO instances_*.json")
    captions: str = Field(description="COCO captions_*.json, optional ('' = instances only)")


class BenchmarksSection(_Section):
    """Real benchmarks from local files (:mod:`study.bench`; ``python -m study.bench``)."""

    model: str = Field(description="checkpoint dir evaluated; '' = model.base_path")
    out: str = Field(description="results: <out>/<benchmark>/")
    batch_size: int = Field(ge=1, le=4096)
    max_new_tokens: int = Field(ge=1, le=4096)
    limit: int = Field(ge=0, le=10_000_000, description="first N items of each file; 0 = all")
    n_boot: int = Field(ge=10, le=100_000)
    pope: PopeBenchmark
    amber: AmberBenchmark
    halbench: HalBenchmark

    @model_validator(mode="after")
    def _paths_come_together(self) -> "BenchmarksSection":
        needs = {
            "pope": ("dir", "images"),
            "amber": ("dir", "images"),
            "halbench": ("questions", "images", "instances"),
        }
        for name, keys in needs.items():
            sub = getattr(self, name)
            set_ = [k for k in keys if getattr(sub, k)]
            if set_ and len(set_) < len(keys):
                missing = [k for k in keys if not getattr(sub, k)]
                raise RuleError.one(
                    f"benchmarks.{name}.{missing[0]}",
                    f": must be set when benchmarks.{name}.{set_[0]} is ({getattr(sub, set_[0])!r})",
                )
        return self

    def configured(self) -> list[str]:
        """The benchmarks whose files are named, in a fixed order."""
        first = {"pope": "dir", "amber": "dir", "halbench": "questions"}
        return [n for n, k in first.items() if getattr(getattr(self, n), k)]


class PaperTable(_Section):
    """One of the paper's tables rebuilt on the organism: its title and its rows (runs, after ``SFT``, in order)."""

    title: str = Field(min_length=1)
    runs: list[str] = Field(min_length=1)


class FindingRoles(_Section):
    """Which run plays each part of the findings' rules (:mod:`study.report.findings`); every name is a run
    of ``align.runs`` / ``align.rm_runs`` (checked when params load)."""

    bdhs_dpo: str = Field(description="F1: DPO on BDHS data, against SFT")
    bdhs_avg: str = Field(description="F2: Avg-DPO with a BDHS second rejection")
    distortion_avg: str = Field(description="F2: Avg-DPO with an image-distortion second rejection")
    offline_dpo: str = Field(description="F3 / F7-RL: offline DPO on POVID-style data")
    online_dpo: str = Field(description="F3: Online-DPO with the oracle annotator")
    mixed_dpo: str = Field(description="F3: Mixed-DPO on the same data")
    rl_construction_rm: list[str] = Field(min_length=1, description="F7-RL: RL runs on a POVID-style RM")
    rl_ranking_rm: list[str] = Field(min_length=1, description="F7-RL: RL runs on a VLFeedback-style RM")

    def named(self) -> dict[str, list[str]]:
        """``{role: [run, ...]}`` (single roles as one-element lists)."""
        return {k: v if isinstance(v, list) else [v] for k, v in self.model_dump().items()}


class ReportSection(_Section):
    """What the ``paper`` stage reports and how it names runs: every run name comes from here or from
    ``align``, never from the report code."""

    tables: dict[str, PaperTable] = Field(min_length=1)
    findings: FindingRoles


class StudyParams(_Section):
    profile: str
    seed: int = Field(ge=0, le=2**31 - 1)
    world: WorldParams
    model: ModelSection
    vision: VisionSection
    lm: LMSection
    projector: ProjectorSection
    sft: SFTSection
    eval: EvalSection
    organism: OrganismSection
    replicates: ReplicatesSection
    bdhs: BDHSSection
    prefs: PrefsSection
    rm: RMSection
    align: AlignSection
    benchmarks: BenchmarksSection
    report: ReportSection

    def align_params(self, method: str, **overrides):
        """The validated config of ``method`` from the ``align`` groups (and ``bdhs``), with ``overrides``."""
        from study.align.config import method_params

        return method_params(method, self.align.groups(), self.bdhs.model_dump(), **overrides)

    def decisive_runs(self) -> set[str]:
        """The runs a finding's rule names (``report.findings``): they train with ``align.decisive_seeds``."""
        return {r for runs in self.report.findings.named().values() for r in runs}

    def align_run(self, run: str):
        """``(config, data, seeds)`` of ``run`` (an entry of ``align.runs`` / ``align.rm_runs``) as it trains:
        its own knobs over its method's groups (:func:`study.align.config.run_params`); its own ``seeds``, else
        ``align.decisive_seeds`` if a finding rests on it (:meth:`decisive_runs`), else ``align.seeds``."""
        from study.align.config import run_params

        section = "runs" if run in self.align.runs else "rm_runs"
        p, data, seeds = run_params(
            run, self.align.all_runs()[run], self.align.groups(), self.bdhs.model_dump(), section
        )
        if seeds is None:
            seeds = list(self.align.decisive_seeds if run in self.decisive_runs() else self.align.seeds)
        return p, data, seeds

    @model_validator(mode="after")
    def _align_runs_are_valid(self) -> "StudyParams":
        from study.align import methods as registry
        from study.align.config import AlignParamsError

        issues: list = []
        try:
            for method in registry.REGISTRY:
                if method in self.align.methods:  # a method's groups are valid even where no run uses it
                    try:
                        self.align_params(method)
                    except AlignParamsError as e:
                        issues += [i for i in e.issues if i not in issues]
            if issues:
                raise AlignParamsError.of(issues)
            for name, run in self.align.rm_runs.items():
                p, _, _ = self.align_run(name)
                if p.annotator != "reward_model" or "reward_model_path" not in run:
                    raise AlignParamsError.of(
                        [
                            (
                                f"align.rm_runs.{name}",
                                " must set annotator: reward_model and "
                                "its own reward_model_path (runs judged otherwise go in align.runs)",
                            )
                        ]
                    )
            for name in self.align.runs:
                self.align_run(name)
        except AlignParamsError as e:
            raise RuleError(
                [Issue((k,), t, quoted=False) for k, t in e.issues] or [Issue(("align",), f": {e}")]
            ) from None
        return self

    @model_validator(mode="after")
    def _reward_models_are_trained(self) -> "StudyParams":
        # an rm_run judged by a reward model of the `reward_models` stage needs that recipe in rm.recipes
        for name, run in self.align.rm_runs.items():
            path = Path(str(run["reward_model_path"]))
            if path.parent == Path(REWARD_MODELS_DIR) and path.name not in self.rm.recipes:
                raise RuleError.one(
                    f"align.rm_runs.{name}.reward_model_path",
                    f": {path} is not trained by the reward_models stage; rm.recipes is {self.rm.recipes}",
                )
        return self

    @model_validator(mode="after")
    def _report_names_runs(self) -> "StudyParams":
        runs = self.align.all_runs()
        named = [(f"report.tables.{t}.runs", r) for t, tab in self.report.tables.items() for r in tab.runs]
        named += [(f"report.findings.{role}", r) for role, rs in self.report.findings.named().items() for r in rs]
        for key, run in named:
            if run not in runs:
                raise RuleError.one(key, f": {run!r} is not a run of align.runs / align.rm_runs ({sorted(runs)})")
        return self

    @model_validator(mode="after")
    def _answer_pool_is_large_enough(self) -> "StudyParams":
        # the answer pool (study.prefs.stage.pool_paths) = the SFT model + prefs.pool_models, or else the SFT run's
        # intermediate checkpoints (none when a pretrained base passes through): checked here, before any work
        pr = self.prefs
        passed = bool(self.model.base_path) and self.sft.on_base == "pass"
        size = 1 + (len(pr.pool_models) or (0 if passed else len(self.sft.pool_fractions)))
        where = "prefs.pool_models" + ("" if pr.pool_models or passed else " (or sft.pool_fractions)")
        used = {*pr.recipes, *pr.heldout_recipes}
        if used & set(POOL_RECIPES) and size < MIN_POOL:
            raise RuleError.one(
                where,
                f": the VLFeedback-style pool needs at least {MIN_POOL} checkpoints (the SFT model and "
                f"{MIN_POOL - 1} weaker members), got {size}"
                + (" (model.base_path passes through: list local checkpoints)" if passed else ""),
            )
        if "rlhfv" in used and pr.rlhfv_answerer == "pool" and size < 2:
            raise RuleError.one(
                "prefs.rlhfv_answerer",
                ": pool needs a checkpoint besides the SFT model (list one in prefs.pool_models) or set policy",
            )
        return self

    @model_validator(mode="after")
    def _organism_seeds(self) -> "StudyParams":
        if self.seed not in self.organism.sft_seeds:
            raise RuleError.one(
                "organism.sft_seeds",
                f": {self.organism.sft_seeds} must contain `seed` ({self.seed}): "
                "the pipeline's SFT model is the first of them",
            )
        return self

    @model_validator(mode="after")
    def _patches_tile_the_image(self) -> "StudyParams":
        # the organism's processor and CLIP tower cut the world's square image into patch_size x patch_size patches
        if self.model.base_path:
            return self
        size = world_image_size(self.world.spec)
        if size is not None and size % self.model.patch_size:
            lo, hi = _bounds(ModelSection, "patch_size")
            allowed = [d for d in range(lo, hi + 1) if size % d == 0]
            raise RuleError.one(
                "model.patch_size",
                f": {self.model.patch_size} must divide the world's image_size "
                f"({size}, world.spec {self.world.spec}); allowed: {allowed}",
            )
        return self


def _bounds(model: type[BaseModel], field: str) -> tuple[int, int]:
    """The ``ge`` / ``le`` bounds of an integer field."""
    lo = hi = None
    for m in model.model_fields[field].metadata:
        lo, hi = getattr(m, "ge", lo), getattr(m, "le", hi)
    return lo, hi


def world_image_size(spec: str | Path) -> int | None:
    """``image_size`` of the world spec at ``spec`` (relative to the working directory or, failing that, to
    the project root, as :meth:`study.world.corpus.World.spec` reads it), read by
    :func:`study.world.spec.load_spec`; None when the file is missing or invalid (the ``spec`` stage then
    fails on it with its own file-naming message)."""
    from study.world.spec import load_spec

    path = Path(spec)
    if not path.is_absolute() and not path.is_file():
        path = PROJECT_ROOT / path
    try:
        return load_spec(path).image_size
    except (OSError, ValueError):
        return None


SECTIONS = ("world", "model", "sft", "eval", "bdhs")


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def issues_of(err: ValidationError) -> list[Issue]:
    """The :class:`Issue` of each error of a :class:`StudyParams` validation (keys from the top level)."""
    out = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, RuleError):
            out.extend(cause.issues)
        elif e["type"] == "extra_forbidden":
            out.append(Issue((key,), " is not a known parameter"))
        elif e["type"] == "value_error":  # a field's own check: its message says what was wrong
            out.append(Issue((key,), f": {cause if cause is not None else e['msg']}"))
        elif isinstance(e.get("input"), dict):
            out.append(Issue((key,), f": {e['msg']}"))
        else:
            out.append(Issue((key,), f": {e['msg']} (got {e.get('input')!r})"))
    return out


def _sets(override: Any, key: str) -> bool:
    """Whether the profile ``override`` sets ``key`` (itself, or a value above it such as a whole list)."""
    node = override
    for part in key.split("."):
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _format(issues: list[Issue], profile: str | None = None, override: dict | None = None) -> str:
    """``invalid params: ...``; with ``profile``, a key its ``override`` sets is named
    ``profiles.<profile>.<key>``, any other is named as in the base with ``(with profile <profile>)``."""
    lines = []
    for i in issues:
        if profile is None:
            lines.append(i.render())
            continue
        own = next((j for j, k in enumerate(i.keys) if _sets(override, k)), None)
        lines.append(i.render(own, profile) if own is not None else i.render(note=f" (with profile {profile})"))
    return "invalid params: " + "; ".join(lines)


def _validate(data: dict, profile: str | None = None, override: dict | None = None) -> StudyParams:
    try:
        return StudyParams.model_validate(data)
    except ValidationError as e:
        raise ParamsError(_format(issues_of(e), profile, override)) from None


def resolve(raw: dict[str, Any], profile: str | None = None, overrides: dict | None = None) -> StudyParams:
    """Validate a raw params mapping, apply the selected profile and then ``overrides`` (a nested mapping,
    e.g. a benchmark's ``--set``), return the effective params.

    The base (every key outside ``profiles``) must be valid on its own: its errors name the key as written
    (``world.faint_prob``) whatever profile is selected. Then every profile is validated over the base, not
    only the selected one: a key the profile sets is named ``profiles.<name>.<key>``; a base key that fails
    only in combination with the profile is named as in the base, ``(with profile <name>)``.
    """
    if not isinstance(raw, dict):
        raise ParamsError("invalid params: the top level must be a mapping")
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ParamsError(
            f"invalid params: `profiles` must be a mapping of profile name -> overrides, got {profiles!r}"
        )
    for pname, override in profiles.items():
        if override is not None and not isinstance(override, dict):
            raise ParamsError(
                f"invalid params: `profiles.{pname}` must be a mapping of the keys it overrides, got {override!r}"
            )
    name = profile or raw.get("profile", "quick")
    if name not in profiles and profiles:
        raise ParamsError(f"invalid params: `profile` must be one of {sorted(profiles)}, got {name!r}")
    _validate(raw)
    for pname, override in profiles.items():
        _validate(_deep_merge(raw, override or {}), pname, override or {})
    merged = _deep_merge(_deep_merge(raw, profiles.get(name, {}) or {}), overrides or {})
    merged["profile"] = name
    return _validate(merged)


def load_params(
    path: str | Path = "params.yaml", profile: str | None = None, overrides: dict | None = None
) -> StudyParams:
    """Read, apply the profile and ``overrides`` (:func:`resolve`), validate."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    return resolve(yaml.safe_load(path.read_text()) or {}, profile, overrides)


def load_section(name: str, path: str | Path = "params.yaml", **overrides):
    """One section of ``path`` as its validated object, before any profile, with ``overrides`` replacing some
    of its knobs: ``load_section("model", text_layers=1)``. The sections have no defaults of their own, so code
    that needs a section outside a stage (tests, benchmarks, notebooks) takes every other knob from here."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    raw = (yaml.safe_load(path.read_text()) or {}).get(name)
    if name not in StudyParams.model_fields or not isinstance(raw, dict):
        raise ParamsError(f"invalid params: {path} has no section `{name}`")
    try:
        return StudyParams.model_fields[name].annotation(**{**raw, **overrides})
    except ValidationError as e:
        full = lambda k: k if k.startswith(f"{name}.") else f"{name}.{k}"  # noqa: E731
        issues = [i._replace(keys=tuple(full(k) for k in i.keys)) for i in issues_of(e)]
        raise ParamsError("invalid params: " + "; ".join(i.render() for i in issues)) from None


def align_params(method: str, path: str | Path = "params.yaml", **overrides):
    """The validated config of alignment ``method`` from ``path``'s ``align`` groups (and ``bdhs``), before any
    profile, with ``overrides``: ``align_params("dpo", batch_size=2)``. The knob groups have no defaults of
    their own, so code that trains a method outside a stage (tests, benchmarks) takes its other knobs here."""
    from study.align.config import method_params

    align, bdhs = load_section("align", path), load_section("bdhs", path)
    return method_params(method, align.groups(), bdhs.model_dump(), **overrides)
