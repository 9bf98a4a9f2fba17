"""The ``evaluate`` stage: answer every suite with a model, score it, and run the masked diagnostic.

The masked diagnostic regenerates the ``describe`` suite with image tokens kept with probability
``masked_keep_prob`` (0 = every image token masked from attention, stack notes B4). A model whose
hallucinations come from its language prior hallucinates much more without the image. With every image
token masked, greedy decoding gives the *same* answer for every scene (the input no longer differs), so
the diagnostic samples (``masked_temperature``) and reports a sampled run with the image beside it:
``chair_i_ratio`` = masked / sampled-with-image CHAIR_i (same decoding), ``chair_i_ratio_vs_greedy`` =
masked / the greedy evaluation's CHAIR_i.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from study import io
from study.config import EvalSection
from study.eval.organism import add_grounding_fields, grounding_metrics
from study.eval.runner import run_predictions, score, write_results
from study.eval.suites import build_items
from study.model.generate import generate
from study.model.load import load_model
from study.world.corpus import World
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext

BLIND_FILE = "predictions_blind.jsonl"


def answer_fn_for(
    model, processor, world: World, e: EvalSection, keep_fn=None, seed: int = 0, temperature: float | None = None
):
    """Greedy answers, or sampled ones at ``temperature``."""

    def answer(scene_ids: list[str], prompts: list[str]) -> list[str]:
        images = [world.image(s) for s in scene_ids]
        return generate(
            model,
            processor,
            images,
            prompts,
            keep_fn=keep_fn,
            max_new_tokens=e.max_new_tokens,
            batch_size=e.batch_size,
            seed=seed,
            do_sample=temperature is not None,
            temperature=temperature or 1.0,
        )

    return answer


def evaluate_model(model, processor, world: World, spec, e: EvalSection, seed: int) -> tuple[list[dict], dict]:
    """Answer every suite, score it, and add the grounding instruments (``metrics["grounding"]``: yes/no
    AUROC with and without the image, image dependence of the descriptions; their raw numbers are fields
    of the prediction rows, :func:`study.eval.organism.add_grounding_fields`)."""
    scenes = world.scenes(e.split)[: e.n_scenes]
    items = build_items(spec, scenes, world.scenes("train"), n_pos=e.n_pos, seed=seed)
    preds = run_predictions(items, answer_fn_for(model, processor, world, e, seed=seed), batch_size=4 * e.batch_size)
    preds = add_grounding_fields(model, processor, world, preds, batch_size=e.batch_size)
    metrics = score(preds, scenes, spec, n_boot=e.n_boot, seed=seed)
    metrics["grounding"] = grounding_metrics(preds, n_boot=e.n_boot, seed=seed)
    return preds, metrics


def masked_diagnostic(model, processor, world: World, spec, e: EvalSection, seed: int) -> tuple[list[dict], dict]:
    """Sampled descriptions with and without the image; returns both prediction sets and their scores."""
    scenes = world.scenes(e.split)[: e.n_scenes]
    items = build_items(spec, scenes, world.scenes("train"), n_pos=e.n_pos, seed=seed, suites=("describe",))
    keep_p = e.masked_keep_prob

    def keep_fn(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.rand(n, generator=g) < keep_p

    out_preds, out = [], {}
    for variant, kf in (("sampled", None), (f"masked_keep{keep_p:g}", keep_fn)):
        preds = run_predictions(
            items,
            answer_fn_for(model, processor, world, e, kf, seed, e.masked_temperature),
            batch_size=4 * e.batch_size,
        )
        for p in preds:
            p["suite_variant"] = variant
        out_preds += preds
        out[variant] = score(preds, scenes, spec, n_boot=e.n_boot, seed=seed)["describe"]
    return out_preds, out


def blind_predictions(model, processor, world: World, spec, e: EvalSection, seed: int) -> list[dict]:
    """Every suite's items answered greedily with every image token masked (:func:`keep_none`): the model's
    answers without its image, item for item beside its evaluation. :mod:`study.report.measurable` compares
    the two to decide which columns can measure grounding at all."""
    from study.model.generate import keep_none

    scenes = world.scenes(e.split)[: e.n_scenes]
    items = build_items(spec, scenes, world.scenes("train"), n_pos=e.n_pos, seed=seed)
    return run_predictions(
        items, answer_fn_for(model, processor, world, e, keep_none, seed), batch_size=4 * e.batch_size
    )


def run_eval(ctx: StageContext) -> dict:
    """Evaluate the SFT model: its predictions and metrics, the masked diagnostic, and its blind answers to
    every suite (``predictions_blind.jsonl``, :func:`blind_predictions`)."""
    e, seed, world_spec = ctx.params.eval, ctx.params.seed, ctx.params.world.spec
    world_dir, model_dir, out_dir, metrics_path = (
        ctx.paths.world_dir,
        ctx.paths.model_dir,
        ctx.paths.out_dir,
        ctx.paths.metrics_path,
    )
    spec, world = load_spec(world_spec), World(world_dir)
    model, processor = load_model(model_dir)
    preds, metrics = evaluate_model(model, processor, world, spec, e, seed)
    blind = blind_predictions(model, processor, world, spec, e, seed)
    mpreds, diag = masked_diagnostic(model, processor, world, spec, e, seed)
    masked, sampled = diag[f"masked_keep{e.masked_keep_prob:g}"], diag["sampled"]
    ratio = lambda a, b: a / b if b > 0 else None  # noqa: E731
    metrics["masked"] = {
        "describe": masked,
        "describe_sampled_with_image": sampled,
        "keep_prob": e.masked_keep_prob,
        "temperature": e.masked_temperature,
        "chair_i_ratio": ratio(masked["chair_i"]["value"], sampled["chair_i"]["value"]),
        "chair_i_ratio_vs_greedy": ratio(masked["chair_i"]["value"], metrics["describe"]["chair_i"]["value"]),
    }
    metrics["_meta"]["split"] = e.split
    with io.atomic_dir(out_dir) as tmp:
        write_results(tmp, preds, metrics)
        io.write_jsonl(Path(tmp) / "predictions_masked.jsonl", mpreds)
        io.write_jsonl(Path(tmp) / BLIND_FILE, blind)
        io.write_jsonl(Path(tmp) / "scenes.jsonl", (s.to_dict() for s in world.scenes(e.split)[: e.n_scenes]))
    io.write_json(metrics_path, metrics)
    return metrics
