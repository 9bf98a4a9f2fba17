"""The gate table of a round of leads: one column per lead JSON, one row per validity gate.

    python benchmarks/lead_table.py artifacts/leads/S0_x.json artifacts/leads/S1_x.json artifacts/leads/S2_x.json

Each cell is the gate's value from the lead's JSON (``benchmarks/organism_leads.py``), ``*`` where the gate
fails and ``~`` where the verdict is within the value's own 95 % scene-bootstrap interval (``gate_noise``;
re-measure it on other scenes before it counts). Extra rows: the tower's val patch accuracy (all / clear /
faint objects), the text stage's reading accuracy before and after it, recall in / off the scene's context on ``val``, and the passed / measured count of the
per-model gates. With three or more leads (one per SFT seed) the two seed gates are computed over them with
the study's own rule (:func:`study.eval.gates.seed_values`) and printed below the table. Nothing is chosen
here: the verdicts are :func:`study.eval.gates.check_gates`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.eval.gates import GATES, SEED_GATES, check_gates, seed_values  # noqa: E402


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def cell(gates: dict, noise: dict, name: str) -> str:
    g = gates.get(name)
    if g is None or g["status"] == "not measured":
        return "—"
    mark = " *" if g["status"] == "fail" else ""
    if noise.get(name, {}).get("margin") == "within noise":
        mark += " ~"
    return _fmt(g["value"]) + mark


def table(leads: list[dict]) -> str:
    head = "| gate | " + " | ".join(d["name"] for d in leads) + " |"
    rows = [head, "|---|" + "---|" * len(leads)]
    for g in GATES:
        if g.name in SEED_GATES:
            continue
        rows.append(
            f"| {g.name} ({g.target()}) | "
            + " | ".join(cell(d["gates"], d.get("gate_noise", {}), g.name) for d in leads)
            + " |"
        )
    vis = [d.get("vision") or {} for d in leads]
    rows.append(
        "| tower patch accuracy all / clear / faint | "
        + " | ".join(
            " / ".join(
                _fmt(v.get(k)) for k in ("val_patch_accuracy", "val_patch_accuracy_clear", "val_patch_accuracy_faint")
            )
            for v in vis
        )
        + " |"
    )
    lms = [d.get("lm") or {} for d in leads]
    rows.append(
        "| text stage reading accuracy before → after | "
        + " | ".join(f"{_fmt(m.get('reading_accuracy_before'))} → {_fmt(m.get('reading_accuracy'))}" for m in lms)
        + " |"
    )
    desc = [((d.get("reports") or {}).get("val") or {}).get("describe", {}) for d in leads]
    rows.append(
        "| val recall in / off context | "
        + " | ".join(
            " / ".join(_fmt((x.get(k) or {}).get("value")) for k in ("recall_in_context", "recall_off_context"))
            for x in desc
        )
        + " |"
    )
    counts = []
    for d in leads:
        st = [v["status"] for k, v in d["gates"].items() if k not in SEED_GATES]
        counts.append(f"{st.count('pass')} / {st.count('pass') + st.count('fail')}")
    rows.append("| gates passed / measured | " + " | ".join(counts) + " |")
    return "\n".join(rows)


def seed_gates(leads: list[dict]) -> dict:
    """The seed gates over ``leads`` (one per SFT seed), by the study's rule."""
    per_seed = [{k: v["value"] for k, v in d["gates"].items() if k not in SEED_GATES} for d in leads]
    return {k: v for k, v in check_gates(seed_values(per_seed)).items() if k in SEED_GATES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("leads", nargs="+", type=Path, help="lead JSONs written by benchmarks/organism_leads.py")
    args = ap.parse_args()
    leads = [json.loads(p.read_text()) for p in args.leads]
    print(table(leads))
    if len(leads) >= 3:
        for k, v in seed_gates(leads).items():
            print(f"{k}: {_fmt(v['value'])} ({v['status']}, target {v['target']})")


if __name__ == "__main__":
    main()
