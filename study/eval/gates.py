"""Validity gates of the organism, fixed before any result is seen.

An organism result says something about a real MLLM only if the organism behaves like one in the ways
the paper's claims depend on: it must answer yes/no questions from the image (with a balanced
yes-ratio), its errors must come from co-occurrence priors (adversarial < random), its descriptions
must depend on the image, hide the image and it must hallucinate more, and BDHS's masking must expose
the language prior. Each gate below is a named value with an allowed interval; :func:`gate_values`
computes the values from the grounding reports (:mod:`study.eval.organism`), :func:`check_gates` says
pass/fail. Thresholds: a real LLaVA-1.5/1.6 reaches POPE 86-88 % with a yes-ratio near 0.5 and errs most
on adversarial objects.

Values (``rep`` = the gated split's report, ``ood`` = the ``ood`` split's report):

    pope_random_accuracy        rep.pope_random.accuracy                               >= 0.80
    yes_ratio_{random,popular,adversarial}   rep.pope_*.yes_ratio                     in [0.35, 0.65]
    adversarial_drop            rep.pope_random.accuracy - rep.pope_adversarial.accuracy   >= 0.03
    auroc_random                rep.pope_random.auroc                                  >= 0.90
    auroc_adversarial           rep.pope_adversarial.auroc                             >= 0.80
    image_gain_{random,popular,adversarial}  rep.pope_*.image_gain (AUROC with - masked)  >= 0.25
    chair_i                     rep.describe.chair_i (greedy)                          in [0.05, 0.30]
    recall                      rep.describe.recall (greedy)                           >= 0.70
    ood_recall_ratio            ood.describe.recall / rep.describe.recall              >= 0.80
    ood_auroc_random            ood.pope_random.auroc (objects off their context)      >= 0.80
    context_share               rep.describe.context_share                             >= 0.60
    masked_chair_ratio          rep.sampled.chair_i_masked / rep.sampled.chair_i_image >= 2.0
    bdhs_new_halluc_ratio       new hallucinated objects per regenerated answer after one try,
                                at the default rho_th / at rho_th = 0 (BDHS sweep)     >= 1.5
    probe_gain                  rep.probe.gain (features - context label, mean AUROC)  >= 0.05
    seeds_passing               share of SFT seeds passing every other gate            == 1 (>= 3 seeds)
    chair_i_spread              max - min greedy CHAIR_i over SFT seeds                <= 0.05

``ood_auroc_random`` was added on 2026-12-01, after the second round of organism leads
(``paper/organism_v2.md``) showed that organisms answering yes/no from the image in distribution (AUROC
0.87-0.93) are at chance on ``ood`` scenes (0.41-0.51): they tell apart the objects their context predicts
but do not recognise an object out of its context, which a real MLLM does. It only adds a way to fail;
no default was chosen on it. Its threshold is the adversarial gate's: recognising an object the context
does not predict should be at least as good as rejecting one it does.

A gate whose value could not be measured (``None``, e.g. no BDHS sweep yet) is reported as
``"not measured"``, never as a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

POPE_TYPES = ("random", "popular", "adversarial")


@dataclass(frozen=True)
class Gate:
    name: str
    lo: float | None
    hi: float | None
    meaning: str

    def target(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in [{self.lo:g}, {self.hi:g}]"
        return f">= {self.lo:g}" if self.lo is not None else f"<= {self.hi:g}"

    def passes(self, value: float) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


GATES: tuple[Gate, ...] = (
    Gate("pope_random_accuracy", 0.80, None, "POPE random accuracy of the answers"),
    *(Gate(f"yes_ratio_{t}", 0.35, 0.65, f"yes-ratio of the answers, POPE {t}") for t in POPE_TYPES),
    Gate("adversarial_drop", 0.03, None, "POPE accuracy random - adversarial (prior-driven errors)"),
    Gate("auroc_random", 0.90, None, "yes/no AUROC with the image, POPE random"),
    Gate("auroc_adversarial", 0.80, None, "yes/no AUROC with the image, POPE adversarial"),
    *(
        Gate(f"image_gain_{t}", 0.25, None, f"AUROC with the image - every image token masked, POPE {t}")
        for t in POPE_TYPES
    ),
    Gate("chair_i", 0.05, 0.30, "greedy CHAIR_i"),
    Gate("recall", 0.70, None, "greedy object recall"),
    Gate("ood_recall_ratio", 0.80, None, "object recall on ood (co-occurrence broken) / in distribution"),
    Gate("ood_auroc_random", 0.80, None, "yes/no AUROC with the image on ood scenes, POPE random"),
    Gate("context_share", 0.60, None, "share of hallucinated mentions from the scene's context"),
    Gate("masked_chair_ratio", 2.0, None, "T=1 CHAIR_i with every image token masked / with the image"),
    Gate("bdhs_new_halluc_ratio", 1.5, None, "BDHS new hallucinations per answer, default rho_th / rho_th = 0"),
    Gate("probe_gain", 0.05, None, "presence-probe AUROC, image features - context label"),
    Gate("seeds_passing", 1.0, None, "share of SFT seeds (>= 3) that pass every other gate"),
    Gate("chair_i_spread", None, 0.05, "max - min greedy CHAIR_i across SFT seeds"),
)
GATE_NAMES = tuple(g.name for g in GATES)
SEED_GATES = ("seeds_passing", "chair_i_spread")
MIN_SEEDS = 3


def metric_value(d: Mapping, *path) -> float | None:
    """The number at ``d[path[0]][path[1]]...``: a bare number, or a metric's ``{"value": ...}`` entry.
    ``None`` where the path is missing or the value is NaN (a gate that could not be measured)."""
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    if isinstance(d, Mapping):
        d = d.get("value")
    return None if d is None or (isinstance(d, float) and math.isnan(d)) else float(d)


def sweep_key(rho: float) -> str:
    """The key of rho_th's row in a sweep mapping (``metrics/bdhs.json: sweep``, a lead's ``bdhs_sweep``)."""
    return f"rho_{rho:g}"


def gate_values(
    rep: Mapping, ood: Mapping | None = None, bdhs_sweep: Mapping | None = None, rho_th: float | None = None
) -> dict[str, float | None]:
    """The per-model gate values (all but the seed gates) from the reports (module docstring)."""
    out: dict[str, float | None] = {"pope_random_accuracy": metric_value(rep, "pope_random", "accuracy")}
    for t in POPE_TYPES:
        out[f"yes_ratio_{t}"] = metric_value(rep, f"pope_{t}", "yes_ratio")
    acc_r, acc_a = metric_value(rep, "pope_random", "accuracy"), metric_value(rep, "pope_adversarial", "accuracy")
    out["adversarial_drop"] = None if acc_r is None or acc_a is None else acc_r - acc_a
    out["auroc_random"] = metric_value(rep, "pope_random", "auroc")
    out["auroc_adversarial"] = metric_value(rep, "pope_adversarial", "auroc")
    for t in POPE_TYPES:
        out[f"image_gain_{t}"] = metric_value(rep, f"pope_{t}", "image_gain")
    out["chair_i"] = metric_value(rep, "describe", "chair_i")
    out["recall"] = metric_value(rep, "describe", "recall")
    r_ood = metric_value(ood, "describe", "recall") if ood is not None else None
    out["ood_recall_ratio"] = r_ood / out["recall"] if r_ood is not None and out["recall"] else None
    out["ood_auroc_random"] = metric_value(ood, "pope_random", "auroc") if ood is not None else None
    out["context_share"] = metric_value(rep, "describe", "context_share")
    out["masked_chair_ratio"] = metric_value(rep, "sampled", "chair_i_ratio")
    ratio = None
    if bdhs_sweep is not None and rho_th is not None:
        at, zero = bdhs_sweep.get(sweep_key(rho_th)), bdhs_sweep.get(sweep_key(0.0))
        if at and zero and zero.get("it1_new_hallucinated_per_answer"):
            ratio = at["it1_new_hallucinated_per_answer"] / zero["it1_new_hallucinated_per_answer"]
    out["bdhs_new_halluc_ratio"] = ratio
    out["probe_gain"] = metric_value(rep, "probe", "gain")
    return out


def seed_values(per_seed: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """The seed gates from the per-seed gate values (each the output of :func:`gate_values`)."""
    if len(per_seed) < MIN_SEEDS:
        return {"seeds_passing": None, "chair_i_spread": None}
    passing = [
        all(r["passed"] for r in check_gates(v, only_measured=False).values() if r["status"] != "not measured")
        for v in per_seed
    ]
    chairs = [v["chair_i"] for v in per_seed if v.get("chair_i") is not None]
    return {
        "seeds_passing": sum(passing) / len(passing),
        "chair_i_spread": max(chairs) - min(chairs) if len(chairs) == len(per_seed) else None,
    }


def check_gates(values: Mapping[str, float | None], only_measured: bool = False) -> dict[str, dict]:
    """``{gate: {"value", "target", "status": pass|fail|not measured, "passed", "meaning"}}``.

    Gates absent from ``values`` are "not measured" (the seed gates when one seed was trained)."""
    unknown = set(values) - set(GATE_NAMES)
    if unknown:
        raise KeyError(f"unknown gate values {sorted(unknown)}; gates: {list(GATE_NAMES)}")
    out = {}
    for g in GATES:
        v = values.get(g.name)
        if v is None and only_measured:
            continue
        status = "not measured" if v is None else ("pass" if g.passes(v) else "fail")
        out[g.name] = {
            "value": v,
            "target": g.target(),
            "status": status,
            "passed": status == "pass",
            "meaning": g.meaning,
        }
    return out


def summary(checked: Mapping[str, Mapping]) -> dict[str, int]:
    """Counts of pass / fail / not measured."""
    out = {"pass": 0, "fail": 0, "not measured": 0}
    for r in checked.values():
        out[r["status"]] += 1
    return out
