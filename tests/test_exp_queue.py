"""DVC's experiment queue runs study variants in parallel workers: two queued experiments at the smoke size,
two workers, both finish with their metrics, compared with ``dvc exp show``."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd, timeout=1200):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.mark.slow
def test_two_queued_experiments_run_in_two_workers(tmp_path):
    repo = tmp_path / "study"
    repo.mkdir()
    for name in ("notebooks", "study"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", repo / "data")
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "smoke"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the project's .gitignore (metrics/ tracked by git: an experiment records it); data/ is committed here
    ignore = [ln for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.strip() != "/data"]
    (repo / ".gitignore").write_text("\n".join(ignore) + "\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(git + ["add", "-A"], repo)
    _run(git + ["commit", "-qm", "smoke study"], repo)
    # two variants of the SFT model, each up to `sft` (spec, world, vision, lm, sft), queued then run by two workers
    for lr in ("0.002", "0.004"):
        _run(["dvc", "exp", "run", "--queue", "-S", f"sft.learning_rate={lr}", "-n", f"lr{lr[-1]}", "sft"], repo)
    _run(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.monotonic() + 1500
    while True:
        status = _run(["dvc", "queue", "status"], repo)
        if not any(w in status for w in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, f"queue did not finish:\n{status}"
        time.sleep(5)
    assert status.count("Success") == 2, status
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], repo))
    exps = {
        e["name"]: e for rev in shown for e in (rev.get("experiments") or []) for e in [e["revs"][0]] if e.get("name")
    }
    assert set(exps) == {"lr2", "lr4"}, list(exps)
    for name, lr in (("lr2", 0.002), ("lr4", 0.004)):
        data = exps[name]["data"]
        assert data["params"]["params.yaml"]["data"]["sft"]["learning_rate"] == lr
        sft = data["metrics"]["metrics/sft.json"]["data"]
        assert sft["eval_loss"] > 0
    assert (
        exps["lr2"]["data"]["metrics"]["metrics/sft.json"]["data"]["eval_loss"]
        != exps["lr4"]["data"]["metrics"]["metrics/sft.json"]["data"]["eval_loss"]
    )
