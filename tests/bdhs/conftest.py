"""Shared fixtures of the BDHS tests: the world spec, a tiny random LLaVA and the sentence encoder."""

import numpy as np
import pytest
from PIL import Image

from study.config import load_section
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.world.language import vocabulary


@pytest.fixture(scope="session")
def tiny(spec):
    """(model, processor): a tiny random LLaVA with 64 image tokens (48x48 image, patch 6)."""
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
        seed=0,
    )
    return model.eval(), processor


@pytest.fixture(scope="session")
def images():
    """Four different random 48x48 RGB images."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(4)]


@pytest.fixture(scope="module")
def encoder():
    """The default sentence encoder (bundled all-MiniLM-L6-v2), loaded once per test module."""
    from study.bdhs import SentenceEncoder

    return SentenceEncoder()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from 2 threads, and thread thrashing makes them ~10x slower when other
    processes share the cores; restored afterwards so other test packages keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
