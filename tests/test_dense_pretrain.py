"""The dense (per-patch what-is-where) vision pretraining objective (tiny world, tiny organism)."""

import numpy as np
import torch

from study.config import load_section
from study.model.build import build_model
from study.model.dense_pretrain import dense_targets, faint_patches, patch_cells, pretrain_dense
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.model.vision_pretrain import VisionPretrainParams
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


def test_patch_cells_map_each_patch_centre_to_its_grid_cell():
    cells = patch_cells(48, 6, 3).reshape(8, 8)
    # patch centres at 3, 9, 15 | 21, 27 | 33, 39, 45 px: cell boundaries at 16 and 32
    assert cells[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert cells[:, 0].tolist() == [0, 0, 0, 3, 3, 6, 6, 6]
    assert np.bincount(cells.ravel()).tolist() == [9, 6, 9, 6, 4, 6, 9, 6, 9]


def test_dense_targets_name_the_object_of_each_patch_cell(spec, make_scene):
    scene = make_scene([("cup", "white", "large", 0, 0), ("fork", "yellow", "small", 2, 2)])
    cells = patch_cells(48, 6, 3)
    t = dense_targets(spec, [scene], cells)
    cats = spec.category_names
    none = len(cats)
    assert t["category"][0, 0] == cats.index("cup") and t["category"][0, 63] == cats.index("fork")
    assert (t["category"][0, cells == 4] == none).all()  # empty centre cell
    assert t["color"][0, 0] == list(spec.colors).index("white") and t["size"][0, 63] == list(spec.sizes).index("small")
    assert t["color"][0, cells == 4].tolist() == [len(spec.colors)] * 4


def test_faint_patches_mark_the_cells_of_faint_objects_only(spec, make_scene):
    import dataclasses

    scene = make_scene([("cup", "white", "large", 0, 0), ("fork", "yellow", "small", 2, 2)])
    scene.objects[1] = dataclasses.replace(scene.objects[1], faint=True)
    cells = patch_cells(48, 6, 3)
    f = faint_patches(spec, [scene], cells)
    assert f.shape == (1, 64) and f.dtype == bool
    assert f[0, cells == 8].all() and f[0].sum() == (cells == 8).sum()  # the fork's cell, 9 patches, nothing else


def test_dense_pretraining_moves_only_the_tower_lowers_the_loss_and_is_deterministic(pretrain_world, spec):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    p = VisionPretrainParams(epochs=4, learning_rate=3e-3, batch_size=16, weight_decay=0.0)
    a, b = build_model(proc, 48, TINY, seed=0), build_model(proc, 48, TINY, seed=0)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    m = pretrain_dense(a, proc, pretrain_world, spec, p, seed=1, n_val=32)
    moved = {k for k, v in a.state_dict().items() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith("model.vision_tower.") for k in moved)
    assert set(a.state_dict()) == set(before)
    assert m["steps"] == 24 and m["loss_last"] < m["loss_first"]
    assert 0 <= m["val_patch_accuracy"] <= 1 and 0 <= m["val_presence_auroc"] <= 1
    # the overall accuracy is the patch-weighted mix of the faint and clear objects' accuracies
    vt = dense_targets(spec, pretrain_world.scenes("val")[:32], patch_cells(48, 6, 3))["category"]
    vf = faint_patches(spec, pretrain_world.scenes("val")[:32], patch_cells(48, 6, 3))
    n_faint, n_obj = int(vf.sum()), int((vt < len(spec.category_names)).sum())
    assert 0 < n_faint < n_obj
    mix = (m["val_patch_accuracy_faint"] * n_faint + m["val_patch_accuracy_clear"] * (n_obj - n_faint)) / n_obj
    assert abs(mix - m["val_patch_accuracy"]) < 1e-9
    mb = pretrain_dense(b, proc, pretrain_world, spec, p, seed=1, n_val=32)
    assert mb["loss_last"] == m["loss_last"] and all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
