"""The ``paper`` stage: every committed table, figure and ``metrics/paper.json``, written from the runs' metrics.

:func:`write_paper` reads each model's metrics (``SFT`` and every run of ``align.runs`` / ``align.rm_runs``),
writes under ``paths.paper_dir``

    tables/main.{md,csv}          every model x column (:func:`study.report.comparison.wide`)
    tables/deltas_vs_sft.md       paired differences vs SFT (:func:`study.report.findings.delta_table`)
    tables/<key>.md               each of ``report.tables`` (the paper's tables on the organism)
    tables/table7_reward_models.md  the reward models' transfer table, when the reward_models stage ran
    figures/main.png              :func:`study.report.figures.comparison_bars`

and ``<paths.metrics_dir>/paper.json`` (:func:`study.report.findings.paper_summary`), and returns what the
notebook shows (:class:`PaperResult`). Where the ``replicates`` stage trained the decisive runs on further SFT
draws (``paths.replicates_dir``), the paired comparisons pair each of them with its own SFT model
(:func:`study.report.findings.compare_models`); the tables of metrics are the main draw's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from study import io
from study.report import comparison, figures, findings
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


@dataclass
class PaperResult:
    """What :func:`write_paper` wrote, for display: the long and wide comparison tables, the paired deltas,
    the columns' image-sensitivity test (None without blind predictions), the paper tables
    (``{key: (title, rows)}``), the reward models' table (None), ``metrics/paper.json``'s content and the
    models whose POPE is not measurable, and the main figure."""

    table: pd.DataFrame
    main: pd.DataFrame
    deltas: pd.DataFrame
    sensitivity: dict | None
    paper_tables: dict[str, tuple[str, pd.DataFrame]] = field(default_factory=dict)
    rm_table: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)
    degenerate: set[str] = field(default_factory=set)
    figure: object = None


def with_replicate_training(runs: dict[str, dict], replicates_metrics: Path) -> dict[str, dict]:
    """``runs`` with each decisive run's training statistics on the further SFT draws (the ``replicates`` stage's
    metrics) added to its ``train_per_seed`` as ``draw<k>/seed<j>``, so that what reads a run's trainings (the RL
    collapse monitor: "any seed collapsed") sees every draw's. Unchanged without that file."""
    if not replicates_metrics.is_file():
        return runs
    rep = json.loads(replicates_metrics.read_text())
    out = dict(runs)
    for k, m in rep.get("per_seed", {}).items():
        for run, metrics in m.get("align", {}).items():
            if run not in out:
                continue
            base = out[run].get("train_per_seed") or {"0": out[run].get("train", {})}
            extra = {f"draw{k}/seed{j}": t for j, t in (metrics.get("train_per_seed") or {}).items()}
            out[run] = {**out[run], "train_per_seed": {**base, **extra}}
    return out


def write_paper(ctx: StageContext) -> PaperResult:
    """Write every output of the module docstring; returns them (:class:`PaperResult`)."""
    p, x = ctx.params, ctx.paths
    tables, metrics_dir = Path(x.paper_dir) / "tables", Path(x.metrics_dir)
    all_runs = comparison.load_runs(metrics_dir, list(p.align.all_runs()))
    table = comparison.comparison_table(all_runs)
    main = comparison.wide(table)
    io.write_text(tables / "main.md", main.to_markdown() + "\n")
    io.write_text(tables / "main.csv", table.to_csv(index=False))
    fig = figures.comparison_bars(table)
    figures.save(fig, Path(x.paper_dir) / "figures" / "main.png")

    spec = load_spec(p.world.spec)
    compare, degenerate = findings.compare_models(
        x.eval_dir, all_runs, spec, n_boot=p.eval.n_boot, seed=p.seed, replicates_dir=x.replicates_dir
    )
    all_runs = with_replicate_training(all_runs, metrics_dir / "replicates.json")
    deltas = findings.delta_table(compare, list(all_runs))
    io.write_text(tables / "deltas_vs_sft.md", deltas.to_markdown() + "\n")

    paper_tables = {}
    for key, tab in p.report.tables.items():
        sub = comparison.subtable(main, tab.runs)
        if len(sub) > 1:
            io.write_text(tables / f"{key}.md", f"{tab.title}\n\n" + sub.to_markdown() + "\n")
            paper_tables[key] = (tab.title, sub)

    from study.prefs.rm_transfer import transfer_table

    rm_path = metrics_dir / "reward_models.json"
    rm_metrics = json.loads(rm_path.read_text()) if rm_path.is_file() else None
    rm_table = None
    if rm_metrics:
        rm_table = transfer_table(rm_metrics)
        io.write_text(tables / "table7_reward_models.md", rm_table.to_markdown() + "\n")

    summary = findings.paper_summary(compare, all_runs, rm_metrics, degenerate, p.report.findings)
    io.write_json(metrics_dir / "paper.json", summary)
    return PaperResult(
        table, main, deltas, compare.image_sensitivity, paper_tables, rm_table, summary, set(degenerate), fig
    )
