"""The repository passes its own pre-commit checks (.pre-commit-config.yaml): ruff lint, ruff format, nbstripout.

CI runs the test suite, so these are the CI step for the hooks; a failure names the files to fix with
``pre-commit run --all-files``.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["study", "scripts", "benchmarks", "tests", "notebooks"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        pytest.fail(f"{cmd[0]} is not installed: pip install -e '.[dev]'")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_passes():
    r = _run(["ruff", "check", *TARGETS])
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_applied():
    r = _run(["ruff", "format", "--check", *TARGETS])
    assert r.returncode == 0, r.stdout + r.stderr


def test_notebooks_in_git_carry_no_outputs():
    r = _run(["nbstripout", "--keep-id", "--verify", *sorted(str(p) for p in (ROOT / "notebooks").glob("*.ipynb"))])
    assert r.returncode == 0, r.stdout + r.stderr
