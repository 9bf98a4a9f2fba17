"""The vision tower's pretraining scenes without co-occurrence (study.world.uniform) and the tower's
presence report on the world's val/ood splits."""

import numpy as np
import pytest
import torch

from study.config import load_section
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.stage import model_params_of, pretrain_tower
from study.model.vision_pretrain import tower_presence_report
from study.world.language import vocabulary
from study.world.scenes import cooccurrence, generate_split, sample_scene
from study.world.stage import scene_params_of
from study.world.uniform import UNIFORM_STREAM, UniformScenes

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


def test_uniform_scenes_break_cooccurrence_that_the_world_has(spec):
    cats = spec.category_names
    params = scene_params_of(load_section("world"))
    u = UniformScenes(spec, params, n_train=1500, n_val=10, seed=0, faint_alpha=0.3, noise_std=6.0)
    world = generate_split(spec, params, 0, "train", 1500)
    # P(plate | cup): ~0.7 in the world (both kitchen objects), near the base rate in the uniform scenes
    i, j = cats.index("cup"), cats.index("plate")
    c_world, c_uni = cooccurrence(world, cats)[i, j], cooccurrence(u.scenes("train"), cats)[i, j]
    assert c_world > 0.55 and c_uni < 0.35
    # every category appears in every context's background
    seen = {(s.context, c) for s in u.scenes("train") for c in s.categories}
    assert len(seen) == len(spec.contexts) * len(cats)
    # the scene knobs still reach: at most max_objects objects, faint share as asked
    assert max(len(s.objects) for s in u.scenes("train")) <= params.max_objects
    faint = np.mean([o.faint for s in u.scenes("train") for o in s.objects])
    assert abs(faint - params.faint_prob) < 0.03


def test_uniform_scenes_are_disjoint_from_the_worlds_ood_split_and_deterministic(spec):
    params = scene_params_of(load_section("world"))
    a = UniformScenes(spec, params, n_train=50, n_val=5, seed=3, faint_alpha=0.3, noise_std=6.0)
    b = UniformScenes(spec, params, n_train=50, n_val=5, seed=3, faint_alpha=0.3, noise_std=6.0)
    assert [s.to_dict() for s in a.scenes("train")] == [s.to_dict() for s in b.scenes("train")]
    assert np.array_equal(a.images("train"), b.images("train"))
    ood = [sample_scene(spec, params, 3, "ood", k) for k in range(50)]
    key = lambda s: tuple((o.category, o.row, o.col, o.color, o.size) for o in s.objects) + (s.context,)  # noqa: E731
    assert not {key(s) for s in ood} & {key(s) for s in a.scenes("train")}
    # the set is the ood sampler on its own stream: the same call reproduces it
    again = [sample_scene(spec, params, 3, "train", k, uniform=True, stream=(UNIFORM_STREAM,)) for k in range(3)]
    assert [s.to_dict() for s in again] == [s.to_dict() for s in a.scenes("train")[:3]]
    assert a.image("train-000007").size == (spec.image_size, spec.image_size)
    with pytest.raises(KeyError, match="splits"):
        a.scenes("test")


def test_uniform_scenes_like_a_world_read_its_knobs(pretrain_world, spec):
    u = UniformScenes.like(pretrain_world, spec, n_train=8, n_val=4)
    assert u.seed == 0 and len(u.scenes("train")) == 8 and u.images("val").shape == (4, 48, 48, 3)


def test_pretrain_tower_on_uniform_scenes_reports_val_and_ood_probes(pretrain_world, spec):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vp = load_section("vision", objective="presence", scenes="uniform", n_scenes=64, epochs=1.0, batch_size=32)
    m = pretrain_tower(vp, model, proc, pretrain_world, spec, seed=0)
    assert m["scenes"] == "uniform" and m["steps"] == 2
    assert set(m["tower_probe"]) == {"fit_scenes", "val_auroc", "ood_auroc"} and m["tower_probe"]["fit_scenes"] == 64
    assert all(0.0 <= m["tower_probe"][k] <= 1.0 for k in ("val_auroc", "ood_auroc"))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def ood_world(make_world):
    """A built world with enough ood scenes for a probe's AUROC (120)."""
    return make_world("ood_world", train=8, val=60, test=2, ood=120)


def test_tower_report_separates_a_tower_that_sees_objects_from_one_that_sees_context(ood_world, spec):
    """Hand-made towers: one whose patch states are the image's pixels per grid cell, one whose states hold only
    the image's top-left pixel (the background colour, i.e. the context): on ood scenes, where the context says
    nothing about the objects, the first probes well and the second near chance."""

    class Tower(torch.nn.Module):
        def __init__(self, sees_objects: bool):
            super().__init__()
            self.sees = sees_objects

        def forward(self, pixel_values, output_hidden_states=True):
            x = pixel_values
            if not self.sees:
                x = x[:, :, :1, :1].expand_as(x)
            patches = torch.nn.functional.unfold(x, kernel_size=16, stride=16).transpose(1, 2)  # (b, 9, 3*256)
            h = torch.cat([torch.zeros_like(patches[:, :1]), patches], dim=1)
            return type("O", (), {"hidden_states": (h,)})()

    class Model:
        def __init__(self, tower):
            self.model = type("M", (), {"vision_tower": tower})()
            self.config = type("C", (), {"vision_feature_layer": -1})()

    proc = build_processor(vocabulary(spec), 48, 6)
    source = UniformScenes.like(ood_world, spec, n_train=400, n_val=4)
    seeing = tower_presence_report(Model(Tower(True)), proc, source, ood_world, spec, 64)
    blind = tower_presence_report(Model(Tower(False)), proc, source, ood_world, spec, 64)
    assert blind["ood_auroc"] < 0.6 and seeing["ood_auroc"] > 0.85


def test_vision_scenes_knob_is_validated():
    with pytest.raises(ValueError, match="scenes"):
        load_section("vision", scenes="web")
    with pytest.raises(ValueError, match="n_scenes"):
        load_section("vision", n_scenes=0)
