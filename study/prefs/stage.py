"""The ``preferences`` stage: the paper's dataset recipes rebuilt in the world, and annotator accuracy.

Every recipe draws its prompts and images from the train split and is subsampled to the common size
``n_pairs`` (the paper's "5k" analog). Held-out pairs (val split) measure each annotator's accuracy
(paper Table 10 analog): the exact oracle and noisy oracles of given accuracy (the 7B-vs-34B knob). Each
recipe's ``grounding`` says how on-policy and image-dependent its chosen and rejected answers are under the
SFT model (:mod:`study.eval.pref_grounding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from study import io
from study.config import POOL_RECIPES, PrefsSection
from study.eval.pref_grounding import pref_grounding
from study.model.load import ModelPathError, check_model_dir, load_model
from study.prefs import RECIPES, save_prefs
from study.prefs.annotators import NoisyOracleAnnotator, OracleAnnotator, annotator_accuracy
from study.world.corpus import World
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def pool_paths(sft_dir: str, pool_dir: str, pool_models: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The answer pool: the SFT model, then its weaker members: the local checkpoints of ``prefs.pool_models``
    when it names any (weakest first; each checked before any work, the key and path named), else the SFT
    run's intermediate checkpoints in ``pool_dir`` (by training fraction)."""
    if pool_models:
        for i, d in enumerate(pool_models):
            try:
                check_model_dir(d)
            except ModelPathError as e:
                raise ModelPathError(f"prefs.pool_models[{i}]: {e}") from None
        return [sft_dir, *map(str, pool_models)]
    return [sft_dir] + [str(p) for p in sorted(Path(pool_dir).iterdir()) if p.is_dir()]


def rlhfv_answerer(pool: list[str]) -> str:
    """The model whose answers the RLHF-V-style recipe corrects with ``prefs.rlhfv_answerer: pool``: the
    strongest pool checkpoint other than the SFT model (``pool[0]``), i.e. the last of :func:`pool_paths`
    (intermediate checkpoints sort by training fraction). RLHF-V's rejected answers were Muffin's, another
    model than the policies aligned on them: the pairs are off-policy for the SFT model, as there."""
    if len(pool) < 2:
        raise ValueError(
            "prefs.rlhfv_answerer: pool needs a checkpoint besides the SFT model in the answer pool "
            f"(sft.pool_fractions or prefs.pool_models), got {pool}; or set prefs.rlhfv_answerer: policy"
        )
    return pool[-1]


def build_recipe(
    name: str,
    world: World,
    p: PrefsSection,
    seed: int,
    split: str,
    n: int,
    model,
    processor,
    pool: list[str],
    spec,
    answerer=None,
) -> list[dict]:
    """One recipe's rows. ``answerer``: the loaded ``(model, processor)`` of :func:`rlhfv_answerer` for
    ``prefs.rlhfv_answerer: pool`` (loaded here when not given)."""
    fn = RECIPES[name]
    if name == "povid":
        return fn(
            world,
            n=n,
            seed=seed,
            split=split,
            model=model,
            processor=processor,
            noise_steps=p.povid_noise_steps,
            spec=spec,
        )
    if name == "rlhfv":
        if p.rlhfv_answerer == "policy":
            return fn(world, n=n, seed=seed, split=split, model=model, processor=processor, spec=spec)
        other = rlhfv_answerer(pool)
        m, proc = answerer or load_model(other)
        return fn(
            world, n=n, seed=seed, split=split, model=m, processor=proc, spec=spec, model_id=f"pool:{Path(other).name}"
        )
    if name in POOL_RECIPES:
        return fn(world, n=n, seed=seed, split=split, pool=pool, annotator=OracleAnnotator(spec))
    if name == "random_corruption":
        return fn(world, n=n, seed=seed, split=split, spec=spec)
    raise ValueError(f"prefs.recipes: unknown recipe {name!r}; known: {sorted(RECIPES)}")


def run_preferences(ctx: StageContext) -> dict:
    """Build every recipe (``<paths.out_dir>/<recipe>.parquet``) and the held-out pairs of ``heldout_recipes``
    (``<paths.heldout_dir>/<recipe>.parquet``, val split, seed + 1); score the oracle annotators on the latter."""
    p, seed, world_spec = ctx.params.prefs, ctx.params.seed, ctx.params.world.spec
    world_dir, sft_dir, pool_dir = ctx.paths.world_dir, ctx.paths.sft_dir, ctx.paths.pool_dir
    out_dir, metrics_path, heldout_dir = ctx.paths.out_dir, ctx.paths.metrics_path, ctx.paths.heldout_dir
    torch.set_num_threads(p.threads)
    pool = pool_paths(sft_dir, pool_dir, p.pool_models)  # checked before any model loads
    spec, world = load_spec(world_spec), World(world_dir)
    model, processor = load_model(sft_dir)
    uses_rlhfv = "rlhfv" in (*p.recipes, *p.heldout_recipes)
    answerer = load_model(rlhfv_answerer(pool)) if uses_rlhfv and p.rlhfv_answerer == "pool" else None
    metrics: dict = {"recipes": {}, "annotators": {}}
    with io.atomic_dir(out_dir) as tmp:
        for name in p.recipes:
            rows = build_recipe(name, world, p, seed, "train", p.n_pairs, model, processor, pool, spec, answerer)
            save_prefs(rows, Path(tmp) / f"{name}.parquet", world)
            metrics["recipes"][name] = {
                "rows": len(rows),
                "with_rejected_2": sum(bool(r["rejected_2"]) for r in rows),
                "grounding": pref_grounding(model, processor, world, rows, seed=seed),
            }
    scenes = {s.scene_id: s for s in world.scenes("val")}
    annotators = {"oracle": OracleAnnotator(spec)}
    annotators.update({f"noisy_{a:g}": NoisyOracleAnnotator(spec, a, seed=seed) for a in p.noisy_accuracies})
    heldout = {
        name: build_recipe(name, world, p, seed + 1, "val", p.heldout_n, model, processor, pool, spec, answerer)
        for name in p.heldout_recipes
    }
    if heldout_dir:
        with io.atomic_dir(heldout_dir) as tmp:
            for name, pairs in heldout.items():
                save_prefs(pairs, Path(tmp) / f"{name}.parquet", world)
    for name, pairs in heldout.items():
        metrics["annotators"][name] = {
            a: float(annotator_accuracy(ann, pairs, scenes, seed=seed)) for a, ann in annotators.items()
        }
    io.write_json(metrics_path, metrics)
    return metrics
