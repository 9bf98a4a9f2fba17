import numpy as np
import pytest

from study.eval.bootstrap import bootstrap_ci, bootstrap_table, ratio, resampled_sums

ACC = lambda s: ratio(s["correct"], s["n"])


def bernoulli(n, p=0.7, seed=0):
    return {"correct": (np.random.default_rng(seed).random(n) < p).astype(float), "n": np.ones(n)}


def test_ratio_is_safe_and_vectorised():
    assert ratio(1, 0) == 0.0 and ratio(1, 4) == 0.25
    np.testing.assert_allclose(ratio(np.array([1.0, 2.0]), np.array([2.0, 0.0])), [0.5, 0.0])


def test_ci_contains_point_and_is_reproducible():
    stats = bernoulli(200)
    point, lo, hi = bootstrap_ci(stats, ACC, n_boot=500, seed=7)
    assert point == pytest.approx(stats["correct"].mean())
    assert lo < point < hi
    assert bootstrap_ci(stats, ACC, n_boot=500, seed=7) == (point, lo, hi)
    assert bootstrap_ci(stats, ACC, n_boot=500, seed=8) != (point, lo, hi)


def test_ci_narrows_with_more_items():
    _, lo_s, hi_s = bootstrap_ci(bernoulli(50), ACC, n_boot=1000, seed=0)
    _, lo_l, hi_l = bootstrap_ci(bernoulli(5000), ACC, n_boot=1000, seed=0)
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_ratio_of_sums_is_resampled_at_item_level():
    # CHAIR_i-like: items with different numbers of mentions; a constant per-item ratio has a zero-width CI
    den = np.array([1.0, 4.0, 10.0, 2.0])
    point, lo, hi = bootstrap_ci({"h": den / 2, "m": den}, lambda s: ratio(s["h"], s["m"]), n_boot=200)
    assert point == lo == hi == 0.5
    # the point is sum/sum, not the mean of per-item ratios
    point, _, _ = bootstrap_ci(
        {"h": np.array([1.0, 0.0]), "m": np.array([1.0, 3.0])}, lambda s: ratio(s["h"], s["m"]), n_boot=10
    )
    assert point == 0.25


def test_groups_resample_clusters():
    stats = bernoulli(40)
    own = [f"{i:03d}" for i in range(40)]
    assert bootstrap_ci(stats, ACC, 300, 1, groups=own) == bootstrap_ci(stats, ACC, 300, 1)
    # items of one cluster always move together: 2 clusters with accuracies 1 and 0
    stats = {"correct": np.array([1.0, 1.0, 0.0, 0.0]), "n": np.ones(4)}
    point, boot = resampled_sums(stats, 500, 0, groups=["a", "a", "b", "b"])
    assert point == {"correct": 2.0, "n": 4.0}
    assert set(np.unique(ACC(boot))) == {0.0, 0.5, 1.0}  # never 0.25 / 0.75: a cluster moves whole
    assert bootstrap_ci(stats, ACC, 500, 0, groups=["a", "a", "b", "b"])[1:] == (0.0, 1.0)


def test_table_and_empty_input():
    table = bootstrap_table(bernoulli(100), {"acc": ACC, "err": lambda s: 1 - ACC(s)}, n_boot=300, seed=0)
    assert table["acc"]["value"] + table["err"]["value"] == pytest.approx(1.0)
    assert table["acc"]["ci95"][0] == pytest.approx(1 - table["err"]["ci95"][1])  # same replicates
    assert bootstrap_ci({"correct": np.zeros(0), "n": np.zeros(0)}, ACC, 100) == (0.0, 0.0, 0.0)
