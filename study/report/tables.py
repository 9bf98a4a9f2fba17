"""Flatten metrics dicts (``{"value", "ci95"}`` leaves) into tidy tables."""

from __future__ import annotations

import pandas as pd


def tidy(metrics: dict, model: str = "model") -> pd.DataFrame:
    """One row per (suite, metric) with value and CI bounds; ``_meta`` and non-metric keys skipped."""
    rows = []

    def walk(d: dict, path: tuple[str, ...]):
        for k, v in d.items():
            if k.startswith("_"):
                continue
            if isinstance(v, dict) and "value" in v and "ci95" in v:
                rows.append(
                    {
                        "model": model,
                        "suite": ".".join(path),
                        "metric": k,
                        "value": v["value"],
                        "ci_lo": v["ci95"][0],
                        "ci_hi": v["ci95"][1],
                    }
                )
            elif isinstance(v, dict):
                walk(v, (*path, k))

    walk(metrics, ())
    return pd.DataFrame(rows, columns=["model", "suite", "metric", "value", "ci_lo", "ci_hi"])


def formatted(df: pd.DataFrame, pct: bool = True) -> pd.DataFrame:
    """``value [lo, hi]`` strings, percentages for rates."""

    def fmt(r):
        if pct and r["metric"] != "length":
            return f"{100 * r['value']:.1f} [{100 * r['ci_lo']:.1f}, {100 * r['ci_hi']:.1f}]"
        return f"{r['value']:.2f} [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]"

    out = df.copy()
    out["estimate (95% CI)"] = out.apply(fmt, axis=1)
    return out[["model", "suite", "metric", "estimate (95% CI)"]]


def get(metrics: dict, *path: str) -> float:
    d = metrics
    for k in path:
        d = d[k]
    return float(d["value"] if isinstance(d, dict) else d)
