"""The grounding report of a tiny random organism: complete, recomputable from its rows, deterministic."""

import json

import numpy as np
import pytest
import torch

from study.config import load_section
from study.eval.organism import add_grounding_fields, grounding_metrics, grounding_report
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.world.corpus import World, build_world
from study.world.language import vocabulary
from study.world.stage import corpus_params_of, scene_params_of

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, spec):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("oworld") / "w"
    build_world(
        spec,
        d,
        seed=0,
        sizes={"train": 40, "val": 6, "test": 4, "ood": 4},
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    return model, proc, World(d)


def test_report_is_complete_and_recomputes_from_its_rows(setup, spec):
    model, proc, world = setup
    kw = dict(split="val", n_scenes=6, n_pos=2, batch_size=8, max_new_tokens=8, probe_train=30, n_boot=50, seed=0)
    rep, rows = grounding_report(model, proc, world, spec, **kw)
    for suite in ("pope_random", "pope_popular", "pope_adversarial"):
        for k in ("auroc", "auroc_masked", "image_gain", "accuracy", "yes_ratio"):
            v = rep[suite][k]
            assert v["ci95"][0] <= v["value"] <= v["ci95"][1], (suite, k)
    assert {"chair_i", "recall", "context_share", "image_dependence"} <= set(rep["describe"])
    assert rep["sampled"]["chair_i_masked"]["value"] >= 0 and "chair_i_ratio" in rep["sampled"]
    assert rep["probe"]["gain"] == pytest.approx(rep["probe"]["features_auroc"] - rep["probe"]["context_auroc"])
    # the rows carry everything the instruments need: recomputing them gives the same numbers
    again = grounding_metrics(rows["pope"] + rows["describe"], n_boot=50, seed=0)
    assert again["pope_adversarial"]["auroc"] == rep["pope_adversarial"]["auroc"]
    assert again["describe"]["image_dependence"] == rep["describe"]["image_dependence"]
    assert {r["variant"] for r in rows["sampled"]} == {"image", "masked"}
    json.dumps(rep)
    rep2, _ = grounding_report(model, proc, world, spec, **kw)
    assert json.dumps(rep2, sort_keys=True) == json.dumps(rep, sort_keys=True)  # same seed, same report
    # the adversarial drop is the two accuracies' difference, its interval a paired scene bootstrap
    drop = rep["adversarial_drop"]
    assert drop["value"] == pytest.approx(
        rep["pope_random"]["accuracy"]["value"] - rep["pope_adversarial"]["accuracy"]["value"]
    )
    assert drop["ci95"][0] <= drop["value"] <= drop["ci95"][1]


def test_report_on_later_scenes_uses_exactly_those_scenes(setup, spec):
    model, proc, world = setup
    kw = dict(split="val", n_pos=2, batch_size=8, max_new_tokens=8, probe_train=30, n_boot=20, seed=0)
    rep, rows = grounding_report(model, proc, world, spec, n_scenes=4, first=2, **kw)
    want = {s.scene_id for s in world.scenes("val")[2:6]}
    assert rep["_meta"]["first"] == 2 and rep["_meta"]["n_scenes"] == 4
    assert {r["scene_id"] for r in rows["pope"]} == want == {r["scene_id"] for r in rows["describe"]}
    with pytest.raises(ValueError, match="first must be >= 0"):
        grounding_report(model, proc, world, spec, n_scenes=4, first=-1, **kw)


def test_grounding_fields_measure_the_image_not_the_text(setup, spec):
    model, proc, world = setup
    rows = [
        {
            "suite": "pope_random",
            "scene_id": f"val-{i}",
            "prompt": "is there a cup in the image ?",
            "label": "yes" if i % 2 else "no",
            "answer": "yes",
        }
        for i in range(4)
    ]
    rows.append(
        {
            "suite": "describe",
            "scene_id": "val-0",
            "prompt": "describe the image in detail .",
            "answer": "this is a kitchen scene .",
        }
    )
    out = add_grounding_fields(model, proc, world, rows, batch_size=3)
    assert rows[0].keys() == {"suite", "scene_id", "prompt", "label", "answer"}  # inputs untouched
    masked = [r["margin_masked"] for r in out[:4]]
    assert np.allclose(masked, masked[0], atol=1e-5)  # no image: the same question, the same margin
    assert out[4]["n_tokens"] == 6 and out[4]["logp"] < 0 and out[4]["logp_masked"] < 0
    m = grounding_metrics(out, n_boot=20, seed=0)
    assert m["pope_random"]["auroc_masked"]["value"] == 0.5
