"""Three answer parsers on the same raw answers; values hand-computed."""

import pytest

from study.bench.parsers import exact_parse, first_word_parse, parser_table, sensitivity_by_suite
from study.eval.pope import pope_parse

ANSWERS = ["Yes.", "No, there is not.", "no", "Yes, there is a bus."]
LABELS = ["yes", "no", "yes", "no"]


def test_each_rule():
    assert [pope_parse(a) for a in ANSWERS] == ["yes", "no", "no", "yes"]
    assert [exact_parse(a) for a in ANSWERS] == ["yes", None, "no", None]
    assert [first_word_parse(a) for a in ANSWERS] == ["yes", "no", "no", "yes"]
    assert exact_parse("  NO! ") == "no" and exact_parse("") is None and first_word_parse("") is None
    assert pope_parse("") == "yes"  # POPE's rule: an empty answer is "yes"


def test_table_and_flag():
    t = parser_table(ANSWERS, LABELS)
    assert t["parsers"]["pope"] == {"accuracy": 0.5, "f1": 0.5, "yes_ratio": 0.5, "unparsed": 0.0}
    # exact: yes (right), unparsed (wrong), no (wrong), unparsed (wrong); TP=1, FP=0, FN=1
    assert t["parsers"]["exact"] == pytest.approx({"accuracy": 0.25, "f1": 2 / 3, "yes_ratio": 0.25, "unparsed": 0.5})
    assert t["parsers"]["first_word"] == t["parsers"]["pope"]
    assert t["accuracy_gap"] == 0.25 and t["sensitive"] and t["n"] == 4


def test_agreeing_parsers_are_not_flagged():
    t = parser_table(["yes", "no", "no"], ["yes", "no", "yes"])
    assert t["accuracy_gap"] == 0.0 and not t["sensitive"]


def test_by_suite_skips_rows_without_a_yes_no_label():
    rows = [{"suite": "pope_random", "answer": a, "label": y} for a, y in zip(ANSWERS, LABELS)]
    rows.append({"suite": "halbench", "answer": "a dog ."})
    out = sensitivity_by_suite(rows)
    assert list(out) == ["pope_random"] and out["pope_random"]["n"] == 4
