"""The stage contract: dvc.yaml is the file study/stages.py generates, and the runner hands each notebook only
paths its declaration names (so a path is written once, and DVC tracks every file a stage reads or writes)."""

import re
from pathlib import Path

import pytest
import yaml

from study import pipeline, stages
from study.config import load_params

ROOT = Path(__file__).resolve().parents[1]


def test_dvc_yaml_is_generated_from_the_declarations():
    assert (ROOT / "dvc.yaml").read_text() == stages.dvc_yaml_text(), "run `python -m study.stages`"
    assert yaml.safe_load(stages.dvc_yaml_text()) == stages.dvc_yaml()


def test_every_runner_stage_is_declared_with_its_notebook():
    declared = {s.runner or s.name for s in stages.STAGES if s.notebook}
    assert declared == set(pipeline.PATHS) == set(pipeline.NOTEBOOKS)
    for name, notebook in pipeline.NOTEBOOKS.items():
        assert notebook == stages.BY_NAME[name].notebook
        assert (ROOT / "notebooks" / f"{notebook}.ipynb").is_file()


@pytest.mark.parametrize("name", sorted(pipeline.NOTEBOOKS))
def test_a_notebook_receives_only_what_identifies_its_work(name):
    """The parameters cell holds stage, run and params_path; the notebook loads params itself
    (study.pipeline.stage_context), so no knob or path is restated in a notebook."""
    import json

    nb = json.loads((ROOT / "notebooks" / f"{pipeline.NOTEBOOKS[name]}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = [line.split("=")[0].strip() for line in "".join(cell["source"]).splitlines() if "=" in line]
    assert names == ["stage", "run", "params_path"]
    assert f'stage = "{name}"' in "".join(cell["source"])
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "stage_context(stage, run, params_path)" in code
    assert not re.search(r"[\"'](artifacts|metrics|reports|dvclive)/", code), "a path restated in the notebook"


def _declared_paths(stage: stages.Stage, run: str | None, params) -> set[str]:
    dvc = stage.dvc()
    body = dvc["do"] if "do" in dvc else dvc
    entries = [*body["deps"], *body.get("outs", []), *body.get("metrics", []), *body.get("plots", [])]
    paths = {next(iter(e)) if isinstance(e, dict) else e for e in entries}
    if run is not None:
        item = params.align.all_runs()[run]
        paths = {p.replace("${key}", run).replace("${item.data}", item["data"]) for p in paths}
        paths = {p.replace("${item.reward_model_path}", str(item.get("reward_model_path", ""))) for p in paths}
    return paths


def _covered(path: str, declared: set[str]) -> bool:
    """``path`` is declared, or lies inside a declared folder."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


# folders handed as roots, whose files the declaration names one by one
ROOTS = {
    ("sft", "live_dir"),  # DVCLive's folder: its plots are declared (dvclive/sft/plots/metrics)
    ("paper", "paper_dir"),  # writes paper/tables and paper/figures
    ("paper", "metrics_dir"),  # reads metrics/{eval_sft,reward_models,bdhs}.json and metrics/align, writes paper.json
}


@pytest.mark.parametrize("name", sorted(pipeline.PATHS))
def test_injected_paths_are_declared(name):
    params = load_params("params.yaml")
    runs = list(params.align.runs)[:1] + list(params.align.rm_runs)[:1] if name == "align" else [None]
    assert pipeline.stage_context(name, runs[0]).paths.__dict__ == pipeline.PATHS[name](params, runs[0])
    for run in runs:
        injected = pipeline.PATHS[name](params, run)
        decl = stages.BY_NAME["align_rm" if run in params.align.rm_runs else name]
        declared = _declared_paths(decl, run, params)
        paths = {k: v for k, v in injected.items() if v is not None}
        assert paths and all(isinstance(v, str) for v in paths.values()), name
        for key, path in paths.items():
            if (name, key) in ROOTS:
                assert any(d.startswith(path.rstrip("/") + "/") for d in declared), (name, key, path)
                continue
            assert _covered(path, declared), f"{name}: injected {key}={path} is not in its declaration"


def test_a_per_run_stage_names_each_runs_files():
    params = load_params("params.yaml")
    align = stages.BY_NAME["align"].dvc()
    assert align["foreach"] == "${align.runs}" and "align.runs.${key}" in align["do"]["params"]
    rm = stages.BY_NAME["align_rm"].dvc()
    assert rm["do"]["cmd"] == "python -m study.pipeline align --run ${key}"
    assert "${item.reward_model_path}" in rm["do"]["deps"]
    assert set(params.align.rm_runs) and not set(params.align.rm_runs) & set(params.align.runs)


def test_a_stage_depends_on_the_selected_profile_only(tmp_path):
    """A profiled stage's params are the selected profile's block (``profiles.${profile}``), resolved by DVC:
    editing another profile leaves the stage up to date; editing the selected one, or selecting another,
    does not. Checked with DVC itself on a one-stage pipeline that declares :data:`stages.PROFILE`."""
    import subprocess

    def dvc(*args):
        r = subprocess.run(["dvc", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["profile"] in raw["profiles"] and "full" in raw["profiles"]
    for s in stages.STAGES:
        assert ("profiles" in s.dvc().get("do", s.dvc())["params"]) is False, s.name
    params = {
        "profile": "quick",
        "seed": 0,
        "world": {"n_train": 3},
        "profiles": {"quick": {}, "full": {"world": {"n_train": 9}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = {"cmd": "echo made > out.txt", "params": [*stages.PROFILE, "world"], "outs": ["out.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": stage}}))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc("init", "-q")
    dvc("repro", "-q")
    assert "up to date" in dvc("status")
    params["profiles"]["full"]["world"]["n_train"] = 12  # another profile's block
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert "up to date" in dvc("status")
    params["profiles"]["quick"] = {"world": {"n_train": 4}}  # the selected one
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert "profiles.quick" in dvc("status")
    dvc("repro", "-q")
    params["profile"] = "full"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert "profiles.full" in dvc("status")
