"""Run one study stage: validate params, execute its notebook with papermill, export HTML.

``python -m study.pipeline <stage>`` is the ``cmd`` of every DVC stage. It

1. reads and validates ``params.yaml`` (profile applied) before any work — bad params fail here,
   naming the key;
2. executes ``notebooks/<notebook>.ipynb`` headlessly with papermill, injecting only what identifies the
   work (``stage``, ``run``, ``params_path``); the notebook's first call, :func:`stage_context`, loads the
   same validated params and the paths the stage declares (:mod:`study.stages`), and hands them to ``study``;
3. writes the executed copy to ``reports/<notebook>.ipynb`` and an HTML export (nbconvert) to
   ``reports/<notebook>.html``, both atomically. A failed or interrupted run (an exception, Ctrl-C or
   SIGTERM) keeps its executed copy at ``reports/<notebook>.failed.ipynb`` — one failure record per
   stage, removed by the next success — and exits non-zero.

Stage outputs themselves (artifacts, metrics) are written atomically by ``study`` functions. Before a
stage starts, the debris a killed earlier call of it may have left is removed: the temporary siblings
(``.<name>.*.tmp``, ``.<name>.old``, the partial notebook) of every path the stage is given. DVC runs one
stage at a time in a workspace, so none of them can belong to a call still running.

``python -m study.pipeline spec`` is the first stage: it validates params and the world spec
(``world.spec``), naming the file and the line or key, and records the spec's digest in
``metrics/world_spec.json``; the ``world`` stage depends on that record, so an invalid spec stops
``dvc repro`` before any stage that builds something has run (and removed its outputs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from study import io
from study.config import ParamsError, StudyParams, load_params
from study.stages import (
    ALIGN_MODELS,
    BDHS_PREFS,
    BDHS_SWEEP,
    BY_NAME,
    DVCLIVE,
    EVAL,
    HELDOUT,
    LM,
    METRICS,
    PAPER,
    POOL,
    RECIPES,
    REPLICATES,
    REPORTS,
    REWARD_MODELS,
    SFT,
    SFT_SEEDS,
    UNION,
    VISION,
    WORLD,
    prefs_file,
)


@dataclass(frozen=True)
class StageContext:
    """What a stage's notebook works with: the validated params (profile applied), which run of a per-run stage,
    and the paths its declaration names (:mod:`study.stages`), as ``paths.<name>``."""

    stage: str
    run: str | None
    params: StudyParams
    paths: SimpleNamespace


def _world(p: StudyParams, run: str | None) -> dict:
    return {"out_dir": WORLD, "metrics_path": f"{METRICS}/world.json"}


def _vision(p: StudyParams, run: str | None) -> dict:
    return {"world_dir": WORLD, "out_dir": VISION, "metrics_path": f"{METRICS}/vision.json"}


def _lm(p: StudyParams, run: str | None) -> dict:
    return {"world_dir": WORLD, "init_dir": VISION, "out_dir": LM, "metrics_path": f"{METRICS}/lm.json"}


def _sft(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "init_dir": LM,
        "out_dir": SFT,
        "pool_dir": POOL,
        "live_dir": f"{DVCLIVE}/sft",
        "metrics_path": f"{METRICS}/sft.json",
    }


def _sft_seeds(p: StudyParams, run: str | None) -> dict:
    return {"world_dir": WORLD, "out_dir": SFT_SEEDS, "metrics_path": f"{METRICS}/sft_seeds.json"}


def _evaluate(p: StudyParams, run: str | None) -> dict:
    return {"world_dir": WORLD, "model_dir": SFT, "out_dir": f"{EVAL}/sft", "metrics_path": f"{METRICS}/eval_sft.json"}


def _organism(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "model_dir": SFT,
        "seeds_dir": SFT_SEEDS,
        "bdhs_metrics": f"{METRICS}/bdhs.json",
        "out_dir": f"{EVAL}/organism",
        "metrics_path": f"{METRICS}/organism.json",
    }


def _bdhs(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "model_dir": SFT,
        "povid_path": f"{RECIPES}/povid.parquet",
        "out_path": BDHS_PREFS,
        "union_dir": UNION,
        "sweep_path": f"{BDHS_SWEEP}/sweep.csv",
        "metrics_path": f"{METRICS}/bdhs.json",
    }


def _preferences(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "sft_dir": SFT,
        "pool_dir": POOL,
        "out_dir": RECIPES,
        "heldout_dir": HELDOUT,
        "metrics_path": f"{METRICS}/prefs.json",
    }


def _reward_models(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "sft_dir": SFT,
        "train_dir": RECIPES,
        "heldout_dir": HELDOUT,
        "out_dir": REWARD_MODELS,
        "metrics_path": f"{METRICS}/reward_models.json",
    }


def _align(p: StudyParams, run: str | None) -> dict:
    runs = p.align.all_runs()
    if run not in runs:
        raise ParamsError(f"invalid params: `align.runs` / `align.rm_runs` have no run {run!r}; runs: {sorted(runs)}")
    return {
        "world_dir": WORLD,
        "sft_dir": SFT,
        "data_path": prefs_file(runs[run]["data"]),
        "sft_metrics_path": f"{METRICS}/eval_sft.json",
        "out_dir": f"{ALIGN_MODELS}/{run}",
        "eval_dir": f"{EVAL}/{run}",
        "live_dir": f"{DVCLIVE}/align/{run}",
        "metrics_path": f"{METRICS}/align/{run}.json",
    }


def _replicates(p: StudyParams, run: str | None) -> dict:
    return {
        "world_dir": WORLD,
        "seeds_dir": SFT_SEEDS,
        "out_dir": REPLICATES,
        "metrics_path": f"{METRICS}/replicates.json",
    }


def _paper(p: StudyParams, run: str | None) -> dict:
    return {"metrics_dir": METRICS, "paper_dir": PAPER, "eval_dir": EVAL, "replicates_dir": REPLICATES}


# stage -> the paths its notebook is handed (each one declared by the stage in study.stages)
PATHS: dict[str, Callable[[StudyParams, str | None], dict]] = {
    "world": _world,
    "vision": _vision,
    "lm": _lm,
    "sft": _sft,
    "sft_seeds": _sft_seeds,
    "evaluate": _evaluate,
    "preferences": _preferences,
    "bdhs": _bdhs,
    "organism": _organism,
    "reward_models": _reward_models,
    "align": _align,
    "replicates": _replicates,
    "paper": _paper,
}
NOTEBOOKS = {name: BY_NAME[name].notebook for name in PATHS}


def stage_context(stage: str, run: str | None = None, params_path: str | Path = "params.yaml") -> StageContext:
    """The validated params of ``params_path`` and ``stage``'s paths: what every notebook starts from."""
    if stage not in PATHS:
        raise SystemExit(f"unknown stage {stage!r}; stages: {sorted(PATHS)}")
    p = load_params(params_path)
    return StageContext(stage, run, p, SimpleNamespace(**PATHS[stage](p, run)))


def check_spec(params_path: str | Path = "params.yaml", stamp: str | Path = f"{METRICS}/world_spec.json") -> dict:
    """The ``spec`` stage: validate params and the world spec file (:func:`study.world.spec.load_spec`,
    errors name the file), then write a small record of what was validated to ``stamp``."""
    from study.resume import file_digest
    from study.world.spec import load_spec

    p = load_params(params_path)
    spec = load_spec(p.world.spec)
    record = {
        "source": p.world.spec,
        "sha256": file_digest(p.world.spec),
        "image_size": spec.image_size,
        "categories": len(spec.categories),
        "contexts": len(spec.contexts),
        "colors": len(spec.colors),
    }
    io.write_json(stamp, record)
    return record


def _debris(paths) -> list[Path]:
    """Temporary siblings that :mod:`study.io`'s atomic writers leave behind when killed: ``.<name>.*.tmp``
    (and the ``.ipynb`` papermill wrote beside one), ``.<name>.old``."""
    out = []
    for path in paths:
        path = Path(path)
        if path.parent.is_dir():
            out += [q for q in path.parent.glob(f".{path.name}.*") if q.name.endswith((".tmp", ".ipynb", ".old"))]
    return sorted(set(out))


def _remove(paths) -> None:
    for q in paths:
        shutil.rmtree(q) if q.is_dir() and not q.is_symlink() else q.unlink(missing_ok=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_stage(
    name: str,
    params_path: str | Path = "params.yaml",
    notebooks: str | Path = "notebooks",
    reports: str | Path = REPORTS,
    html: bool = True,
    run: str | None = None,
) -> Path:
    """Execute one stage; ``run`` names the entry of a per-run stage (``align``)."""
    if name not in PATHS:
        raise SystemExit(f"unknown stage {name!r}; stages: {sorted(PATHS)}")
    params = load_params(params_path)  # validation before any work
    paths = PATHS[name](params, run)
    parameters = {"stage": name, "run": run, "params_path": str(params_path)}
    import papermill as pm

    src = Path(notebooks) / f"{NOTEBOOKS[name]}.ipynb"
    suffix = f"_{run}" if run else ""
    out = Path(reports) / f"{NOTEBOOKS[name]}{suffix}.ipynb"
    failed = out.with_suffix(".failed.ipynb")
    _remove(_debris([out, out.with_suffix(".html"), *paths.values()]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out) as tmp:
        tmp_nb = tmp.with_suffix(".ipynb")
        try:
            pm.execute_notebook(
                str(src),
                str(tmp_nb),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                log_output=True,
                cwd=os.getcwd(),
            )
        except BaseException:  # an error, Ctrl-C or SIGTERM (see main): keep one failure record
            if tmp_nb.exists():
                os.replace(tmp_nb, failed)
            raise
        os.replace(tmp_nb, tmp)
    if failed.exists():
        failed.unlink()
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(out))
        io.write_text(out.with_suffix(".html"), body)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.pipeline", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=sorted([*PATHS, "spec"]))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run", default=None, help="the entry of a per-run stage (align)")
    args = ap.parse_args(argv)
    if args.stage == "align" and not args.run:
        ap.error("the align stage needs --run NAME (an entry of align.runs or align.rm_runs)")
    signal.signal(signal.SIGTERM, _interrupt)  # a killed stage cleans up as on Ctrl-C
    from study.world.spec import SpecError

    try:
        if args.stage == "spec":
            print(check_spec(args.params))
        else:
            run_stage(args.stage, args.params, run=args.run)
    except (ParamsError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
