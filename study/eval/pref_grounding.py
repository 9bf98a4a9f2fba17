"""How on-policy and how image-dependent a preference dataset is, under the reference (SFT) model.

For a pair with image ``x``, prompt ``q`` and answer ``y`` (chosen ``y_w``, rejected ``y_l``, and the second
rejected answer of Avg-DPO rows where present), with the reference policy ``pi_ref``:

    l(y)   = 1/|y| sum_t log pi_ref(y_t | x, q, y_<t)            per-token log-likelihood: how close ``y`` is
                                                                 to what the reference would say (on-policy-ness)
    l_0(y) = the same with every image token masked
    d(y)   = l(y) - l_0(y)                                       image dependence, nats per token: how much
                                                                 seeing the image makes ``y`` more likely

Reported per dataset and side: the means of ``l`` and ``d`` (token-weighted within an answer, answer-weighted
across the dataset: ``sum_i l_i / n``), and the paired differences chosen minus rejected,
``l(y_w) - l(y_l)`` and ``d(y_w) - d(y_l)``. A rejected answer with ``d`` near 0 (or below the chosen one's)
is one the language prior would write without the image, the kind BDHS is built to produce. Every number
has a 95 % bootstrap interval with the pair's scene as the resampling unit (:mod:`study.eval.bootstrap`).
"""

from __future__ import annotations

import numpy as np

from study.eval.bootstrap import bootstrap_table, ratio
from study.eval.grounding import answer_logprobs
from study.world.corpus import World

SIDES = ("chosen", "rejected", "rejected_2")


def answer_stats(model, processor, world: World, rows: list[dict], side: str, *, batch_size: int = 32) -> dict:
    """``{"logp", "logp_masked", "n_tokens"}`` arrays for ``rows[i][side]`` (rows whose ``side`` is empty are
    skipped; ``index`` says which rows were kept)."""
    keep = [i for i, r in enumerate(rows) if r.get(side)]
    imgs = [world.image(rows[i]["scene_id"]) for i in keep]
    prompts, answers = [rows[i]["prompt"] for i in keep], [rows[i][side] for i in keep]
    lp, n = answer_logprobs(model, processor, imgs, prompts, answers, batch_size=batch_size)
    lp0, _ = answer_logprobs(model, processor, imgs, prompts, answers, masked=True, batch_size=batch_size)
    return {"index": np.array(keep, dtype=int), "logp": lp, "logp_masked": lp0, "n_tokens": n}


def _mean_ci(values: np.ndarray, groups: list[str], *, n_boot: int, seed: int) -> dict:
    stats = {"v": np.asarray(values, dtype=float), "n": np.ones(len(values))}
    return bootstrap_table(stats, {"m": lambda s: ratio(s["v"], s["n"])}, n_boot=n_boot, seed=seed, groups=groups)["m"]


def pref_grounding(
    model, processor, world: World, rows: list[dict], *, batch_size: int = 32, n_boot: int = 1000, seed: int = 0
) -> dict:
    """The module's numbers for one dataset (rows as :func:`study.prefs.load_prefs` returns them: ``chosen``
    and ``rejected`` are never empty, so the margins pair every row; ``rejected_2`` may be)."""
    model.eval()
    out: dict = {"pairs": len(rows)}
    per: dict = {}
    for side in SIDES:
        st = answer_stats(model, processor, world, rows, side, batch_size=batch_size)
        if not len(st["index"]):
            continue
        n = np.maximum(st["n_tokens"], 1)
        per[side] = {"l": st["logp"] / n, "d": (st["logp"] - st["logp_masked"]) / n}
        groups = [rows[i]["scene_id"] for i in st["index"]]
        out[side] = {
            "answers": len(st["index"]),
            "tokens_per_answer": float(np.mean(st["n_tokens"])),
            "logp_per_token": _mean_ci(per[side]["l"], groups, n_boot=n_boot, seed=seed),
            "image_dependence": _mean_ci(per[side]["d"], groups, n_boot=n_boot, seed=seed),
        }
    groups = [r["scene_id"] for r in rows]
    for key, name in (("l", "logp_per_token_margin"), ("d", "image_dependence_margin")):
        out[name] = _mean_ci(per["chosen"][key] - per["rejected"][key], groups, n_boot=n_boot, seed=seed)
    return out


def grounding_table(results: dict[str, dict]) -> list[dict]:
    """One flat row per dataset for a report table (values only; the intervals stay in the metrics JSON)."""
    table = []
    for name, r in results.items():
        row = {"dataset": name, "pairs": r["pairs"]}
        for side in SIDES:
            if side in r:
                row[f"{side} logp/token"] = r[side]["logp_per_token"]["value"]
                row[f"{side} image dep."] = r[side]["image_dependence"]["value"]
        for key in ("logp_per_token_margin", "image_dependence_margin"):
            if key in r:
                row[key.replace("_", " ")] = r[key]["value"]
        table.append(row)
    return table
