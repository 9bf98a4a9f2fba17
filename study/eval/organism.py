"""The grounding report of one model on one split: every instrument of :mod:`study.eval.grounding`.

For ``n_scenes`` scenes of ``split`` it measures

* ``pope_{random,popular,adversarial}``: AUROC of the yes/no margin with the image and with every
  image token masked, their difference (``image_gain``), and, from the model's greedy *answers*
  (POPE's parser), ``accuracy`` and ``yes_ratio``; ``adversarial_drop``, random minus adversarial
  accuracy (paired: a scene's items of both suites are resampled together);
* ``describe``: the greedy descriptions' CHAIR_i, recall and context share (:mod:`study.eval.chair`)
  and their image dependence ``D`` in nats per token;
* ``sampled``: CHAIR_i of temperature-``temperature`` descriptions with the image and fully masked,
  and their ratio;
* ``probe``: the presence probe on the projected image features vs the context-label-only probe
  (fitted on the first ``probe_train`` train scenes).

Every number carries a 95 % scene-bootstrap interval except the probe's (one fit). The rows the
numbers come from are returned too, so they can be saved and recomputed.
"""

from __future__ import annotations

import numpy as np

from study.eval.bootstrap import bootstrap_table, ratio
from study.eval.grounding import (
    answer_logprobs,
    auroc_ci,
    auroc_gain_ci,
    image_features,
    presence_probe,
    yes_no_margins,
)
from study.eval.pope import pope_parse
from study.eval.runner import run_predictions, score
from study.eval.suites import build_items
from study.model.generate import generate, keep_none
from study.model.vision_pretrain import presence_labels
from study.world.corpus import World
from study.world.spec import WorldSpec


def predict_items(
    model,
    processor,
    world: World,
    items: list[dict],
    *,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    keep_fn=None,
    temperature: float | None = None,
) -> list[dict]:
    """The model's answers to eval ``items`` (each with its scene's image): greedy, or sampled at
    ``temperature``; ``keep_fn`` masks image tokens (:func:`study.model.generate.generate`). Returns
    :func:`study.eval.runner.run_predictions`'s rows, each item with its ``prediction``."""

    def answer(scene_ids, prompts):
        return generate(
            model,
            processor,
            [world.image(s) for s in scene_ids],
            prompts,
            keep_fn=keep_fn,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            do_sample=temperature is not None,
            temperature=temperature or 1.0,
        )

    return run_predictions(items, answer, batch_size=4 * batch_size, progress=False)


POPE_SUITES = ("pope_random", "pope_popular", "pope_adversarial")
GROUNDING_FIELDS = {"pope": ("margin", "margin_masked"), "describe": ("logp", "logp_masked", "n_tokens")}


def add_grounding_fields(
    model, processor, world: World, predictions: list[dict], *, batch_size: int = 64
) -> list[dict]:
    """Copies of the prediction rows with the instruments' raw numbers: POPE rows get ``margin`` and
    ``margin_masked`` (the yes/no margin with the image and with every image token masked), describe rows
    ``logp``, ``logp_masked`` (their own answer's log-likelihood) and ``n_tokens``. Other rows are copied."""
    out = [dict(r) for r in predictions]
    pope = [r for r in out if r["suite"] in POPE_SUITES]
    desc = [r for r in out if r["suite"] == "describe"]
    if pope:
        imgs, prompts = [world.image(r["scene_id"]) for r in pope], [r["prompt"] for r in pope]
        for masked, key in ((False, "margin"), (True, "margin_masked")):
            for r, m in zip(
                pope, yes_no_margins(model, processor, imgs, prompts, masked=masked, batch_size=batch_size)
            ):
                r[key] = float(m)
    if desc:
        imgs, prompts, answers = (
            [world.image(r["scene_id"]) for r in desc],
            [r["prompt"] for r in desc],
            [r["answer"] for r in desc],
        )
        for masked, key in ((False, "logp"), (True, "logp_masked")):
            lp, n = answer_logprobs(model, processor, imgs, prompts, answers, masked=masked, batch_size=batch_size)
            for r, a, k in zip(desc, lp, n):
                r[key], r["n_tokens"] = float(a), int(k)
    return out


def grounding_metrics(rows: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """From rows with :func:`add_grounding_fields`' fields: per POPE suite ``auroc``, ``auroc_masked`` and
    ``image_gain``; for descriptions ``image_dependence`` (nats per token). Scene-bootstrap CIs."""
    out: dict = {}
    for suite in POPE_SUITES:
        r = [x for x in rows if x["suite"] == suite]
        if not r:
            continue
        y, g = [int(x["label"] == "yes") for x in r], [x["scene_id"] for x in r]
        a, b = [x["margin"] for x in r], [x["margin_masked"] for x in r]
        out[suite] = {
            "auroc": auroc_ci(a, y, g, n_boot=n_boot, seed=seed),
            "auroc_masked": auroc_ci(b, y, g, n_boot=n_boot, seed=seed),
            "image_gain": auroc_gain_ci(a, b, y, g, n_boot=n_boot, seed=seed),
        }
    d = [x for x in rows if x["suite"] == "describe"]
    if d:
        diff = np.array([x["logp"] - x["logp_masked"] for x in d])
        out["describe"] = {
            "image_dependence": _ratio_ci(
                diff,
                np.array([x["n_tokens"] for x in d], dtype=float),
                [x["scene_id"] for x in d],
                n_boot=n_boot,
                seed=seed,
            )
        }
    return out


def context_onehot(spec: WorldSpec, scenes) -> np.ndarray:
    ctx = list(spec.contexts)
    return np.array([[s.context == c for c in ctx] for s in scenes], dtype=float)


def grounding_report(
    model,
    processor,
    world: World,
    spec: WorldSpec,
    *,
    split: str,
    n_scenes: int,
    n_pos: int = 3,
    batch_size: int = 64,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    probe_train: int = 1000,
    n_boot: int = 1000,
    seed: int = 0,
    first: int = 0,
) -> tuple[dict, dict]:
    """``(metrics, rows)`` for ``split``'s scenes ``first .. first + n_scenes - 1`` (module docstring).
    ``rows`` holds per-item margins, answers and log-likelihoods (``pope``, ``describe``, ``sampled``)."""
    model.eval()
    if first < 0:
        raise ValueError(f"grounding_report: first must be >= 0, got {first}")
    scenes = world.scenes(split)[first : first + n_scenes]
    train = world.scenes("train")
    items = build_items(spec, scenes, train, n_pos=n_pos, seed=seed, suites=("describe", *POPE_SUITES))
    pope = [it for it in items if it["suite"] in POPE_SUITES]
    desc = [it for it in items if it["suite"] == "describe"]
    out: dict = {
        "_meta": {
            "split": split,
            "n_scenes": len(scenes),
            "first": first,
            "n_boot": n_boot,
            "seed": seed,
            "ci_method": "percentile 95 %, scenes resampled",
        }
    }
    rows: dict = {}

    # yes/no margins with and without the image (answers: POPE's parser), greedy descriptions' likelihoods
    answered = predict_items(
        model, processor, world, pope, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed
    )
    greedy = predict_items(
        model, processor, world, desc, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed
    )
    scored = add_grounding_fields(model, processor, world, answered + greedy, batch_size=batch_size)
    rows["pope"] = [r for r in scored if r["suite"].startswith("pope_")]
    rows["describe"] = [r for r in scored if r["suite"] == "describe"]
    g = grounding_metrics(scored, n_boot=n_boot, seed=seed)
    for suite in POPE_SUITES:
        r = [x for x in rows["pope"] if x["suite"] == suite]
        groups = [x["scene_id"] for x in r]
        pred_yes = [pope_parse(x["answer"]) == "yes" for x in r]
        correct = [p == (x["label"] == "yes") for p, x in zip(pred_yes, r)]
        ones = np.ones(len(r))
        out[suite] = {
            **g[suite],
            "accuracy": _ratio_ci(correct, ones, groups, n_boot=n_boot, seed=seed),
            "yes_ratio": _ratio_ci(pred_yes, ones, groups, n_boot=n_boot, seed=seed),
            "n_items": len(r),
        }
    out["adversarial_drop"] = _paired_drop_ci(rows["pope"], n_boot=n_boot, seed=seed)
    chair = score(rows["describe"], scenes, spec, n_boot=n_boot, seed=seed)["describe"]
    out["describe"] = {
        k: chair[k]
        for k in (
            "chair_i",
            "chair_s",
            "recall",
            "recall_in_context",
            "recall_off_context",
            "context_share",
            "helpfulness",
            "length",
        )
    }
    out["describe"]["image_dependence"] = g["describe"]["image_dependence"]

    # sampled descriptions with and without the image
    s_img = predict_items(
        model,
        processor,
        world,
        desc,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        temperature=temperature,
    )
    s_blind = predict_items(
        model,
        processor,
        world,
        desc,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        keep_fn=keep_none,
        temperature=temperature,
    )
    rows["sampled"] = [{**a, "variant": "image"} for a in s_img] + [{**b, "variant": "masked"} for b in s_blind]
    ci = score(s_img, scenes, spec, n_boot=n_boot, seed=seed)["describe"]["chair_i"]
    cb = score(s_blind, scenes, spec, n_boot=n_boot, seed=seed)["describe"]["chair_i"]
    out["sampled"] = {
        "temperature": temperature,
        "chair_i_image": ci,
        "chair_i_masked": cb,
        "chair_i_ratio": cb["value"] / ci["value"] if ci["value"] > 0 else None,
    }

    # presence probe on the projected image features vs the context label alone
    ptrain = train[:probe_train]
    x_tr = image_features(model, processor, [world.image(s.scene_id) for s in ptrain], batch_size=batch_size)
    x_te = image_features(model, processor, [world.image(s.scene_id) for s in scenes], batch_size=batch_size)
    y_tr, y_te = presence_labels(spec, ptrain), presence_labels(spec, scenes)
    feat = presence_probe(x_tr, y_tr, x_te, y_te, spec.category_names)
    ctx = presence_probe(context_onehot(spec, ptrain), y_tr, context_onehot(spec, scenes), y_te, spec.category_names)
    out["probe"] = {
        "features_auroc": feat["mean_auroc"],
        "context_auroc": ctx["mean_auroc"],
        "gain": feat["mean_auroc"] - ctx["mean_auroc"],
        "train_scenes": len(ptrain),
        "per_category": {
            c: {"features": feat["per_category"][c], "context": ctx["per_category"].get(c)}
            for c in feat["per_category"]
        },
    }
    return out, rows


def _paired_drop_ci(pope_rows: list[dict], *, n_boot: int, seed: int) -> dict:
    """POPE accuracy on random minus on adversarial items, ``sum(c_r)/n_r - sum(c_a)/n_a``, with a paired
    scene bootstrap: a scene's random and adversarial items are resampled together, as they share its image."""
    stats = {k: np.zeros(len(pope_rows)) for k in ("c_r", "n_r", "c_a", "n_a")}
    for i, x in enumerate(pope_rows):
        tag = {"pope_random": "r", "pope_adversarial": "a"}.get(x["suite"])
        if tag is not None:
            stats[f"n_{tag}"][i] = 1.0
            stats[f"c_{tag}"][i] = float((pope_parse(x["answer"]) == "yes") == (x["label"] == "yes"))
    groups = [x["scene_id"] for x in pope_rows]

    def drop(s):
        return ratio(s["c_r"], s["n_r"]) - ratio(s["c_a"], s["n_a"])

    return bootstrap_table(stats, {"v": drop}, n_boot=n_boot, seed=seed, groups=groups)["v"]


def _ratio_ci(num, den, groups, *, n_boot: int, seed: int) -> dict:
    """sum(num) / sum(den) with a scene-bootstrap interval (the share of true flags when den = 1)."""
    stats = {"num": np.asarray(num, dtype=float), "den": np.asarray(den, dtype=float)}
    return bootstrap_table(stats, {"v": lambda s: ratio(s["num"], s["den"])}, n_boot=n_boot, seed=seed, groups=groups)[
        "v"
    ]
