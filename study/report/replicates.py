"""The ``replicates`` stage's table: each further SFT draw and its decisive runs on the paper's columns."""

from __future__ import annotations

from study.eval.gates import metric_value
from study.report.comparison import COLUMNS


def replicate_table(metrics: dict):
    """One row per (SFT seed, model): the SFT model, then each decisive run trained from it; one column per
    comparison column (:data:`study.report.comparison.COLUMNS`), the value of that model on the evaluation
    items (its predictions under ``<out_dir>/seed{k}/eval``)."""
    import pandas as pd

    rows = {}
    for k, m in metrics["per_seed"].items():
        models = {"SFT": m["eval_sft"], **m["align"]}
        for name, mm in models.items():
            rows[(f"SFT seed {k}", name)] = {c: metric_value(mm, suite, metric) for c, suite, metric, _ in COLUMNS}
    if not rows:
        return pd.DataFrame(columns=[c for c, *_ in COLUMNS])
    return pd.DataFrame(rows).T.astype(float).round(3)
