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


@pytest.fixture(scope="session")
def spec():
    """The study's world spec (``data/world_spec.yaml``)."""
    from study.world.spec import load_spec

    return load_spec(ROOT / "data" / "world_spec.yaml")


@pytest.fixture
def make_scene(spec):
    """``make_scene([(category, color, size, row, col), ...], context)`` -> Scene with relations."""
    from study.world.scenes import Scene, SceneObject, relations_of

    def make(objs, context="kitchen", scene_id="test-000000"):
        objects = [SceneObject(i, c, col, size, r, cc, spec.position_name(r, cc), False)
                   for i, (c, col, size, r, cc) in enumerate(objs)]
        return Scene(scene_id, "test", context, objects, relations_of(objects))
    return make
