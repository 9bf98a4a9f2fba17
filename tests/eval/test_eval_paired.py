"""Paired scene-bootstrap differences between two models scored on the same items."""

import numpy as np
import pytest

from study.eval.paired import paired_difference, verdict
from study.world.spec import load_spec

SPEC = load_spec("data/world_spec.yaml")


def _preds(correct: list[bool], suite="pope_random"):
    rows = []
    for i, ok in enumerate(correct):
        label = "yes" if i % 2 == 0 else "no"
        answer = label if ok else ("no" if label == "yes" else "yes")
        rows.append(
            {
                "item_id": f"{suite}-{i}",
                "suite": suite,
                "scene_id": f"s{i // 2}",
                "label": label,
                "answer": answer,
                "prompt": "is there a cup in the image ?",
            }
        )
    return rows


def test_a_uniformly_better_model_is_better_and_the_delta_is_exact():
    rng = np.random.default_rng(0)
    base = list(rng.random(200) < 0.6)
    better = [True] * 200
    d = paired_difference([_preds(better)], [_preds(base)], [], SPEC, "pope_random", "accuracy", n_boot=300)
    assert d["delta"] == pytest.approx(1 - np.mean(base)) and d["n_items"] == 200
    assert d["ci95"][0] > 0 and verdict(d, higher_is_better=True) == "better"
    assert verdict(d, higher_is_better=False) == "worse"


def test_identical_models_are_not_resolved_and_seeds_are_averaged():
    p = _preds([True, False] * 50)
    d = paired_difference([p], [p], [], SPEC, "pope_random", "accuracy", n_boot=100)
    assert d["delta"] == 0 and d["ci95"] == [0, 0] and verdict(d, True) == "not resolved"
    # model A with two seeds (all right, all wrong) averages to 0.5 = model B's accuracy
    d = paired_difference(
        [_preds([True] * 100), _preds([False] * 100)], [p], [], SPEC, "pope_random", "accuracy", n_boot=100
    )
    assert d["delta"] == pytest.approx(0.0)


def test_mismatched_items_fail_with_a_clear_error():
    with pytest.raises(ValueError, match="items differ"):
        paired_difference([_preds([True] * 10)], [_preds([True] * 8)], [], SPEC, "pope_random", "accuracy")
