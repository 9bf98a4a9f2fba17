"""The organism's validity gates: thresholds, pass/fail and values computed from reports."""

import pytest

from study.eval.gates import GATE_NAMES, GATES, MIN_SEEDS, check_gates, gate_values, seed_values, summary


def _v(x):
    return {"value": x, "ci95": [x, x]}


def _report(
    acc_r=0.86,
    acc_a=0.80,
    auroc_r=0.95,
    auroc_a=0.85,
    masked=0.5,
    yes=0.5,
    chair=0.15,
    recall=0.8,
    ctx=0.7,
    ratio=3.0,
    gain=0.1,
):
    rep = {
        f"pope_{t}": {
            "accuracy": _v(acc_r if t != "adversarial" else acc_a),
            "yes_ratio": _v(yes),
            "auroc": _v(auroc_r if t != "adversarial" else auroc_a),
            "auroc_masked": _v(masked),
            "image_gain": _v((auroc_r if t != "adversarial" else auroc_a) - masked),
        }
        for t in ("random", "popular", "adversarial")
    }
    rep["describe"] = {"chair_i": _v(chair), "recall": _v(recall), "context_share": _v(ctx)}
    rep["sampled"] = {"chair_i_ratio": ratio}
    rep["probe"] = {"gain": gain}
    return rep


def _ood(recall, auroc=0.85):
    return {"describe": {"recall": _v(recall)}, "pope_random": {"auroc": _v(auroc)}}


SWEEP = {"rho_0": {"it1_new_hallucinated_per_answer": 0.5}, "rho_0.9": {"it1_new_hallucinated_per_answer": 1.0}}


def test_a_grounded_organism_passes_every_per_model_gate():
    values = gate_values(_report(), _ood(0.72), SWEEP, 0.9)
    assert values["ood_recall_ratio"] == pytest.approx(0.9)
    assert values["bdhs_new_halluc_ratio"] == pytest.approx(2.0)
    assert values["adversarial_drop"] == pytest.approx(0.06)
    checked = check_gates(values)
    assert {k for k, r in checked.items() if r["status"] != "pass"} == {"seeds_passing", "chair_i_spread"}
    assert checked["seeds_passing"]["status"] == "not measured"
    assert summary(checked) == {"pass": len(GATES) - 2, "fail": 0, "not measured": 2}


@pytest.mark.parametrize(
    "change, failing",
    [
        (dict(yes=0.99), {"yes_ratio_random", "yes_ratio_popular", "yes_ratio_adversarial"}),
        (dict(acc_a=0.85), {"adversarial_drop"}),
        (dict(auroc_r=0.89), {"auroc_random"}),
        (dict(masked=0.75), {"image_gain_random", "image_gain_popular", "image_gain_adversarial"}),
        (dict(chair=0.31), {"chair_i"}),
        (dict(chair=0.04), {"chair_i"}),
        (dict(recall=0.69), {"recall"}),
        (dict(recall=0.90), {"ood_recall_ratio"}),  # 0.68 / 0.90 < 0.8
        (dict(ctx=0.59), {"context_share"}),
        (dict(ratio=1.9), {"masked_chair_ratio"}),
        (dict(gain=0.049), {"probe_gain"}),
    ],
)
def test_each_threshold_fails_just_outside_its_range(change, failing):
    checked = check_gates(gate_values(_report(**change), _ood(0.68), SWEEP, 0.9))
    got = {k for k, r in checked.items() if r["status"] == "fail"}
    assert got == failing


def test_an_organism_that_does_not_recognise_objects_out_of_context_fails_the_ood_gate():
    checked = check_gates(gate_values(_report(), _ood(0.72, auroc=0.79), SWEEP, 0.9))
    assert {k for k, r in checked.items() if r["status"] == "fail"} == {"ood_auroc_random"}
    assert (
        check_gates(gate_values(_report(), {"describe": {"recall": _v(0.72)}}))["ood_auroc_random"]["status"]
        == "not measured"
    )


def test_an_organism_that_ignores_its_image_fails_the_grounding_gates():
    blind = _report(acc_r=0.5, acc_a=0.5, auroc_r=0.56, auroc_a=0.5, masked=0.55, yes=0.99, ratio=1.0, gain=0.0)
    checked = check_gates(gate_values(blind))
    for g in ("pope_random_accuracy", "auroc_random", "image_gain_random", "masked_chair_ratio", "probe_gain"):
        assert checked[g]["status"] == "fail"
    assert checked["bdhs_new_halluc_ratio"]["status"] == "not measured"  # no sweep given: never a pass
    assert checked["ood_recall_ratio"]["status"] == "not measured"


def test_seed_gates_need_three_seeds_that_each_pass():
    good = gate_values(_report(), _ood(0.75), SWEEP, 0.9)
    assert seed_values([good, good]) == {"seeds_passing": None, "chair_i_spread": None}
    bad = gate_values(_report(yes=0.9, chair=0.22), _ood(0.75), SWEEP, 0.9)
    s = seed_values([good, good, bad])
    assert s["seeds_passing"] == pytest.approx(2 / 3)
    assert s["chair_i_spread"] == pytest.approx(0.07)
    checked = check_gates({**good, **s})
    assert checked["seeds_passing"]["status"] == "fail" and checked["chair_i_spread"]["status"] == "fail"
    assert MIN_SEEDS == 3


def test_unknown_gate_values_are_refused():
    with pytest.raises(KeyError, match="unknown gate"):
        check_gates({"pope_accuracy": 0.9})
    assert len(set(GATE_NAMES)) == len(GATES)
