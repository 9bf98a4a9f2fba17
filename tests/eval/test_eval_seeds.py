"""Seed aggregation of alignment metrics: mean and Student-t interval over seeds, hand-computed."""

import math

import pytest

from study.eval.seeds import aggregate_seeds, t_interval


def _m(v, lo, hi, loss):
    return {
        "_meta": {"run": "r", "seed": None, "n_boot": 10},
        "describe": {"chair_i": {"value": v, "ci95": [lo, hi]}},
        "pope_random": {"accuracy": {"value": 1 - v, "ci95": [1 - hi, 1 - lo]}},
        "train": {"loss_last": loss, "note": "x"},
    }


def test_three_seeds_give_mean_and_t_interval():
    out = aggregate_seeds({0: _m(0.2, 0.1, 0.3, 0.5), 1: _m(0.3, 0.2, 0.4, 0.7), 2: _m(0.4, 0.3, 0.5, 0.6)})
    leaf = out["describe"]["chair_i"]
    # mean 0.3, sd 0.1, t_{0.975,2} = 4.302652729911275 -> half-width 4.3027 * 0.1 / sqrt(3)
    h = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert leaf["value"] == pytest.approx(0.3)
    assert leaf["ci95"] == pytest.approx([0.3 - h, 0.3 + h])
    assert leaf["per_seed"] == [0.2, 0.3, 0.4]
    assert leaf["ci95_scenes"] == pytest.approx([0.2, 0.4])
    assert out["pope_random"]["accuracy"]["value"] == pytest.approx(0.7)
    assert out["_meta"]["seeds"] == [0, 1, 2] and "seed" not in out["_meta"]
    assert out["train"]["loss_last"] == pytest.approx(0.6) and out["train"]["note"] == "x"
    assert out["train_per_seed"]["1"]["loss_last"] == 0.7


def test_one_seed_keeps_its_scene_bootstrap_interval():
    out = aggregate_seeds({5: _m(0.25, 0.2, 0.31, 0.4)})
    assert out["describe"]["chair_i"]["ci95"] == [0.2, 0.31] and out["describe"]["chair_i"]["value"] == 0.25
    assert out["_meta"]["seeds"] == [5] and "single seed" in out["_meta"]["seed_ci_method"]


def test_metric_missing_in_one_seed_is_left_out_and_empty_input_fails():
    a, b = _m(0.2, 0.1, 0.3, 0.5), _m(0.3, 0.2, 0.4, 0.7)
    del b["pope_random"]
    out = aggregate_seeds({0: a, 1: b})
    assert "pope_random" not in out and "chair_i" in out["describe"]
    with pytest.raises(ValueError):
        aggregate_seeds({})
    with pytest.raises(ValueError):
        t_interval([1.0])
