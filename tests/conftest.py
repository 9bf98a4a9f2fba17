import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _chdir_root():
    """Tests address project files (data/world_spec.yaml, params.yaml) relative to the repo root."""
    old = os.getcwd()
    os.chdir(ROOT)
    if not (ROOT / "data" / "world_spec.yaml").is_file():
        pytest.exit("data/world_spec.yaml is missing: run `dvc pull data.dvc` first (see README)", returncode=2)
    yield
    os.chdir(old)
