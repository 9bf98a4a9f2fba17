"""How far each gate's verdict sits from its threshold, measured in the gate's own sampling noise.

A gate (:mod:`study.eval.gates`) compares a point value computed on a few hundred scenes with a fixed
threshold. The value is an estimate: another draw of as many scenes from the same world gives another
value. This module attaches to each gate value a 95 % interval and says whether the verdict is

* ``clear``: the threshold(s) lie outside the interval, so another scene draw would almost surely give
  the same pass or fail;
* ``within noise``: a threshold lies inside the interval, so the 200-scene verdict is not decided by the
  model alone;
* ``no interval``: the gate has none (the probe gain is one fit, the seed gates are counts over models; the
  BDHS ratio of a sweep written before it carried its interval).

It changes no gate and no verdict: the gates stay the pre-registered point rule.

Intervals. Where the gate value is a reported number, its scene-bootstrap interval from the report
(:mod:`study.eval.organism`): POPE accuracy, yes-ratios, AUROCs, image gains (paired: with and without the
image on the same items), CHAIR_i, recall, context share, ood AUROC; the adversarial drop's paired
bootstrap (``rep.adversarial_drop``). For a ratio of two estimates ``r = a / b`` (ood recall ratio: two
splits, independent; masked CHAIR ratio: the same scenes sampled twice, whose pairing this ignores) the
delta method on ``log r``, each standard error read off its own interval as ``(hi - lo) / (2 z)``::

    se(log r) = sqrt((se_a / a)^2 + (se_b / b)^2),     r * exp(+- z se(log r)),     z = 1.96

The BDHS ratio's interval is the sweep's own paired bootstrap (``it1_new_ratio_vs_0_lo`` / ``_hi`` of the
row at ``rho_th``, :mod:`study.bdhs.sweep`): numerator and denominator count the same descriptions.
"""

from __future__ import annotations

import math
from typing import Mapping

from study.eval.gates import GATES, POPE_TYPES, Gate, check_gates, metric_value, sweep_key

Z95 = 1.959963984540054


def _ci(d: Mapping | None, *path) -> tuple[float, float] | None:
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    if not isinstance(d, Mapping) or d.get("ci95") is None:
        return None
    lo, hi = d["ci95"]
    return float(lo), float(hi)


def ratio_interval(
    a: float, a_ci: tuple[float, float], b: float, b_ci: tuple[float, float]
) -> tuple[float, float] | None:
    """95 % delta-method interval of ``a / b`` on the log scale (module docstring); None if a or b <= 0."""
    if a <= 0 or b <= 0:
        return None
    se_a, se_b = (a_ci[1] - a_ci[0]) / (2 * Z95), (b_ci[1] - b_ci[0]) / (2 * Z95)
    se = math.sqrt((se_a / a) ** 2 + (se_b / b) ** 2)
    r = a / b
    return r * math.exp(-Z95 * se), r * math.exp(Z95 * se)


def _ratio(num: tuple, den: tuple) -> tuple[float, float] | None:
    (a, a_ci), (b, b_ci) = num, den
    if None in (a, a_ci, b, b_ci):
        return None
    return ratio_interval(a, a_ci, b, b_ci)


def bdhs_interval(bdhs_sweep: Mapping | None, rho_th: float | None) -> tuple[float, float] | None:
    """The BDHS ratio's 95 % interval from the sweep row at ``rho_th`` (module docstring); None where the
    sweep or the row lacks it."""
    if bdhs_sweep is None or rho_th is None:
        return None
    row = bdhs_sweep.get(sweep_key(rho_th)) or {}
    lo, hi = row.get("it1_new_ratio_vs_0_lo"), row.get("it1_new_ratio_vs_0_hi")
    return None if lo is None or hi is None else (float(lo), float(hi))


def gate_intervals(
    rep: Mapping, ood: Mapping | None = None, bdhs_sweep: Mapping | None = None, rho_th: float | None = None
) -> dict[str, tuple[float, float] | None]:
    """``{gate: (lo, hi) or None}`` for every gate of :data:`study.eval.gates.GATES` (module docstring);
    ``bdhs_sweep`` and ``rho_th`` as :func:`study.eval.gates.gate_values` takes them."""
    out: dict[str, tuple[float, float] | None] = {g.name: None for g in GATES}
    out["bdhs_new_halluc_ratio"] = bdhs_interval(bdhs_sweep, rho_th)
    out["pope_random_accuracy"] = _ci(rep, "pope_random", "accuracy")
    for t in POPE_TYPES:
        out[f"yes_ratio_{t}"] = _ci(rep, f"pope_{t}", "yes_ratio")
        out[f"image_gain_{t}"] = _ci(rep, f"pope_{t}", "image_gain")
    out["adversarial_drop"] = _ci(rep, "adversarial_drop")
    out["auroc_random"] = _ci(rep, "pope_random", "auroc")
    out["auroc_adversarial"] = _ci(rep, "pope_adversarial", "auroc")
    for k in ("chair_i", "recall", "context_share"):
        out[k] = _ci(rep, "describe", k)
    out["ood_auroc_random"] = _ci(ood, "pope_random", "auroc")
    out["ood_recall_ratio"] = _ratio(
        (metric_value(ood, "describe", "recall"), _ci(ood, "describe", "recall")),
        (metric_value(rep, "describe", "recall"), _ci(rep, "describe", "recall")),
    )
    out["masked_chair_ratio"] = _ratio(
        (metric_value(rep, "sampled", "chair_i_masked"), _ci(rep, "sampled", "chair_i_masked")),
        (metric_value(rep, "sampled", "chair_i_image"), _ci(rep, "sampled", "chair_i_image")),
    )
    return out


def margin(gate: Gate, interval: tuple[float, float] | None) -> str:
    """``clear`` | ``within noise`` | ``no interval`` for one gate (module docstring)."""
    if interval is None:
        return "no interval"
    lo, hi = interval
    inside = any(t is not None and lo <= t <= hi for t in (gate.lo, gate.hi))
    return "within noise" if inside else "clear"


def noise_table(values: Mapping[str, float | None], intervals: Mapping[str, tuple[float, float] | None]) -> dict:
    """``{gate: {"value", "ci95", "status": pass|fail|not measured, "margin"}}`` for the gates in ``values``."""
    checked = check_gates(values)  # the gates' own verdict
    out = {}
    for g in GATES:
        if g.name not in values:
            continue
        v, ci = values[g.name], intervals.get(g.name)
        out[g.name] = {
            "value": v,
            "ci95": None if ci is None else [ci[0], ci[1]],
            "status": checked[g.name]["status"],
            "margin": "no interval" if v is None else margin(g, ci),
        }
    return out


def count_margins(table: Mapping[str, Mapping]) -> dict[str, int]:
    """Counts of ``{pass, fail} x {clear, within noise}`` (gates with an interval only)."""
    out = {f"{s} {m}": 0 for s in ("pass", "fail") for m in ("clear", "within noise")}
    for r in table.values():
        if r["status"] in ("pass", "fail") and r["margin"] != "no interval":
            out[f"{r['status']} {r['margin']}"] += 1
    return out
