"""Parser sensitivity of every evaluated model's POPE answers (the organism's, or any results tree).

    python scripts/parser_sensitivity.py [--eval-root artifacts/eval] [--markdown]

For each ``predictions.jsonl`` under the root (the SFT model, every alignment run and seed), scores the
POPE suites under POPE's rule, an exact "yes"/"no" match and a first-word rule
(:mod:`study.bench.parsers`) and prints accuracy and yes-ratio under each, flagging suites whose parsers'
accuracies differ by more than one point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def tables(eval_root: Path) -> list[dict]:
    from study import io
    from study.bench.parsers import sensitivity_by_suite

    out = []
    for path in sorted(eval_root.rglob("predictions.jsonl")):
        rows = [r for r in io.read_jsonl(path) if str(r.get("suite", "")).startswith("pope_")]
        if not rows:
            continue
        for suite, t in sensitivity_by_suite(rows).items():
            out.append({"model": str(path.parent.relative_to(eval_root)), "suite": suite, **t})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval-root", default="artifacts/eval")
    args = ap.parse_args(argv)
    rows = tables(Path(args.eval_root))
    if not rows:
        print(f"error: no predictions.jsonl with POPE rows under {args.eval_root}", file=sys.stderr)
        return 2
    print(
        "| model | suite | n | acc POPE / exact / first word | yes-ratio POPE / exact / first word | unparsed (exact) | gap | flag |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["parsers"]
        acc = " / ".join(f"{p[k]['accuracy']:.3f}" for k in ("pope", "exact", "first_word"))
        yes = " / ".join(f"{p[k]['yes_ratio']:.3f}" for k in ("pope", "exact", "first_word"))
        print(
            f"| {r['model']} | {r['suite']} | {r['n']} | {acc} | {yes} | {p['exact']['unparsed']:.3f} | "
            f"{r['accuracy_gap']:.3f} | {'parser-sensitive' if r['sensitive'] else ''} |"
        )
    n_flag = sum(r["sensitive"] for r in rows)
    print(
        f"\n{n_flag} of {len(rows)} (model, suite) pairs parser-sensitive (> {rows[0]['threshold']:.2f} accuracy gap)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
