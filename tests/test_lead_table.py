"""benchmarks/lead_table.py: a round's gate table marks failures and within-noise verdicts, counts passes, and
computes the seed gates over one lead per seed with the study's rule."""

import pytest

from study.eval.gates import GATES, SEED_GATES, check_gates


@pytest.fixture(scope="module")
def tool(script_module):
    return script_module("benchmarks/lead_table.py")


def _passing_values() -> dict:
    """A value inside every per-model gate's range."""
    out = {}
    for g in GATES:
        if g.name in SEED_GATES:
            continue
        out[g.name] = (
            (g.lo + g.hi) / 2 if g.lo is not None and g.hi is not None else (g.lo if g.lo is not None else g.hi)
        )
    return out


def _lead(name: str, **changed) -> dict:
    values = {**_passing_values(), **changed}
    return {"name": name, "gates": check_gates(values), "gate_noise": {}, "vision": {"val_patch_accuracy_faint": 0.7}}


def test_the_table_marks_failures_and_counts_passes(tool):
    a = _lead("A")
    b = _lead("B", adversarial_drop=0.01)
    b["gate_noise"] = {"adversarial_drop": {"margin": "within noise"}}
    text = tool.table([a, b])
    row = next(line for line in text.splitlines() if line.startswith("| adversarial_drop"))
    assert row == "| adversarial_drop (>= 0.03) | 0.030 | 0.010 * ~ |"  # the gate's target as the study states it
    n = len(GATES) - len(SEED_GATES)
    assert f"| gates passed / measured | {n} / {n} | {n - 1} / {n} |" in text
    assert "0.700 |" in next(line for line in text.splitlines() if line.startswith("| tower patch"))
    a["lm"] = {"reading_accuracy_before": 0.45, "reading_accuracy": 0.525}
    reading = next(line for line in tool.table([a, b]).splitlines() if line.startswith("| text stage reading"))
    assert reading.endswith("| 0.450 → 0.525 | — → — |")  # b has no text stage


def test_seed_gates_need_every_seed_to_pass_and_read_the_chair_spread(tool):
    leads = [_lead("S0", chair_i=0.10), _lead("S1", chair_i=0.20), _lead("S2", chair_i=0.12, recall=0.5)]
    got = tool.seed_gates(leads)
    assert got["seeds_passing"]["value"] == pytest.approx(2 / 3) and got["seeds_passing"]["status"] == "fail"
    assert got["chair_i_spread"]["value"] == pytest.approx(0.10) and got["chair_i_spread"]["status"] == "fail"
