"""The stage runner (study/pipeline.py): debris of killed runs is swept, an interrupt (SIGTERM) leaves one
failure record and nothing hidden, and the ``spec`` stage rejects a broken world spec naming the file."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from study import pipeline
from study.world.spec import SpecError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # the scratch project imports this checkout's `study`


def _project(tmp_path: Path, cell: str) -> Path:
    """A scratch project whose ``world`` notebook is one parameters cell and ``cell``."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("world = {}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(cell)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "notebooks" / "00_world.ipynb")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    return tmp_path


def _hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".")) if d.is_dir() else []


def test_a_stage_sweeps_what_a_killed_earlier_call_left(tmp_path, monkeypatch):
    proj = _project(tmp_path, "print('ok')")
    monkeypatch.chdir(proj)
    for debris in (
        "reports/.00_world.ipynb.k2j3.ipynb",
        "reports/.00_world.ipynb.k2j3.tmp",
        "reports/.00_world.html.x8.tmp",
        "metrics/.world.json.a1.tmp",
    ):
        Path(debris).parent.mkdir(parents=True, exist_ok=True)
        Path(debris).write_text("partial")
    Path("artifacts/.world.q9.tmp").mkdir(parents=True)  # an atomic_dir of a killed world stage
    Path("artifacts/.world.old").mkdir()
    Path("artifacts/.prefs.keep").mkdir()  # not a temporary sibling's name: kept
    pipeline.run_stage("world", "params.yaml", html=False)
    assert _hidden(Path("reports")) == [] and _hidden(Path("metrics")) == []
    assert _hidden(Path("artifacts")) == [".prefs.keep"]
    assert Path("reports/00_world.ipynb").is_file() and not Path("reports/00_world.failed.ipynb").exists()


def test_sigterm_leaves_one_failure_record_and_nothing_hidden(tmp_path):
    proj = _project(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(120)")
    (proj / "reports").mkdir()
    (proj / "reports" / "00_world.failed.ipynb").write_text("{}")  # an older failure: replaced, not kept beside
    proc = subprocess.Popen(
        [sys.executable, "-m", "study.pipeline", "world"],
        cwd=proj,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((proj / "reports").glob(".00_world.ipynb.*.ipynb")):
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    assert list((proj / "reports").glob(".00_world.ipynb.*.ipynb")), "papermill never started"
    time.sleep(3)  # the kernel is in the sleeping cell
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert _hidden(proj / "reports") == []
    failed = json.loads((proj / "reports" / "00_world.failed.ipynb").read_text())
    assert any(
        "".join(c["source"]).startswith("import time") for c in failed["cells"]
    )  # the interrupted run's own record
    assert not (proj / "reports" / "00_world.ipynb").exists()


def test_spec_stage_rejects_a_broken_spec_naming_the_file_and_line(tmp_path, monkeypatch):
    proj = _project(tmp_path, "print('ok')")
    monkeypatch.chdir(proj)
    spec = Path("data/world_spec.yaml")
    good = spec.read_text()
    assert pipeline.check_spec("params.yaml")["categories"] >= 12
    assert json.loads(Path("metrics/world_spec.json").read_text())["source"] == "data/world_spec.yaml"
    spec.write_text(good.replace("grid: 3", "grid: [3"))
    with pytest.raises(SpecError, match=r"^data/world_spec.yaml: not valid YAML at line \d+, column \d+: "):
        pipeline.check_spec("params.yaml")
    spec.write_text(good.replace("grid: 3", "grid: 4"))
    r = subprocess.run([sys.executable, "-m", "study.pipeline", "spec"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: data/world_spec.yaml: world spec: `grid` must be 3 (positions are named on a 3x3 layout), got 4"
    )


def test_bdhs_knobs_reach_online_bdhs_runs():
    """``bdhs.rho_th`` / ``eps_s`` / ``n_bdhs`` drive Online-BDHS too (was: the library default rho_th 0.9,
    whatever params.yaml said); a run may still set its own, and ``align.base`` may not (it is not a base knob)."""
    import copy

    import yaml

    from study.align.online import bdhs_params
    from study.config import ParamsError, resolve

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edited = copy.deepcopy(raw)
    edited["bdhs"].update(rho_th=0.75, eps_s=0.9, n_bdhs=3)
    ap, _, _ = resolve(edited, "quick").align_run("online_bdhs")
    b = bdhs_params(ap)  # what the online loop samples with
    assert (b.rho_th, b.eps_s, b.n_bdhs) == (0.75, 0.9, 3)
    edited["align"]["runs"]["online_bdhs"]["bdhs_rho_th"] = 0.5
    assert bdhs_params(resolve(edited, "quick").align_run("online_bdhs")[0]).rho_th == 0.5
    edited["align"]["base"]["bdhs_rho_th"] = 0.5
    with pytest.raises(ParamsError, match="align.base.bdhs_rho_th is not a knob of align.base"):
        resolve(edited, "quick")
