"""Fixtures of the preference tests: the spec, a tiny built world, tiny random LLaVA models, hand scenes."""

import pytest

from study.config import load_section
from study.model.stage import model_params_of
from study.world.corpus import World, build_world
from study.world.language import vocabulary
from study.world.stage import corpus_params_of, scene_params_of

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
def world(spec, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("prefs") / "world"
    build_world(
        spec,
        root,
        seed=0,
        sizes=TINY_SIZES,
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    return World(root)


def tiny_model(spec, seed: int = 0):
    from study.model.build import build_model
    from study.model.processor import build_processor

    processor = build_processor(vocabulary(spec), 48, 6)
    model = build_model(
        processor,
        48,
        model_params_of(
            load_section("model"),
            text_hidden=32,
            text_layers=1,
            vision_hidden=16,
            vision_layers=1,
            text_intermediate=64,
        ),
        seed=seed,
    )
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
