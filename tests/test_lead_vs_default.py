"""benchmarks/lead_vs_default.py: the adoption rule's per-seed count uses only the gates both sides measured."""

import pytest


@pytest.fixture(scope="module")
def tool(script_module):
    return script_module("benchmarks/lead_vs_default.py")


def _gates(**status):
    return {k: {"status": s, "value": 0.0} for k, s in status.items()}


def test_a_gate_one_side_did_not_measure_does_not_count(tool):
    default = _gates(a="pass", b="fail", c="not measured")
    lead = _gates(a="pass", b="pass", c="fail")
    got = tool.compare(default, lead)
    assert got["gates"] == ["a", "b"]
    assert (got["default"], got["lead"], got["verdict"]) == (1, 2, "win")


def test_tie_and_loss(tool):
    assert tool.compare(_gates(a="pass", b="fail"), _gates(a="fail", b="pass"))["verdict"] == "tie"
    assert tool.compare(_gates(a="pass", b="pass"), _gates(a="fail", b="pass", z="pass"))["verdict"] == "loss"
