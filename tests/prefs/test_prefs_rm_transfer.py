"""Reward-model transfer table helpers: the Wilson interval and the formatted table."""

import pytest

from study.prefs.rm_transfer import transfer_table, wilson


def test_wilson_interval_matches_known_values():
    lo, hi = wilson(8, 10)  # textbook: 0.4902, 0.9433
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0 < hi < 0.2
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_transfer_table_is_train_by_eval():
    cell = lambda v: {"value": v, "ci95": [v - 0.1, v + 0.1], "n": 10, "ties": 0}
    t = transfer_table(
        {
            "accuracy": {
                "povid": {"povid": cell(0.9), "vlfeedback": cell(0.5)},
                "vlfeedback": {"povid": cell(0.4), "vlfeedback": cell(0.7)},
            }
        }
    )
    assert list(t.index) == ["povid", "vlfeedback"] and list(t.columns) == ["povid", "vlfeedback"]
    assert t.loc["povid", "vlfeedback"] == "50.0 [40.0, 60.0]" and t.loc["vlfeedback", "povid"].startswith("40.0")
