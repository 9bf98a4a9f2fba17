"""The study's stages, declared once: the notebook each runs, the params sections it reads, its inputs and outputs.

``dvc.yaml`` is generated from :data:`STAGES` (``python -m study.stages`` writes it; ``tests/test_stages.py``
checks that the file in git is the generated one), and the stage runner (:mod:`study.pipeline`) hands each
notebook the paths named here. A path of the study's layout is written once, as a constant below.

Every stage but ``spec`` and ``paper`` also depends on ``profile``, the selected profile's override block
``profiles.${profile}`` and ``seed`` (the profile decides every section's values; another profile's block does
not, so editing the ``full`` profile leaves a ``quick`` run's stages up to date), writes
``reports/<notebook>[_<run>].{ipynb,html}`` (the executed notebook and its HTML export) and runs
``python -m study.pipeline <stage>``. A per-run stage (``foreach``) is one DVC stage
per entry of a params mapping; ``${key}`` is the entry's name and ``${item.<field>}`` one of its fields.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from study.config import REWARD_MODELS_DIR

# the study's layout: every path a stage reads or writes
WORLD_SPEC = "data/world_spec.yaml"
WORLD = "artifacts/world"
VISION = "artifacts/models/vision"
LM = "artifacts/models/lm"
SFT = "artifacts/models/sft"
SFT_SEEDS = "artifacts/models/sft_seeds"
POOL = "artifacts/models/pool"
REWARD_MODELS = REWARD_MODELS_DIR
ALIGN_MODELS = "artifacts/models/align"
REPLICATES = "artifacts/replicates"
EVAL = "artifacts/eval"
PREFS = "artifacts/prefs"
RECIPES = f"{PREFS}/recipes"
HELDOUT = f"{PREFS}/heldout"
UNION = f"{PREFS}/union"
BDHS_PREFS = f"{PREFS}/bdhs.parquet"
BDHS_SWEEP = "artifacts/bdhs"
METRICS = "metrics"
REPORTS = "reports"
PAPER = "paper"
DVCLIVE = "dvclive"

CODE = "study/config.py", "study/pipeline.py"
# what an alignment run's code reads: the align stages and the replicates stage (which runs them again)
ALIGN_CODE = ("study/align", "study/eval", "study/model", "study/world", "study/prefs", "study/bdhs", "study/io.py")


def prefs_file(data: str) -> str:
    """The preference dataset an alignment run's ``data`` names: ``artifacts/prefs/<data>.parquet``."""
    return f"{PREFS}/{data}.parquet"


# every stage's runner and params
PROFILE = ("profile", "profiles.${profile}", "seed")


@dataclass(frozen=True)
class Stage:
    """One DVC stage. ``params``: the params keys it reads (besides :data:`PROFILE`, unless ``profiled`` is
    False); ``deps``: data and code it reads (the notebook and :data:`CODE` are added); ``outs`` / ``metrics``:
    what it writes (the executed notebook is added); ``uncached``: outputs committed to git (``cache: false``);
    ``plots``: DVCLive plot folders (x = step); ``foreach``: a params mapping, one stage per entry; ``runner``:
    the :mod:`study.pipeline` stage that runs it (default: ``name``)."""

    name: str
    notebook: str | None
    params: tuple[str, ...]
    deps: tuple[str, ...]
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    uncached: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    foreach: str | None = None
    profiled: bool = True
    runner: str | None = None
    doc: str = ""
    code: tuple[str, ...] = field(default=CODE)

    @property
    def report(self) -> str:
        """``reports/<notebook>`` (+ ``_${key}`` for a per-run stage), without the suffix."""
        return f"{REPORTS}/{self.notebook}" + ("_${key}" if self.foreach else "")

    def dvc(self) -> dict:
        """This stage as ``dvc.yaml`` writes it."""
        run = " --run ${key}" if self.foreach else ""
        out: dict = {"cmd": f"python -m study.pipeline {self.runner or self.name}{run}"}
        nb = [f"notebooks/{self.notebook}.ipynb"] if self.notebook else []
        out["deps"] = [*self.deps, *nb, *self.code]
        out["params"] = [*(PROFILE if self.profiled else ()), *self.params]
        outs = [*self.outs, *({p: {"cache": False}} for p in self.uncached)]
        if self.notebook:
            outs += [f"{self.report}.ipynb", f"{self.report}.html"]
        if outs:
            out["outs"] = outs
        if self.metrics:
            out["metrics"] = [{p: {"cache": False}} for p in self.metrics]
        if self.plots:
            out["plots"] = [{p: {"x": "step", "cache": False}} for p in self.plots]
        return {"foreach": "${" + self.foreach + "}", "do": out} if self.foreach else out


def _align_params() -> tuple[str, ...]:
    """The params keys an alignment run reads: the ``align`` knob groups and seeds, the ``bdhs`` knobs of
    Online-BDHS's sampler (:mod:`study.align.knobs`) and ``report.findings`` (a run a finding rests on trains
    with ``align.decisive_seeds``)."""
    from study.align.knobs import BDHSKnobs
    from study.config import AlignSection

    groups = [f"align.{g}" for g in AlignSection.model_fields if g not in ("runs", "rm_runs")]
    return ("eval", *groups, *(f"bdhs.{k}" for k in BDHSKnobs.SOURCE.values()), "report.findings")


def _align(name: str, runs: str, extra_deps: tuple[str, ...], doc: str) -> Stage:
    """A per-run alignment stage over ``runs`` (``align.runs`` or ``align.rm_runs``)."""
    return Stage(
        name,
        "05_align",
        _align_params() + (f"{runs}.${{key}}",),
        (WORLD, SFT, prefs_file("${item.data}"), f"{METRICS}/eval_sft.json", *extra_deps),
        outs=(f"{ALIGN_MODELS}/${{key}}", f"{EVAL}/${{key}}"),
        metrics=(f"{METRICS}/align/${{key}}.json",),
        plots=(f"{DVCLIVE}/align/${{key}}",),
        foreach=runs,
        runner="align",
        doc=doc,
        code=(*ALIGN_CODE, *CODE),
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        "spec",
        None,
        ("world.spec",),
        (WORLD_SPEC, "study/world/spec.py"),
        uncached=(f"{METRICS}/world_spec.json",),
        profiled=False,
        doc="validates params and the world spec before any stage that builds something runs",
    ),
    Stage(
        "world",
        "00_world",
        ("world",),
        (WORLD_SPEC, f"{METRICS}/world_spec.json"),
        outs=(WORLD,),
        metrics=(f"{METRICS}/world.json",),
        code=("study/world", *CODE),
    ),
    Stage(
        "vision",
        "01a_vision",
        ("model", "vision"),
        (WORLD,),
        outs=(VISION,),
        metrics=(f"{METRICS}/vision.json",),
        code=("study/model", "study/eval/grounding.py", *CODE),
    ),
    Stage(
        "lm",
        "01b_lm",
        ("model", "lm", "projector"),
        (WORLD, VISION),
        outs=(LM,),
        metrics=(f"{METRICS}/lm.json",),
        code=("study/model", "study/world", "study/eval/grounding.py", *CODE),
    ),
    Stage(
        "sft",
        "01_sft",
        ("model", "sft"),
        (WORLD, LM),
        outs=(SFT, POOL),
        metrics=(f"{METRICS}/sft.json",),
        plots=(f"{DVCLIVE}/sft/plots/metrics",),
        code=("study/model", *CODE),
    ),
    Stage(
        "sft_seeds",
        "01c_sft_seeds",
        ("model", "vision", "lm", "projector", "sft", "organism.sft_seeds"),
        (WORLD,),
        outs=(SFT_SEEDS,),
        metrics=(f"{METRICS}/sft_seeds.json",),
        code=("study/model", "study/world", "study/eval/grounding.py", "study/resume.py", *CODE),
        doc="the organism trained again from every other seed of organism.sft_seeds (further SFT draws)",
    ),
    Stage(
        "evaluate",
        "02_evaluate",
        ("eval",),
        (WORLD, SFT),
        outs=(f"{EVAL}/sft",),
        metrics=(f"{METRICS}/eval_sft.json",),
        code=("study/eval", "study/model/generate.py", "study/model/load.py", *CODE),
    ),
    Stage(
        "preferences",
        "03_preferences",
        ("prefs",),
        (WORLD, SFT, POOL),
        outs=(RECIPES, HELDOUT),
        metrics=(f"{METRICS}/prefs.json",),
        code=(
            "study/prefs",
            "study/eval/pref_grounding.py",
            "study/eval/grounding.py",
            "study/eval/bootstrap.py",
            "study/bdhs/noise.py",
            "study/model/generate.py",
            *CODE,
        ),
    ),
    Stage(
        "bdhs",
        "04_bdhs",
        ("bdhs",),
        (WORLD, SFT, f"{RECIPES}/povid.parquet"),
        outs=(BDHS_PREFS, UNION, BDHS_SWEEP),
        metrics=(f"{METRICS}/bdhs.json",),
        code=(
            "study/bdhs",
            "study/prefs",
            "study/eval/pref_grounding.py",
            "study/eval/grounding.py",
            "study/eval/bootstrap.py",
            "study/model/generate.py",
            *CODE,
        ),
    ),
    Stage(
        "organism",
        "07_organism",
        ("eval", "organism", "bdhs", "model.base_path", "sft.on_base"),
        (WORLD, SFT, SFT_SEEDS, f"{METRICS}/bdhs.json"),
        outs=(f"{EVAL}/organism",),
        metrics=(f"{METRICS}/organism.json",),
        code=("study/eval", "study/model", "study/bdhs", "study/report/organism.py", "study/world", *CODE),
    ),
    Stage(
        "reward_models",
        "06_reward_models",
        ("rm",),
        (WORLD, SFT, RECIPES, HELDOUT),
        outs=(REWARD_MODELS,),
        metrics=(f"{METRICS}/reward_models.json",),
        code=("study/prefs", *CODE),
    ),
    _align("align", "align.runs", (), ""),
    _align(
        "align_rm",
        "align.rm_runs",
        ("${item.reward_model_path}",),
        "runs judged by a reward model of the reward_models stage (paper Table 8): that model is a dependency",
    ),
    Stage(
        "replicates",
        "05b_replicates",
        tuple(k for k in _align_params() if not k.startswith("bdhs."))
        + ("align.runs", "align.rm_runs", "prefs", "bdhs", "rm")
        + ("replicates", "organism.sft_seeds", "model.base_path", "sft.on_base"),
        (WORLD, SFT_SEEDS),
        outs=(REPLICATES,),
        metrics=(f"{METRICS}/replicates.json",),
        code=(*ALIGN_CODE, "study/resume.py", *CODE),
        doc="every decisive run (report.findings) again on each further SFT draw, with its own data (replicates.enabled)",
    ),
    Stage(
        "paper",
        "08_paper",
        ("seed", "eval.n_boot", "align.runs", "align.rm_runs", "report"),
        (
            f"{METRICS}/eval_sft.json",
            f"{METRICS}/align",
            f"{METRICS}/reward_models.json",
            f"{METRICS}/bdhs.json",
            f"{METRICS}/replicates.json",
            EVAL,
            REPLICATES,
            WORLD_SPEC,
        ),
        uncached=(f"{PAPER}/tables", f"{PAPER}/figures"),
        metrics=(f"{METRICS}/paper.json",),
        profiled=False,
        code=("study/report", "study/eval", "study/prefs/rm_transfer.py", *CODE),
    ),
)
BY_NAME = {s.name: s for s in STAGES}

HEADER = """\
# GENERATED from study/stages.py by `python -m study.stages` -- edit that file, not this one
# (tests/test_stages.py fails when the two differ).
# The study as a DVC pipeline: each stage runs one parameterised notebook with papermill
# (python -m study.pipeline <stage>), writes its artifacts atomically, its metrics JSON (committed),
# and an executed copy + HTML export of the notebook under reports/ (outputs, never dependencies).
"""


def dvc_yaml() -> dict:
    """``dvc.yaml``'s content: ``{"stages": {name: stage}}`` in :data:`STAGES` order."""
    return {"stages": {s.name: s.dvc() for s in STAGES}}


def dvc_yaml_text() -> str:
    """``dvc.yaml`` as written: the header, then each stage (its ``doc`` as a comment above it)."""
    import yaml

    parts = [HEADER, "stages:\n"]
    for s in STAGES:
        body = yaml.safe_dump({s.name: s.dvc()}, sort_keys=False, default_flow_style=False, width=120)
        doc = f"  # {s.doc}\n" if s.doc else ""
        parts.append(doc + "".join(f"  {line}\n" for line in body.splitlines()) + "\n")
    return "".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m study.stages [PATH]``: write ``dvc.yaml`` (or PATH) atomically from :data:`STAGES`."""
    from study import io

    path = (argv if argv is not None else sys.argv[1:]) or ["dvc.yaml"]
    io.write_text(path[0], dvc_yaml_text())
    print(f"wrote {path[0]} ({len(STAGES)} stages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
