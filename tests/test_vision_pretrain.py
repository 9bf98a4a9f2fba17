"""Vision-tower pretraining on object presence (tiny world, tiny organism)."""

import json

import pytest
import torch

from study.config import load_section
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.model.vision_pretrain import PresenceHead, VisionPretrainParams, pretrain_vision
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


@pytest.fixture(scope="module")
def world(pretrain_world):
    return pretrain_world


def test_presence_head_max_pools_patches():
    head = PresenceHead(4, 3)
    x = torch.randn(2, 5, 4)
    assert torch.allclose(head(x), head.proj(x).max(dim=1).values)


def test_pretraining_moves_only_the_tower_and_lowers_the_loss(world, spec):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = pretrain_vision(
        model,
        proc,
        world,
        spec,
        VisionPretrainParams(epochs=6, learning_rate=3e-3, batch_size=16, weight_decay=0.0),
        seed=0,
        n_val=32,
    )
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("model.vision_tower.") for k in moved)
    assert set(after) == set(before)  # the head is not part of the model
    assert m["steps"] == 36 and m["loss_last"] < m["loss_first"]
    assert 0.0 <= m["val_presence_auroc"] <= 1.0
    json.dumps(m)


def test_same_seed_same_tower(world, spec):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    p = VisionPretrainParams(epochs=1, learning_rate=1e-3, batch_size=32, weight_decay=0.0)
    a, b = build_model(proc, 48, TINY, seed=0), build_model(proc, 48, TINY, seed=0)
    ma, mb = pretrain_vision(a, proc, world, spec, p, seed=3), pretrain_vision(b, proc, world, spec, p, seed=3)
    assert ma["loss_last"] == mb["loss_last"]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
