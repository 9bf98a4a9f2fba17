"""Fixtures of the preference tests: the spec, a tiny built world, tiny random LLaVA models, hand scenes."""
from pathlib import Path

import pytest

from study.world.corpus import CorpusParams, World, build_world
from study.world.language import vocabulary
from study.world.scenes import Scene, SceneObject, SceneParams, relations_of
from study.world.spec import load_spec

SPEC_PATH = Path(__file__).resolve().parents[2] / "data" / "world_spec.yaml"
TINY_SIZES = {"train": 400, "val": 40, "test": 4, "ood": 2}


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """Tiny models are overhead-bound; one torch thread avoids oversubscribing a shared 2-core machine."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def spec():
    return load_spec(SPEC_PATH)


@pytest.fixture(scope="session")
def world(spec, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("prefs") / "world"
    build_world(spec, root, seed=0, sizes=TINY_SIZES, scene_params=SceneParams(), corpus_params=CorpusParams(),
                faint_alpha=0.3, noise_std=6.0)
    return World(root)


def tiny_model(spec, seed: int = 0):
    from study.model.build import ModelParams, build_model
    from study.model.processor import build_processor

    processor = build_processor(vocabulary(spec), 48, 6)
    model = build_model(processor, 48, ModelParams(text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1,
                                                   text_intermediate=64), seed=seed)
    model.eval()
    return model, processor


@pytest.fixture(scope="session")
def tiny(spec):
    return tiny_model(spec, 0)


@pytest.fixture(scope="session")
def tiny_dirs(spec, tmp_path_factory):
    """Three tiny random checkpoints saved with save_pretrained (a VLFeedback pool)."""
    paths = []
    for seed in (0, 1, 2):
        model, processor = tiny_model(spec, seed)
        d = tmp_path_factory.mktemp(f"ckpt{seed}")
        model.save_pretrained(d, safe_serialization=True)
        processor.save_pretrained(d)
        paths.append(str(d))
    return paths


@pytest.fixture
def make_scene(spec):
    """``make_scene([(category, color, size, row, col), ...], context)`` -> Scene with relations."""
    def make(objs, context="kitchen", scene_id="test-000000"):
        objects = [SceneObject(i, c, col, size, r, cc, spec.position_name(r, cc), False)
                   for i, (c, col, size, r, cc) in enumerate(objs)]
        return Scene(scene_id, "test", context, objects, relations_of(objects))
    return make
