"""Gate intervals and the clear / within-noise label: the label follows the threshold, the ratio
interval is the delta method's, every gate is covered, and the point verdict is the gates' own."""

import math

import pytest

from study.eval.gate_noise import count_margins, gate_intervals, margin, noise_table, ratio_interval
from study.eval.gates import GATE_NAMES, GATES, check_gates, gate_values

GATE = {g.name: g for g in GATES}


def _m(v, lo, hi):
    return {"value": v, "ci95": [lo, hi]}


def _report(context_share=(0.55, 0.48, 0.62), recall=(0.9, 0.88, 0.92)):
    pope = {
        t: {
            "accuracy": _m(0.88, 0.85, 0.91),
            "yes_ratio": _m(0.5, 0.46, 0.54),
            "auroc": _m(0.95, 0.93, 0.97),
            "image_gain": _m(0.4, 0.35, 0.45),
        }
        for t in ("random", "popular", "adversarial")
    }
    return {
        **{f"pope_{t}": v for t, v in pope.items()},
        "adversarial_drop": _m(0.025, 0.01, 0.04),
        "describe": {"chair_i": _m(0.18, 0.15, 0.21), "recall": _m(*recall), "context_share": _m(*context_share)},
        "sampled": {"chair_i_image": _m(0.2, 0.17, 0.23), "chair_i_masked": _m(0.8, 0.76, 0.84), "chair_i_ratio": 4.0},
        "probe": {"gain": 0.1},
    }


def test_margin_follows_the_threshold():
    share = GATE["context_share"]  # >= 0.6
    assert margin(share, (0.48, 0.62)) == "within noise"
    assert margin(share, (0.48, 0.59)) == "clear"  # a clear fail
    assert margin(share, (0.61, 0.70)) == "clear"  # a clear pass
    assert margin(share, None) == "no interval"
    yes = GATE["yes_ratio_random"]  # in [0.35, 0.65]: either bound counts
    assert margin(yes, (0.60, 0.66)) == "within noise" and margin(yes, (0.30, 0.40)) == "within noise"
    assert margin(yes, (0.40, 0.60)) == "clear"
    assert margin(GATE["chair_i_spread"], (0.04, 0.06)) == "within noise"  # an upper bound only


def test_ratio_interval_is_the_delta_method_on_the_log_scale():
    lo, hi = ratio_interval(0.8, (0.76, 0.84), 0.9, (0.88, 0.92))
    r = 0.8 / 0.9
    assert lo < r < hi
    assert math.log(hi / r) == pytest.approx(math.log(r / lo))  # symmetric in log r
    se = math.sqrt((0.08 / 3.919927969 / 0.8) ** 2 + (0.04 / 3.919927969 / 0.9) ** 2)
    assert math.log(hi / r) == pytest.approx(1.959963985 * se)
    wider = ratio_interval(0.8, (0.70, 0.90), 0.9, (0.88, 0.92))
    assert wider[0] < lo and wider[1] > hi
    assert ratio_interval(0.0, (0.0, 0.1), 0.9, (0.88, 0.92)) is None


def test_every_gate_gets_an_interval_or_an_explicit_none():
    rep, ood = _report(), _report(recall=(0.72, 0.68, 0.76))
    iv = gate_intervals(rep, ood)
    assert set(iv) == set(GATE_NAMES)
    assert iv["context_share"] == (0.48, 0.62) and iv["adversarial_drop"] == (0.01, 0.04)
    assert iv["ood_auroc_random"] == (0.93, 0.97)
    assert iv["probe_gain"] is None and iv["bdhs_new_halluc_ratio"] is None and iv["seeds_passing"] is None
    values = gate_values(rep, ood)
    for k in ("ood_recall_ratio", "masked_chair_ratio"):
        assert iv[k][0] < values[k] < iv[k][1], k
    assert gate_intervals(rep)["ood_recall_ratio"] is None  # no ood report, no interval


def test_noise_table_keeps_the_point_verdict_and_counts_the_margins():
    rep, ood = _report(), _report(recall=(0.72, 0.68, 0.76))
    values = gate_values(rep, ood)
    table = noise_table(values, gate_intervals(rep, ood))
    checked = check_gates(values)
    assert {k: r["status"] for k, r in table.items()} == {k: r["status"] for k, r in checked.items() if k in values}
    assert table["context_share"]["status"] == "fail" and table["context_share"]["margin"] == "within noise"
    assert table["adversarial_drop"]["status"] == "fail" and table["adversarial_drop"]["margin"] == "within noise"
    assert table["auroc_random"]["margin"] == "clear" and table["probe_gain"]["margin"] == "no interval"
    counts = count_margins(table)
    assert counts["fail within noise"] >= 2 and sum(counts.values()) == sum(
        r["margin"] != "no interval" and r["status"] != "not measured" for r in table.values()
    )
    clear_fail = noise_table(values, {**gate_intervals(rep, ood), "context_share": (0.50, 0.58)})
    assert clear_fail["context_share"]["margin"] == "clear"


def test_the_bdhs_ratio_takes_the_sweeps_paired_interval_where_the_sweep_has_one():
    rep, ood = _report(), _report(recall=(0.72, 0.68, 0.76))
    row0 = {"it1_new_hallucinated_per_answer": 0.5}
    at = {"it1_new_hallucinated_per_answer": 0.7, "it1_new_ratio_vs_0_lo": 1.1, "it1_new_ratio_vs_0_hi": 1.9}
    sweep = {"rho_0": row0, "rho_0.9": at}
    values = gate_values(rep, ood, sweep, 0.9)
    iv = gate_intervals(rep, ood, sweep, 0.9)
    assert iv["bdhs_new_halluc_ratio"] == (1.1, 1.9)
    row = noise_table(values, iv)["bdhs_new_halluc_ratio"]
    assert row["status"] == "fail" and row["margin"] == "within noise"  # 1.4 against 1.5, inside [1.1, 1.9]
    clear = noise_table(
        values, gate_intervals(rep, ood, {**sweep, "rho_0.9": {**at, "it1_new_ratio_vs_0_hi": 1.45}}, 0.9)
    )
    assert clear["bdhs_new_halluc_ratio"]["margin"] == "clear"
    old = {"rho_0": row0, "rho_0.9": {"it1_new_hallucinated_per_answer": 0.7}}  # a sweep written before the interval
    assert gate_intervals(rep, ood, old, 0.9)["bdhs_new_halluc_ratio"] is None
    assert gate_intervals(rep, ood, sweep, 0.5)["bdhs_new_halluc_ratio"] is None  # no row at that rho_th
