"""A lead's validity gates against the default organism's at the same SFT seed, on the gates both measured.

    python benchmarks/lead_vs_default.py artifacts/leads/S1_v2_capnoise40_off50_summary1.json --seed 1

The default's per-seed gate values are the organism stage's (``metrics/organism.json: per_seed``, gated
with :func:`study.eval.gates.check_gates`, the rule the stage applies); the lead's are its
``benchmarks/organism_leads.py`` JSON. A gate counts only where both sides measured it (pass or fail), so
a gate one side could not measure (e.g. the BDHS ratio) neither wins nor loses. Prints one line per gate
and the adoption rule's comparison at this seed: ``win`` (the lead passes more), ``tie`` or ``loss``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.eval.gates import check_gates  # noqa: E402

MEASURED = ("pass", "fail")


def compare(default: dict, lead: dict) -> dict:
    """``default`` and ``lead``: gate name -> ``check_gates`` entry. Returns the gates both measured, each
    side's passes and the verdict."""
    both = [k for k in default if k in lead and default[k]["status"] in MEASURED and lead[k]["status"] in MEASURED]
    passes = {side: sum(g[k]["status"] == "pass" for k in both) for side, g in (("default", default), ("lead", lead))}
    d, m = passes["default"], passes["lead"]
    return {"gates": both, **passes, "verdict": "win" if m > d else "tie" if m == d else "loss"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lead", type=Path, help="a lead's JSON (benchmarks/organism_leads.py --out)")
    ap.add_argument("--seed", required=True, help="the SFT seed both ran at (a key of per_seed)")
    ap.add_argument("--default", type=Path, default=ROOT / "metrics" / "organism.json")
    args = ap.parse_args()
    per_seed = json.loads(args.default.read_text())["per_seed"]
    if args.seed not in per_seed:
        raise SystemExit(f"--seed {args.seed}: {args.default} has SFT seeds {sorted(per_seed)}")
    default = check_gates(per_seed[args.seed])
    lead = json.loads(args.lead.read_text())["gates"]
    result = compare(default, lead)
    for k in result["gates"]:
        d, m = default[k], lead[k]
        print(f"{k:24s} default {d['status']:4s} {d['value']:8.3f}   lead {m['status']:4s} {m['value']:8.3f}")
    print(
        f"on the {len(result['gates'])} gates both measured at seed {args.seed}: default {result['default']}, "
        f"lead {result['lead']} -> {result['verdict']}"
    )


if __name__ == "__main__":
    main()
