"""Tables, a figure and a verdict for the ``organism`` stage (``metrics/organism.json``)."""

from __future__ import annotations

import pandas as pd

POPE = ("random", "popular", "adversarial")


def _fmt(v, bounds=()) -> str:
    """3 decimals, or 4 where 3 would round onto a threshold (0.2499 against ">= 0.25")."""
    if v is None:
        return "—"
    near = any(b is not None and round(v, 3) == round(b, 3) and v != b for b in bounds)
    return f"{v:.4f}" if near else f"{v:.3f}"


def gate_table(metrics: dict) -> pd.DataFrame:
    """One row per gate: meaning, target, value on the gated split, value on test, status."""
    from study.eval.gates import GATES

    split = metrics["gate_split"]
    bounds = {g.name: (g.lo, g.hi) for g in GATES}
    rows = [
        {
            "gate": name,
            "meaning": g["meaning"],
            "target": g["target"],
            split: _fmt(g["value"], bounds[name]),
            "test": _fmt(g.get("test_value"), bounds[name]),
            "status": g["status"],
        }
        for name, g in metrics["gates"].items()
    ]
    return pd.DataFrame(rows).set_index("gate")


def _ci(d: dict) -> str:
    return f"{d['value']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"


def instrument_table(metrics: dict) -> pd.DataFrame:
    """The instruments with 95 % CIs, one column per split."""
    out = {}
    for split, rep in metrics["reports"].items():
        col = {}
        for t in POPE:
            r = rep[f"pope_{t}"]
            col[f"POPE {t}: AUROC with image"] = _ci(r["auroc"])
            col[f"POPE {t}: AUROC image masked"] = _ci(r["auroc_masked"])
            col[f"POPE {t}: accuracy"] = _ci(r["accuracy"])
            col[f"POPE {t}: yes-ratio"] = _ci(r["yes_ratio"])
        d = rep["describe"]
        for k in ("chair_i", "recall", "recall_in_context", "recall_off_context", "context_share"):
            if k in d:  # the split recalls are absent from reports written before they existed
                col[f"greedy {k}"] = _ci(d[k])
        col["image dependence (nats/token)"] = _ci(d["image_dependence"])
        s = rep["sampled"]
        col["T=1 CHAIR_i with image"] = _ci(s["chair_i_image"])
        col["T=1 CHAIR_i image masked"] = _ci(s["chair_i_masked"])
        p = rep["probe"]
        col["probe AUROC: image features"] = f"{p['features_auroc']:.3f}"
        col["probe AUROC: context label"] = f"{p['context_auroc']:.3f}"
        out[split] = col
    return pd.DataFrame(out)


def sources_table(metrics: dict) -> pd.DataFrame:
    """Where each SFT seed's hallucinated mentions on the gated split come from (:mod:`study.eval.sources`):
    one row per seed; ``list`` is an unplaced mention (the closing list), ``echo`` one repeating a cell."""
    rows = []
    for seed, d in metrics.get("sources", {}).items():
        cross, echo = d["by_kind_and_context"], d["unplaced_echo"]
        row = {"SFT seed": seed, "hallucinated": d["hallucinated"]}
        for kind, label in (("misread", "misread"), ("invented", "invented"), ("unplaced", "list")):
            for ctx in ("in_context", "off_context"):
                row[f"{label} {ctx.replace('_', ' ')}"] = cross.get(f"{kind}/{ctx}", 0)
        row["list echoes in / off context"] = f"{echo['in_context']} / {echo['off_context']}"
        row["context share"] = _fmt(d["context_share"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("SFT seed") if rows else pd.DataFrame()


def noise_table(metrics: dict) -> pd.DataFrame:
    """Each SFT seed's gate values with their 95 % intervals and whether the verdict is clear or within
    noise (:mod:`study.eval.gate_noise`): one row per gate with an interval, one column per seed."""
    cols = {}
    for seed, table in metrics.get("gate_noise", {}).items():
        col = {}
        for gate, r in table.items():
            if r["ci95"] is None or r["value"] is None:
                continue
            lo, hi = r["ci95"]
            mark = "" if r["margin"] == "clear" else " ?"
            col[gate] = f"{r['status']}{mark}  {r['value']:.3f} [{lo:.3f}, {hi:.3f}]"
        cols[f"SFT seed {seed}"] = col
    return pd.DataFrame(cols)


def auroc_figure(metrics: dict):
    """Yes/no AUROC with and without the image per POPE split (gated split), with 95 % CIs."""
    import matplotlib.pyplot as plt
    import numpy as np

    from study.report.figures import ci_whiskers

    rep = metrics["reports"][metrics["gate_split"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    x = np.arange(len(POPE))
    for off, key, label, colour in (
        (-0.18, "auroc", "with the image", "#0072B2"),
        (0.18, "auroc_masked", "every image token masked", "#E69F00"),
    ):
        v = np.array([rep[f"pope_{t}"][key]["value"] for t in POPE])
        lo = np.array([rep[f"pope_{t}"][key]["ci95"][0] for t in POPE])
        hi = np.array([rep[f"pope_{t}"][key]["ci95"][1] for t in POPE])
        ax.bar(x + off, v, 0.36, label=label, color=colour)
        ci_whiskers(ax, x + off, lo, hi)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [f"POPE {t}" for t in POPE])
    ax.set_ylim(0, 1)
    ax.set_ylabel("yes/no AUROC")
    ax.set_title(f"Does the answer depend on the image? ({metrics['gate_split']} split)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def verdict(metrics: dict) -> str:
    """One paragraph: how many gates pass, which fail, and what that means for the study."""
    s = metrics["summary"]
    failing = [n for n, g in metrics["gates"].items() if g["status"] == "fail"]
    unmeasured = [n for n, g in metrics["gates"].items() if g["status"] == "not measured"]
    head = (
        f"{s['pass']} of {len(metrics['gates'])} validity gates pass on {metrics['gate_split']} "
        f"({s['fail']} fail, {s['not measured']} not measured)."
    )
    if not failing and not unmeasured:
        return head + " The organism behaves like a real MLLM in every way the gates check."
    tail = ""
    if failing:
        tail += (
            f" Failing: {', '.join(failing)}. Findings that rest on these behaviours are not valid on this organism."
        )
    if unmeasured:
        tail += f" Not measured: {', '.join(unmeasured)}."
    return head + tail
