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


def _acc(n_right: int, n: int = 200) -> list[dict]:
    return _preds([i < n_right for i in range(n)])


def test_draws_pair_each_model_with_its_own_sft_draw_and_average_the_differences():
    # draw 0: A 0.90 vs B 0.60 (+0.30); draw 1: A 0.70 vs B 0.60 (+0.10); draw 2 only in A: left out
    a = {0: [_acc(180)], 1: [_acc(140)], 2: [_acc(20)]}
    b = {0: [_acc(120)], 1: [_acc(120)]}
    d = paired_difference(a, b, [], SPEC, "pope_random", "accuracy", n_boot=300)
    assert d["draws"] == [0, 1] and d["per_draw"] == {0: pytest.approx(0.30), 1: pytest.approx(0.10)}
    assert d["delta"] == pytest.approx(0.20) and verdict(d, True) == "better"
    # pooling all of A against all of B would mix draws: (0.9 + 0.7 + 0.1) / 3 - 0.6 = -0.033, another answer
    one = paired_difference([_acc(180)], [_acc(120)], [], SPEC, "pope_random", "accuracy", n_boot=300)
    assert one == {
        **paired_difference({0: [_acc(180)]}, {0: [_acc(120)]}, [], SPEC, "pope_random", "accuracy", n_boot=300)
    }  # a list is one draw
    with pytest.raises(ValueError, match="no SFT draw in common"):
        paired_difference({1: [_acc(10)]}, {0: [_acc(10)]}, [], SPEC, "pope_random", "accuracy")


def test_a_difference_that_flips_sign_on_one_draw_is_not_resolved_even_when_the_mean_is_clear():
    # +0.40 and +0.40 and -0.05: the mean's interval excludes 0, one draw disagrees
    a = {0: [_acc(180)], 1: [_acc(180)], 2: [_acc(90)]}
    b = {0: [_acc(100)], 1: [_acc(100)], 2: [_acc(100)]}
    d = paired_difference(a, b, [], SPEC, "pope_random", "accuracy", n_boot=300)
    assert d["ci95"][0] > 0 and d["per_draw"][2] < 0
    assert verdict(d, True) == "not resolved" and verdict(d, False) == "not resolved"
    flipped = {**d, "per_draw": {0: 0.4, 1: 0.4, 2: 0.01}}  # every draw on the mean's side: decided
    assert verdict(flipped, True) == "better" and verdict(flipped, False) == "worse"
    # one draw: the interval alone decides, whatever the point (a percentile interval need not contain it)
    assert verdict({"ci95": [0.01, 0.2], "per_draw": {0: -0.001}}, True) == "better"
