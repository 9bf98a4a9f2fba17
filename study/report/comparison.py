"""The paper's main comparison (Tables 2, 6, 9, 12 analogs) built from the stage metrics JSON files.

Columns follow the paper's hallucination/helpfulness split, measured exactly on the organism: POPE
accuracy on the three negative splits, CHAIR_s, CHAIR_i, object recall, the typed-QA hallucination rate
and the helpfulness proxy, each with its 95 % CI (scene bootstrap for one seed, Student-t over seeds
for several). The ``Seeds`` column says how many training seeds each row averages: in the full profile a
run a finding rests on has 3, the others 1. Whether one model beats another is decided by a paired test
(:mod:`study.report.findings`), not by comparing these intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = [  # (column, suite, metric, higher_is_better)
    ("POPE rand", "pope_random", "accuracy", True),
    ("POPE pop", "pope_popular", "accuracy", True),
    ("POPE adv", "pope_adversarial", "accuracy", True),
    ("CHAIR_s", "describe", "chair_s", False),
    ("CHAIR_i", "describe", "chair_i", False),
    ("Recall", "describe", "recall", True),
    ("QA halluc.", "typed_qa", "hallucination_rate", False),
    ("Helpful", "describe", "helpfulness", True),
]


def load_runs(metrics_dir: str | Path, runs: list[str]) -> dict[str, dict]:
    """``{"SFT": eval_sft.json, run: align/<run>.json}`` for the runs whose metrics exist."""
    d = Path(metrics_dir)
    out = {"SFT": json.loads((d / "eval_sft.json").read_text())}
    for r in runs:
        f = d / "align" / f"{r}.json"
        if f.is_file():
            out[r] = json.loads(f.read_text())
    return out


def comparison_table(runs: dict[str, dict]) -> pd.DataFrame:
    """Tidy table: one row per (model, column) with value and CI; method/data and the number of training
    seeds (1 for the SFT model) from each run's meta."""
    rows = []
    for name, m in runs.items():
        meta = m.get("_meta", {})
        for col, suite, metric, hib in COLUMNS:
            v = m.get(suite, {}).get(metric)
            if v is None:
                continue
            rows.append(
                {
                    "model": name,
                    "method": meta.get("method", "sft"),
                    "data": meta.get("data", "-"),
                    "seeds": len(meta.get("seeds") or [None]),
                    "column": col,
                    "value": v["value"],
                    "lo": v["ci95"][0],
                    "hi": v["ci95"][1],
                    "higher_is_better": hib,
                }
            )
    return pd.DataFrame(rows)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """Models as rows: the number of training seeds, then ``value [lo, hi]`` (percent) as cells, in
    :data:`COLUMNS` order."""
    t = table.copy()
    t["cell"] = t.apply(lambda r: f"{100 * r.value:.1f} [{100 * r.lo:.1f}, {100 * r.hi:.1f}]", axis=1)
    out = t.pivot(index="model", columns="column", values="cell")
    cols = [c for c, *_ in COLUMNS if c in out.columns]
    order = ["SFT"] + [m for m in out.index if m != "SFT"]
    out = out.loc[order, cols]
    out.insert(0, "Seeds", t.groupby("model")["seeds"].first().loc[order])
    return out


def subtable(main: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """Rows ``SFT`` + ``runs`` (those present) of a :func:`wide` table."""
    return main.loc[[r for r in ["SFT", *runs] if r in main.index]]
