"""The paper's findings, checked on the organism's numbers (paper §5.1, §6).

Every check compares two models with the paired scene bootstrap of :mod:`study.eval.paired` (same items,
shared replicates; a difference counts only when its 95 % interval excludes 0) and states a status:

Which run plays each part is a *role* of ``params.yaml: report.findings`` (:class:`study.config.FindingRoles`,
default run in brackets); no run name is written in this module.

* **F1** BDHS-DPO cuts hallucination vs SFT with no annotator: ``bdhs_dpo`` (dpo_bdhs) vs ``SFT`` on the
  hallucination columns (CHAIR_i, CHAIR_s, typed-QA hallucination, POPE adversarial). *reproduced* if at
  least one is better and none worse.
* **F2** BDHS_attn >= POVID-style distortion (Table 6): ``bdhs_avg`` (avg_povid_bdhs) vs ``distortion_avg``
  (avg_povid_distortion)
  (same rows, same first rejection; only the policy-made second rejection differs) on every column.
  *reproduced* if none is worse (*strictly* if some are better).
* **F3** Mixed-DPO combines offline and online gains (Table 9): where ``offline_dpo`` (dpo_povid) beats SFT
  on hallucination columns and ``online_dpo`` (online_dpo_oracle) beats SFT on helpfulness columns (Helpful,
  Recall), ``mixed_dpo`` (mixed_dpo_povid) beats SFT on at least one column of each (:func:`f3`).
* **F7** Reward models from construction-type data do not transfer (Table 7), as the paper states it:
  the POVID-style and the RLHF-V-style RM, each above chance in distribution (Wilson
  interval above 0.5), fall *below* chance on each other's held-out pairs (interval below 0.5) --
  *reproduced* if both cells do, *mixed* if one does, *contradicted* if neither (:func:`f7`). Our earlier
  rule (:func:`f7_ours`: every construction <-> ranking cell at chance), which the paper's own
  VLFeedback -> POVID cells (0.61 / 0.76) would fail, is reported beside it.
* **F7-RL** RL on these reward models is fragile (Table 8): PPO/RLOO with the POVID-style RM
  (``rl_construction_rm``) collapse (the runs' collapse monitor, any seed), and with the VLFeedback-style RM
  (``rl_ranking_rm``) they do not beat DPO on POVID-style data (``offline_dpo``) -- "beat" = better on some column and worse on none (:func:`f7_rl`).

POPE columns are *not measurable* for a model whose POPE yes-ratio is >= 0.95 (or <= 0.05) on any split
(:func:`degenerate_pope`): such a model answers (almost) every question the same way, its POPE accuracy
is then its yes-ratio in disguise (exactly 50 % for "always yes"), and a change of it says nothing about
hallucination (the landed organism's SFT model, before the v2 organism, was such a model: at the full profile its
POPE random accuracy was 50.4 % at a yes-ratio of 95.3 %).

Any column is *not measurable* when the SFT model's value on it does not depend on its image: the
image-sensitivity test of :mod:`study.report.measurable` (the columns rule).

**Across SFT draws** (rule ``DRAWS``). Where the ``replicates`` stage trained the decisive runs on further draws of
the SFT model, every comparison pairs each aligned model with its own SFT model and averages over the draws both
models have; a column is better/worse only when that mean's interval excludes 0 and every draw's own difference
lies on the same side (:func:`study.eval.paired.verdict`). A run no finding names has the main draw only. The RL
collapse monitor reads every draw's trainings; the reward models' transfer (F7) and the image-sensitivity test are
the main draw's.

Status values: reproduced, contradicted, mixed, not resolved, missing (a run is absent).

**Rules and their history** (:data:`RULES`). Every finding's rule, and the POPE and columns rules above, is recorded with
the commit that introduced it. Where a rule was changed after its results had been seen, the earlier rule's
verdict on the same numbers is reported beside the current one (``earlier_rules`` of each finding in
``metrics/paper.json``), so a reader can see what the change did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from study.config import FindingRoles
from study.eval.paired import load_predictions, paired_difference, verdict
from study.report.comparison import COLUMNS

HALLUCINATION = ["CHAIR_i", "CHAIR_s", "QA halluc.", "POPE adv"]
HELPFULNESS = ["Helpful", "Recall"]
CONSTRUCTION, RANKING = ("povid", "rlhfv"), ("vlfeedback",)
_COL = {c: (suite, metric, hib) for c, suite, metric, hib in COLUMNS}
LENGTH = "Length"  # tokens of the greedy description: reported (length drift), decides nothing
_COL[LENGTH] = ("describe", "length", True)
ONLINE_METHODS = ("online_dpo", "mixed_dpo", "online_bdhs", "rloo", "ppo")

POPE_COLUMNS = ("POPE rand", "POPE pop", "POPE adv")

# compare(a, b, column) -> 'better' | 'worse' | 'not resolved' | 'not measurable' | 'missing'
Compare = Callable[[str, str, str], str]


def degenerate_pope(runs: dict[str, dict], max_yes_ratio: float = 0.95) -> set[str]:
    """Models (of ``{model: metrics JSON}``) whose POPE yes-ratio on some split is >= ``max_yes_ratio`` or
    <= 1 - ``max_yes_ratio`` (module docstring)."""
    out = set()
    for name, m in runs.items():
        for suite in ("pope_random", "pope_popular", "pope_adversarial"):
            y = m.get(suite, {}).get("yes_ratio", {}).get("value")
            if y is not None and not (1 - max_yes_ratio < y < max_yes_ratio):
                out.add(name)
    return out


def paired_compare(
    predictions: dict,
    scenes,
    spec,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    cache: dict | None = None,
    degenerate: set[str] = frozenset(),
    unmeasurable: set[str] = frozenset(),
) -> Compare:
    """A :data:`Compare` over ``predictions`` = ``{model: [rows of each seed]}`` or ``{model: {draw: [rows of each
    seed]}}`` (paired bootstrap over the draws both models have, :func:`study.eval.paired.paired_difference`).

    'not measurable' (the difference is still computed and cached): POPE columns of a pair involving a model
    of ``degenerate`` (the POPE rule), and every comparison on a column of ``unmeasurable`` (the columns
    rule, :mod:`study.report.measurable`). The earlier rules (:data:`RULES`) are variants sharing the cache:
    ``compare.columns_v1`` (no columns rule) and ``compare.pope_decides`` (neither rule)."""
    cache = {} if cache is None else cache

    def make(degen: frozenset, unmeas: frozenset) -> Compare:
        def compare(a: str, b: str, column: str) -> str:
            if a not in predictions or b not in predictions:
                return "missing"
            key = (a, b, column)
            if key not in cache:
                suite, metric, hib = _COL[column]
                d = paired_difference(
                    predictions[a], predictions[b], scenes, spec, suite, metric, n_boot=n_boot, seed=seed
                )
                cache[key] = {**d, "measured_verdict": verdict(d, hib)}
            if column in unmeas or (column in POPE_COLUMNS and ({a, b} & degen)):
                return "not measurable"
            return cache[key]["measured_verdict"]

        compare.cache = cache  # type: ignore[attr-defined]
        return compare

    compare = make(frozenset(degenerate), frozenset(unmeasurable))
    compare.columns_v1 = make(frozenset(degenerate), frozenset())  # type: ignore[attr-defined]
    compare.pope_decides = make(frozenset(), frozenset())  # type: ignore[attr-defined]
    return compare


def model_predictions(eval_dir: str | Path, model: str, main_draw: int, replicates_dir: str | Path | None = None):
    """``({draw: [rows of each training seed]}, scenes)`` of ``model`` (``SFT`` or a run): the main SFT draw
    (``main_draw``, the study seed) from ``<eval_dir>/sft`` or ``<eval_dir>/<run>[/seed<k>]``, and each further
    draw k the ``replicates`` stage wrote, from ``<replicates_dir>/seed<k>/eval/{sft,<run>}`` (a run is there only
    if it is decisive)."""
    rows, scenes = load_predictions(Path(eval_dir) / ("sft" if model == "SFT" else model))
    out = {main_draw: rows}
    if replicates_dir is not None and (Path(replicates_dir) / "seeds.json").is_file():
        for k in json.loads((Path(replicates_dir) / "seeds.json").read_text())["seeds"]:
            d = Path(replicates_dir) / f"seed{k}" / "eval" / ("sft" if model == "SFT" else model)
            if d.is_dir():
                out[k], _ = load_predictions(d)
    return out, scenes


def compare_models(
    eval_dir: str | Path,
    runs: dict[str, dict],
    spec,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    replicates_dir: str | Path | None = None,
) -> tuple[Compare, set[str]]:
    """The study's :func:`paired_compare` over the models of ``runs`` (``{model: metrics JSON}``, as from
    :func:`study.report.comparison.load_runs`): predictions of every SFT draw each model has
    (:func:`model_predictions`; the main draw is ``seed``), each read once, so a decisive run is compared draw by
    draw with its own SFT model (:mod:`study.eval.paired`); POPE of :func:`degenerate_pope` models not
    measurable, and every column that fails the main SFT model's image-sensitivity test
    (:func:`study.report.measurable.sft_image_sensitivity`; ``compare.image_sensitivity`` holds its table,
    None without blind predictions). Returns ``(compare, degenerate models)``; ``compare.draws`` maps each
    model to its draws."""
    from study.report.measurable import sft_image_sensitivity

    preds, scenes = {}, None
    for m in runs:
        preds[m], sc = model_predictions(eval_dir, m, seed, replicates_dir)
        scenes = sc if scenes is None else scenes
    degenerate = degenerate_pope(runs)
    sens = sft_image_sensitivity(eval_dir, spec, n_boot=n_boot, seed=seed)
    unmeasurable = {c for c, v in (sens or {}).items() if not v["measurable"]}
    compare = paired_compare(
        preds, scenes, spec, n_boot=n_boot, seed=seed, degenerate=degenerate, unmeasurable=unmeasurable
    )
    compare.image_sensitivity = sens  # type: ignore[attr-defined]
    compare.draws = {m: sorted(d) for m, d in preds.items()}  # type: ignore[attr-defined]
    return compare, degenerate


def _status(verdicts: dict[str, str]) -> str:
    v = list(verdicts.values())
    if "missing" in v:
        return "missing"
    better, worse = "better" in v, "worse" in v
    return (
        "reproduced"
        if better and not worse
        else "contradicted"
        if worse and not better
        else "mixed"
        if better
        else "not resolved"
    )


def f1(compare: Compare, roles: FindingRoles) -> dict:
    verdicts = {c: compare(roles.bdhs_dpo, "SFT", c) for c in HALLUCINATION}
    return {
        "claim": "BDHS-DPO cuts hallucination vs SFT with no annotator",
        "status": _status(verdicts),
        "verdicts": verdicts,
    }


def f2(compare: Compare, roles: FindingRoles) -> dict:
    verdicts = {c: compare(roles.bdhs_avg, roles.distortion_avg, c) for c, *_ in COLUMNS}
    v = list(verdicts.values())
    if "missing" in v:
        status = "missing"
    elif "worse" in v:
        status = "contradicted" if "better" not in v else "mixed"
    else:
        status = (
            "reproduced (strictly better on some columns)"
            if "better" in v
            else "reproduced (no column worse; none better)"
        )
    return {"claim": "BDHS_attn >= POVID-style image distortion (Table 6)", "status": status, "verdicts": verdicts}


def f3(compare: Compare, roles: FindingRoles) -> dict:
    """Mixed-DPO keeps the offline gain AND the online gain (both measured against SFT).

    Premises: the offline gain = hallucination columns where ``roles.offline_dpo`` beats SFT; the online gain
    = helpfulness columns where ``roles.online_dpo`` beats SFT. Without both there is nothing to combine
    (*not resolved*). Otherwise *reproduced* if ``roles.mixed_dpo`` beats SFT on at least one column of
    each gain, *contradicted* if on neither, *mixed* if on one.
    """
    claim = "Mixed-DPO combines offline (hallucination) and online (helpfulness) gains (Table 9)"
    offline = {c: compare(roles.offline_dpo, "SFT", c) for c in HALLUCINATION}
    online = {c: compare(roles.online_dpo, "SFT", c) for c in HELPFULNESS}
    mixed = {c: compare(roles.mixed_dpo, "SFT", c) for c, *_ in COLUMNS}
    out = {"claim": claim, "offline_dpo_vs_sft": offline, "online_dpo_vs_sft": online, "mixed_dpo_vs_sft": mixed}
    if "missing" in [*offline.values(), *online.values(), *mixed.values()]:
        return {**out, "status": "missing"}
    off_gain = [c for c, v in offline.items() if v == "better"]
    on_gain = [c for c, v in online.items() if v == "better"]
    if not off_gain or not on_gain:
        lacking = " and ".join(
            x for x, g in (("offline hallucination gain", off_gain), ("online helpfulness gain", on_gain)) if not g
        )
        return {**out, "status": f"not resolved (no {lacking} over SFT to combine)"}
    keeps_off = any(mixed[c] == "better" for c in off_gain)
    keeps_on = any(mixed[c] == "better" for c in on_gain)
    status = "reproduced" if keeps_off and keeps_on else "mixed" if keeps_off or keeps_on else "contradicted"
    return {**out, "status": status}


def _rm_cells(rm_metrics: dict | None):
    if not rm_metrics or "accuracy" not in rm_metrics:
        return None
    return rm_metrics["accuracy"]


def _side(cell: dict) -> str:
    """'above' / 'below' chance when the 95 % interval excludes 0.5, else 'at chance'."""
    lo, hi = cell["ci95"]
    return "above" if lo > 0.5 else "below" if hi < 0.5 else "at chance"


def f3_v1(compare: Compare, roles: FindingRoles) -> dict:
    """The first F3 rule (:data:`RULES`, F3 v1): Mixed-DPO is *reproduced* if it is not worse than offline
    DPO on any hallucination column, not worse than online DPO on any helpfulness column, and better than
    SFT on some column; *contradicted* if it is worse than either; else *not resolved*."""
    vs_offline = {c: compare(roles.mixed_dpo, roles.offline_dpo, c) for c in HALLUCINATION}
    vs_online = {c: compare(roles.mixed_dpo, roles.online_dpo, c) for c in HELPFULNESS}
    vs_sft = {c: compare(roles.mixed_dpo, "SFT", c) for c, *_ in COLUMNS}
    if "missing" in [*vs_offline.values(), *vs_online.values(), *vs_sft.values()]:
        status = "missing"
    else:
        keeps = "worse" not in vs_offline.values() and "worse" not in vs_online.values()
        gains = "better" in vs_sft.values()
        status = "reproduced" if keeps and gains else "contradicted" if not keeps else "not resolved"
    return {
        "claim": "Mixed-DPO combines offline (hallucination) and online (helpfulness) gains (Table 9)",
        "status": status,
        "vs_offline_dpo": vs_offline,
        "vs_online_dpo": vs_online,
        "vs_sft": vs_sft,
    }


def f7(rm_metrics: dict | None) -> dict:
    """Table 7 as the paper states it (module docstring): POVID-style and RLHF-V-style RMs fall below chance
    on each other's held-out pairs. Premise: both are above chance in distribution (else *not resolved*)."""
    claim = "RMs trained on POVID-style and RLHF-V-style pairs fall below chance on each other's data (Table 7)"
    acc = _rm_cells(rm_metrics)
    a, b = CONSTRUCTION
    if acc is None or any(t not in acc or e not in acc[t] for t in (a, b) for e in (a, b)):
        return {"claim": claim, "status": "missing"}
    diag = {t: _side(acc[t][t]) for t in (a, b)}
    cross = {f"{a}->{b}": _side(acc[a][b]), f"{b}->{a}": _side(acc[b][a])}
    out = {"claim": claim, "in_distribution": diag, "cross": cross}
    if any(v != "above" for v in diag.values()):
        return {
            **out,
            "status": "not resolved ("
            + ", ".join(f"the {t} RM is {v} in distribution" for t, v in diag.items() if v != "above")
            + ")",
        }
    below = sum(v == "below" for v in cross.values())
    return {**out, "status": "reproduced" if below == 2 else "mixed" if below == 1 else "contradicted"}


def f7_ours(rm_metrics: dict | None) -> dict:
    """The study's first F7 rule (:data:`RULES`, F7 v1), kept beside the paper's: every RM above chance in
    distribution, every construction <-> ranking transfer cell (POVID/RLHF-V RM on VLFeedback pairs and the
    reverse) not above chance."""
    claim = "RMs from construction-type data do not transfer to ranking-type data and back (ours)"
    acc = _rm_cells(rm_metrics)
    if acc is None:
        return {"claim": claim, "status": "missing"}
    above = lambda cell: cell["ci95"][0] > 0.5  # noqa: E731
    diag = {t: above(acc[t][t]) for t in acc if t in acc[t]}
    cross = {
        f"{t}->{e}": not above(acc[t][e])
        for t in acc
        for e in acc[t]
        if (t in CONSTRUCTION and e in RANKING) or (t in RANKING and e in CONSTRUCTION)
    }
    if not diag or not cross:
        return {"claim": claim, "status": "missing"}
    if all(diag.values()) and all(cross.values()):
        status = "reproduced"
    elif not any(cross.values()):
        status = "contradicted"
    elif not all(diag.values()):
        status = "not resolved (some RM is not above chance in distribution)"
    else:
        status = "mixed"
    return {"claim": claim, "status": status, "in_distribution_above_chance": diag, "transfer_not_above_chance": cross}


def collapsed(metrics: dict) -> bool | None:
    """Whether any training seed of a run collapsed (``collapse/collapsed`` of its training statistics),
    or None if the run has no collapse report."""
    per_seed = metrics.get("train_per_seed") or {"0": metrics.get("train", {})}
    flags = [t.get("collapse/collapsed") for t in per_seed.values()]
    flags = [f for f in flags if f is not None]
    return any(flags) if flags else None


def f7_rl(compare: Compare, runs: dict[str, dict], roles: FindingRoles) -> dict:
    """Table 8's claim in two parts (module docstring); each gets a status and ``status`` joins them:
    *reproduced* if both are, *contradicted* if both are, else *mixed* (or *missing* / *not resolved*).

    * collapse: *reproduced* if every POVID-RM run collapsed, *contradicted* if none did, else *mixed*;
    * no gain over DPO: per VLFeedback-RM run, *beats DPO* if better than ``roles.offline_dpo`` on some column and
      worse on none; the part is *reproduced* if no run beats DPO, *contradicted* if every run does, else
      *mixed*.
    """
    claim = "PPO/RLOO collapse with a POVID-style RM and do not beat DPO with a VLFeedback-style RM (Table 8)"
    povid_rm, vlf_rm, dpo = roles.rl_construction_rm, roles.rl_ranking_rm, roles.offline_dpo
    needed = (*povid_rm, *vlf_rm, dpo)
    if any(r not in runs for r in needed):
        return {"claim": claim, "status": "missing", "absent": [r for r in needed if r not in runs]}
    flags = {r: collapsed(runs[r]) for r in povid_rm}
    if None in flags.values():
        collapse_status = "missing"
    else:
        collapse_status = (
            "reproduced" if all(flags.values()) else "contradicted" if not any(flags.values()) else "mixed"
        )
    vs_dpo = {r: {c: compare(r, dpo, c) for c, *_ in COLUMNS} for r in vlf_rm}
    beats = {r: "better" in v.values() and "worse" not in v.values() for r, v in vs_dpo.items()}
    gain_status = "reproduced" if not any(beats.values()) else "contradicted" if all(beats.values()) else "mixed"
    parts = (collapse_status, gain_status)
    status = "missing" if "missing" in parts else parts[0] if parts[0] == parts[1] else "mixed"
    return {
        "claim": claim,
        "status": status,
        "collapse_with_povid_rm": {"status": collapse_status, "collapsed": flags},
        "no_gain_over_dpo_with_vlfeedback_rm": {"status": gain_status, "beats_dpo": beats, "verdicts": vs_dpo},
    }


@dataclass(frozen=True)
class Rule:
    """One version of a finding's rule. ``introduced``: the commit (or issue item) that wrote it;
    ``after_results``: whether it was written after results under an earlier version had been seen;
    ``why``: the reason for the change."""

    version: int
    introduced: str
    text: str
    after_results: bool = False
    why: str = ""


RULES: dict[str, tuple[Rule, ...]] = {
    "F1": (Rule(1, "4313b26", "dpo_bdhs vs SFT: better on some hallucination column, worse on none"),),
    "F2": (Rule(1, "4313b26", "avg_povid_bdhs vs avg_povid_distortion: worse on no column"),),
    "F3": (
        Rule(
            1,
            "4313b26",
            "mixed_dpo_povid not worse than dpo_povid (hallucination) nor online_dpo_oracle "
            "(helpfulness), and better than SFT on some column (f3_v1)",
        ),
        Rule(
            2,
            "c0ee4bb",
            "both gains must exist over SFT first; mixed_dpo_povid must beat SFT on a column of each (f3)",
            after_results=True,
            why="v1 could call F3 reproduced when neither offline nor online DPO gained anything to combine; "
            "written in the commit that produced the first quick-profile results",
        ),
    ),
    "F7": (
        Rule(
            1,
            "4313b26",
            "every RM above chance in distribution, every construction <-> ranking cell at chance (f7_ours)",
        ),
        Rule(
            2,
            "#10 item 2 (2026-12-01)",
            "POVID-style and RLHF-V-style RMs, above chance in distribution, "
            "fall below chance on each other's pairs, as the paper states (f7)",
            after_results=True,
            why="v1 tested a claim the paper does not make; the paper's own VLFeedback -> POVID cells "
            "(0.61 / 0.76) would fail it",
        ),
    ),
    "F7-RL": (Rule(1, "23197be", "POVID-RM runs collapse; VLFeedback-RM runs do not beat dpo_povid (f7_rl)"),),
    "COLUMNS": (
        Rule(1, "4313b26", "every column decides findings (the POPE rule aside)"),
        Rule(
            2,
            "#10 item 4 (2026-12-01)",
            "a column decides only if the SFT model's value on it is better "
            "with the image than with every image token masked (paired 95 % "
            "interval excludes 0; study.report.measurable)",
            after_results=True,
            why="36 % of typed-QA items have an outcome the yes-bias forces, yet QA halluc. decided F1-F3; "
            "the test was written before its own outcome on any model was seen",
        ),
    ),
    "DRAWS": (
        Rule(
            1,
            "issue 9, SFT draws (2026-12-07)",
            "with several SFT draws, each aligned model is paired with its own SFT model; a column is better/worse "
            "when the paired interval of the mean over draws excludes 0 and every draw's own difference lies on "
            "that side (study.eval.paired.verdict); one draw: the interval alone",
        ),
    ),
    "POPE": (
        Rule(1, "4313b26", "POPE columns decide findings like any column"),
        Rule(
            2,
            "7ff7919",
            "POPE columns of a model whose yes-ratio is >= 0.95 or <= 0.05 on a split are "
            "not measurable (degenerate_pope)",
            after_results=True,
            why="every model then answered yes to ~100 % of POPE questions: its POPE accuracy was its "
            "yes-ratio in disguise; written after the first results",
        ),
    ),
}
POPE_FINDINGS = ("F1", "F2", "F3", "F7-RL")  # findings decided by column comparisons (POPE among them)


def _rule(r: Rule) -> dict:
    return asdict(r)


def check_all(compare: Compare, runs: dict[str, dict], rm_metrics: dict | None, roles: FindingRoles) -> dict[str, dict]:
    """Every finding of the module docstring: ``{"F1": ..., "F2": ..., "F3": ..., "F7": ..., "F7-RL": ...}``,
    each with ``claim``, ``status``, its current ``rule`` and ``earlier_rules``: the verdict of each earlier
    version of its rule (and of the earlier POPE rule, for findings with POPE columns) on the same numbers.
    ``runs``: ``{model: metrics JSON}``; ``rm_metrics``: the ``reward_models`` stage's metrics (None if it
    has not run); ``roles``: the runs of each rule (``params.yaml: report.findings``). A ``compare`` without ``columns_v1`` / ``pope_decides`` (hand-made) is used as is for the
    columns / POPE history. The POPE v1 entry applies neither the POPE nor the columns rule (both came later)."""
    fns = {
        "F1": lambda c: f1(c, roles),
        "F2": lambda c: f2(c, roles),
        "F3": lambda c: f3(c, roles),
        "F7": lambda c: f7(rm_metrics),
        "F7-RL": lambda c: f7_rl(c, runs, roles),
    }
    earlier = {("F3", 1): lambda c: f3_v1(c, roles), ("F7", 1): lambda c: f7_ours(rm_metrics)}
    columns_v1 = getattr(compare, "columns_v1", compare)
    pope_v1 = getattr(compare, "pope_decides", compare)
    out = {}
    for name, fn in fns.items():
        res = fn(compare)
        history = [{**_rule(r), "status": earlier[(name, r.version)](compare)["status"]} for r in RULES[name][:-1]]
        if name in POPE_FINDINGS:
            history.append({**_rule(RULES["COLUMNS"][0]), "rule_of": "COLUMNS", "status": fn(columns_v1)["status"]})
            history.append({**_rule(RULES["POPE"][0]), "rule_of": "POPE", "status": fn(pope_v1)["status"]})
        out[name] = {**res, "rule": _rule(RULES[name][-1]), "earlier_rules": history}
    return out


def length_drift(compare: Compare, runs: dict[str, dict]) -> dict[str, dict]:
    """Answer-length drift of every online and RL run (``_meta.method`` in :data:`ONLINE_METHODS`): the paired
    difference of the greedy description's length in tokens, run - SFT, on the same test items, with its
    95 % interval; ``drift`` = longer / shorter when the interval excludes 0, else none. A judge or reward that
    favours saying less (as the oracle's preference did while it compared scalar scores) shows here as
    ``shorter``."""
    out = {}
    for name, m in runs.items():
        method = m.get("_meta", {}).get("method")
        if method not in ONLINE_METHODS or compare(name, "SFT", LENGTH) == "missing":
            continue
        v = compare(name, "SFT", LENGTH)
        d = compare.cache[(name, "SFT", LENGTH)]  # type: ignore[attr-defined]
        out[name] = {
            "method": method,
            "sft_tokens": runs["SFT"]["describe"]["length"]["value"],
            "delta_tokens": d["delta"],
            "ci95": d["ci95"],
            "drift": {"better": "longer", "worse": "shorter"}.get(v, "none"),
        }
    return out


def paper_summary(
    compare: Compare, runs: dict[str, dict], rm_metrics: dict | None, degenerate: set[str], roles: FindingRoles
) -> dict:
    """The content of ``metrics/paper.json``: every finding (:func:`check_all`), the online/RL runs' length drift
    (:func:`length_drift`), the columns' image-sensitivity test (``compare.image_sensitivity``, None without
    blind predictions), the models compared and those whose POPE is not measurable."""
    return {
        "findings": check_all(compare, runs, rm_metrics, roles),
        "length_drift": length_drift(compare, runs),
        "image_sensitivity": getattr(compare, "image_sensitivity", None),
        "models": sorted(runs),
        "pope_not_measurable": sorted(degenerate),
        "draws": getattr(compare, "draws", None),
        "draws_rule": _rule(RULES["DRAWS"][-1]),
        "test": "paired scene bootstrap, 95%, interval excludes 0; over several SFT draws: the mean's interval, "
        "and every draw's own difference on the same side",
    }


def sensitivity_table(sens: dict[str, dict]):
    """The image-sensitivity test per column (percentage points, with image - blind, paired 95 % CI)."""
    import pandas as pd

    return pd.DataFrame(
        {
            c: {
                "with image - blind": f"{100 * v['delta']:+.1f} [{100 * v['ci95'][0]:+.1f}, {100 * v['ci95'][1]:+.1f}]",
                "measurable": v["measurable"],
            }
            for c, v in sens.items()
        }
    ).T


def rules_table(result: dict[str, dict]):
    """One row per finding and rule version: the verdict now and under each earlier rule (:data:`RULES`),
    with the commit that wrote the rule and, for a rule written after results, why it changed."""
    import pandas as pd

    rows = []
    for name, f in result.items():
        r = f["rule"]
        rows.append(
            {
                "finding": name,
                "rule": f"{name} v{r['version']} (current)",
                "introduced": r["introduced"],
                "after results": r["after_results"],
                "status": f["status"],
                "why changed": r["why"],
            }
        )
        for e in f.get("earlier_rules", []):
            rows.append(
                {
                    "finding": name,
                    "rule": f"{e.get('rule_of', name)} v{e['version']}",
                    "introduced": e["introduced"],
                    "after results": e["after_results"],
                    "status": e["status"],
                    "why changed": "",
                }
            )
    return pd.DataFrame(rows)


def delta_table(compare: Compare, models: list[str], base: str = "SFT"):
    """Paired differences ``model - base`` (percentage points, 95 % CI, verdict mark) for every column.

    Cells: ``"-2.1 [-3.4, -0.8] +"`` where ``+``/``-`` mark a significant improvement/degradation and
    ``n/m`` a POPE column that is not measurable (:func:`degenerate_pope`).
    """
    import pandas as pd

    mark = {"better": " +", "worse": " -", "not resolved": "", "not measurable": " n/m"}
    rows = {}
    for m in models:
        if m == base:
            continue
        row = {}
        for c, *_ in COLUMNS:
            v = compare(m, base, c)
            if v == "missing":
                continue
            d = compare.cache[(m, base, c)]  # type: ignore[attr-defined]
            row[c] = f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]{mark[v]}"
        rows[m] = row
    return pd.DataFrame(rows).T.reindex(columns=[c for c, *_ in COLUMNS])
