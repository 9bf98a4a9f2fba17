"""Figures shared by the notebooks and the paper export (matplotlib + seaborn)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # the notebook's inline backend displays figures; headless runs fall back to Agg
import numpy as np
import pandas as pd
import seaborn as sns

from study.world.scenes import cooccurrence


def ci_whiskers(ax, x, lo, hi, cap: float = 0.06, **kw) -> None:
    """Draw each 95 % interval [lo, hi] as a capped vertical line at x.

    The interval itself is drawn, not `value ± error`: a percentile-bootstrap interval need not contain its
    point estimate (small samples, ties in an AUROC), and matplotlib's `yerr` refuses the negative length
    that then arises.
    """
    kw = {"color": "k", "lw": 1, **kw}
    x, lo, hi = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (x, lo, hi))
    ax.vlines(x, lo, hi, **kw)
    for end in (lo, hi):
        ax.hlines(end, x - cap, x + cap, **kw)


def scene_grid(world, split: str = "train", n: int = 12, cols: int = 6):
    """Example images with their context and object list."""
    scenes = world.scenes(split)[:n]
    rows = int(np.ceil(len(scenes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows))
    for ax, sc in zip(np.atleast_1d(axes).ravel(), scenes):
        ax.imshow(world.image(sc.scene_id), interpolation="nearest")
        names = ", ".join(o.category + ("*" if o.faint else "") for o in sc.objects)
        ax.set_title(f"{sc.context}\n{names}", fontsize=7)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    fig.suptitle("scenes (* = faint object)", fontsize=9)
    fig.tight_layout()
    return fig


def cooccurrence_heatmap(scenes, categories: list[str]):
    """P(column present | row present) over ``scenes``: the prior a language model can learn."""
    c = cooccurrence(scenes, categories)
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(
        pd.DataFrame(c, index=categories, columns=categories),
        ax=ax,
        cmap="viridis",
        vmin=0,
        vmax=1,
        cbar_kws={"label": "P(col | row)"},
    )
    ax.set_title("co-occurrence in train")
    fig.tight_layout()
    return fig


def training_curve(live_dir: str | Path, metrics: tuple[str, ...] = ("train/loss", "eval/loss")):
    """Plot DVCLive scalar logs (``plots/metrics/<name>.tsv``)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    base = Path(live_dir) / "plots" / "metrics"
    for m in metrics:
        f = base / f"{m}.tsv"
        if f.is_file():
            df = pd.read_csv(f, sep="\t")
            ax.plot(df["step"], df[df.columns[-1]], marker="." if len(df) < 20 else None, label=m)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if ax.lines:
        ax.legend()
    else:  # a stage that trained nothing (a pretrained base passed through) logs no curve
        ax.text(0.5, 0.5, "nothing trained: no curve logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def metric_bars(df: pd.DataFrame, suite_metrics: list[tuple[str, str]], hue: str = "model", title: str = ""):
    """Bar chart with 95 % CI whiskers for selected (suite, metric) pairs of a tidy table."""
    sel = pd.concat([df[(df.suite == s) & (df.metric == m)] for s, m in suite_metrics], ignore_index=True)
    sel["label"] = sel.suite.str.replace("pope_", "POPE ") + "\n" + sel.metric
    fig, ax = plt.subplots(figsize=(1.3 * len(suite_metrics) + 2, 3.6))
    sns.barplot(sel, x="label", y="value", hue=hue, ax=ax)
    hues = list(dict.fromkeys(sel[hue]))
    labels = list(dict.fromkeys(sel["label"]))
    width = 0.8 / max(len(hues), 1)
    for _, r in sel.iterrows():
        x = labels.index(r["label"]) - 0.4 + width * (hues.index(r[hue]) + 0.5)
        ci_whiskers(ax, x, r["ci_lo"], r["ci_hi"], cap=width / 6)
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path) -> None:
    from study import io

    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")


def bdhs_sweep(table: pd.DataFrame):
    """The Fig. 10 analog: share of semantically different rejections and their hallucination vs rho_th."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    t = table.sort_values("rho_th")
    axes[0].plot(t.rho_th, t.different_it1, marker="o", label="after iteration 1")
    axes[0].plot(t.rho_th, t.different_final, marker="s", label="after N_BDHS iterations")
    axes[0].set_xlabel("rho_th")
    axes[0].set_ylabel("semantically different")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend()
    axes[1].plot(t.rho_th, t.it1_new_hallucinated_per_answer, marker="o", label="new hallucinated objects / answer")
    axes[1].plot(t.rho_th, t.it1_context_share, marker="s", label="share from the scene's context")
    axes[1].set_xlabel("rho_th")
    axes[1].legend()
    fig.tight_layout()
    return fig


def comparison_bars(table: pd.DataFrame):
    """The main comparison as grouped bars with 95 % CI whiskers (one panel per column)."""
    cols = list(dict.fromkeys(table.column))
    fig, axes = plt.subplots(1, len(cols), figsize=(2.0 * len(cols), 3.4), sharey=False)
    models = list(dict.fromkeys(table.model))
    palette = sns.color_palette("deep", len(models))
    for ax, col in zip(np.atleast_1d(axes), cols):
        t = table[table.column == col].set_index("model").reindex(models).dropna(subset=["value"])
        x = np.arange(len(t))
        ax.bar(x, t.value, color=[palette[models.index(m)] for m in t.index])
        ci_whiskers(ax, x, t.lo, t.hi, cap=0.15)
        ax.set_xticks(x, t.index, rotation=60, ha="right", fontsize=7)
        ax.set_title(col, fontsize=9)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    return fig
