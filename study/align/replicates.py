"""The ``replicates`` stage: every decisive run again on each further draw of the SFT model.

A claim about an aligned model must hold across draws of the SFT model it starts from, not only across its own
training seeds: one SFT model is one draw (the same recipe from another seed reads its image differently). With
``replicates.enabled``, for each further SFT seed k (:func:`study.model.seeds.extra_seeds`; its model SFT_k is
the ``sft_seeds`` stage's), this stage rebuilds what a decisive run (one a finding's rule names,
``report.findings``) reads from its SFT model, with the main chain's own stage functions and params, only the SFT
model changed, in this order:

1. ``evaluate``: SFT_k scored as the SFT model is                      -> ``seed{k}/eval/sft``
2. ``preferences``: every recipe and held-out set, SFT_k and its pool  -> ``seed{k}/prefs/{recipes,heldout}``
3. ``bdhs``: the BDHS dataset, the Avg-DPO unions and the sweep        -> ``seed{k}/prefs/{bdhs.parquet,union}``
4. ``reward_models`` (only when a decisive run is judged by one)       -> ``seed{k}/models/rm``
5. each decisive run, trained once with training seed k from SFT_k on its data from 2-4, judged by seed k's
   reward models where it is judged by one                            -> ``seed{k}/eval/<run>/seed{k}``

The study ``seed`` draws the prompts, pairs and evaluation items everywhere, so SFT_k and its aligned models
answer exactly the items SFT_0's do: the paper stage pairs each aligned model with its own SFT model
(:mod:`study.eval.paired`). The main chain's decisive runs are the SFT-seed-``seed`` replicate.

Output ``<out_dir>``: ``seeds.json`` (``{"seeds": [...], "runs": [...]}``) and, per seed, the predictions (``eval``)
and preference data (``prefs``) above; aligned models and reward models are not kept (what they did is in their
predictions and metrics). Metrics: ``{"seeds", "runs", "per_seed": {k: {"eval_sft", "prefs", "bdhs",
"reward_models", "align": {run: metrics}}}}``.

Resuming: seed k works in ``<out_dir>.work/seed{k}``; a sub-stage is kept when its metrics file is there and the
directory was written with the same fingerprint (the resolved params, the world and SFT_k,
:func:`replicate_fingerprint`); a sub-stage done again redoes every later one. A decisive run killed mid-training
resumes from its own checkpoints (:func:`study.align.stage.run_align`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from study import io
from study.config import REWARD_MODELS_DIR
from study.model.seeds import extra_seeds, seed_dir
from study.resume import claim_work_dir, default_work_dir, run_sub_stages, tree_digest

if TYPE_CHECKING:
    from study.config import StudyParams
    from study.pipeline import StageContext


def replicate_seeds(p: StudyParams) -> list[int]:
    """The further SFT seeds the decisive runs are replicated on: every one of :func:`extra_seeds` when
    ``replicates.enabled``, else none. There are none either when ``organism.sft_seeds`` lists only ``seed`` or a
    pretrained base passes through SFT (one checkpoint, no further draw): the stage then trains nothing and the
    findings rest on the main draw, as without it (its notebook says which)."""
    return extra_seeds(p) if p.replicates.enabled else []


def decisive_order(p: StudyParams) -> list[str]:
    """The decisive runs (:meth:`study.config.StudyParams.decisive_runs`) in ``align.runs`` then
    ``align.rm_runs`` order."""
    decisive = p.decisive_runs()
    return [r for r in p.align.all_runs() if r in decisive]


def judged_by_trained_rm(p: StudyParams, run: str) -> bool:
    """Whether ``run`` is judged by a reward model the ``reward_models`` stage trains (``align.rm_runs`` entry
    whose ``reward_model_path`` is under its output)."""
    entry = p.align.rm_runs.get(run)
    return entry is not None and Path(str(entry["reward_model_path"])).parent == Path(REWARD_MODELS_DIR)


def replicate_params(p: StudyParams, k: int, rm_dir: str | Path) -> StudyParams:
    """``p`` with every decisive run trained once with training seed ``k`` (its ``seeds`` entry set to ``[k]``)
    and, where the ``reward_models`` stage's model judges it, judged by the same recipe's model in ``rm_dir``
    (seed k's). Nothing else changes."""
    runs, rm_runs = dict(p.align.runs), dict(p.align.rm_runs)
    for r in decisive_order(p):
        table = runs if r in runs else rm_runs
        entry = {**table[r], "seeds": [k]}
        if judged_by_trained_rm(p, r):
            entry["reward_model_path"] = str(Path(rm_dir) / Path(str(entry["reward_model_path"])).name)
        table[r] = entry
    return p.model_copy(update={"align": p.align.model_copy(update={"runs": runs, "rm_runs": rm_runs})})


def replicate_fingerprint(p: StudyParams, world_dir, sft_dir) -> dict:
    """What determines seed k's replicate (:mod:`study.resume`): the resolved params, the world and SFT_k."""
    return {"params": p.model_dump(mode="json"), "world": tree_digest(world_dir), "sft": tree_digest(sft_dir)}


def _sub_stages(
    p: StudyParams, k: int, world_dir: str, seeds_dir: str, d: Path, reward_models: bool
) -> list[tuple[str, str, dict]]:
    """``(stage, run, paths)`` of seed ``k``'s sub-stages in order (module docstring), rooted at ``d``; the
    ``reward_models`` sub-stage only if ``reward_models``."""
    from study.stages import prefs_file

    sft, pool = str(seed_dir(seeds_dir, k) / "sft"), str(seed_dir(seeds_dir, k) / "pool")
    prefs, m = d / "prefs", d / "metrics"
    recipes, heldout = str(prefs / "recipes"), str(prefs / "heldout")
    out = [
        ("evaluate", None, dict(model_dir=sft, out_dir=str(d / "eval" / "sft"), metrics_path=str(m / "eval_sft.json"))),
        (
            "preferences",
            None,
            dict(sft_dir=sft, pool_dir=pool, out_dir=recipes, heldout_dir=heldout, metrics_path=str(m / "prefs.json")),
        ),
        (
            "bdhs",
            None,
            dict(
                model_dir=sft,
                povid_path=f"{recipes}/povid.parquet",
                out_path=str(prefs / "bdhs.parquet"),
                union_dir=str(prefs / "union"),
                sweep_path=str(d / "bdhs" / "sweep.csv"),
                metrics_path=str(m / "bdhs.json"),
            ),
        ),
    ]
    if reward_models:
        out.append(
            (
                "reward_models",
                None,
                dict(
                    sft_dir=sft,
                    train_dir=recipes,
                    heldout_dir=heldout,
                    out_dir=str(d / "models" / "rm"),
                    metrics_path=str(m / "reward_models.json"),
                ),
            )
        )
    for r in decisive_order(p):
        data = p.align.all_runs()[r]["data"]
        out.append(
            (
                "align",
                r,
                dict(
                    sft_dir=sft,
                    data_path=str(d / prefs_file(data).removeprefix("artifacts/")),
                    sft_metrics_path=str(m / "eval_sft.json"),
                    out_dir=str(d / "models" / "align" / r),
                    eval_dir=str(d / "eval" / r),
                    live_dir=str(d / "dvclive" / r),
                    metrics_path=str(m / "align" / f"{r}.json"),
                ),
            )
        )
    return [(s, r, {"world_dir": world_dir, **x}) for s, r, x in out]


def _runner(stage: str):
    if stage == "evaluate":
        from study.eval.stage import run_eval as fn
    elif stage == "preferences":
        from study.prefs.stage import run_preferences as fn
    elif stage == "bdhs":
        from study.bdhs.stage import run_bdhs as fn
    elif stage == "reward_models":
        from study.prefs.rm_transfer import run_reward_models as fn
    else:
        from study.align.stage import run_align as fn
    return fn


def replicate_seed(k: int, ctx: StageContext, work: Path) -> dict:
    """Seed ``k``'s sub-stages (module docstring) in ``work/seed{k}``; returns their metrics."""
    from study.pipeline import StageContext

    x = ctx.paths
    d = work / f"seed{k}"
    p = replicate_params(ctx.params, k, d / "models" / "rm")
    reward_models = any(judged_by_trained_rm(ctx.params, r) for r in decisive_order(ctx.params))
    sft = seed_dir(x.seeds_dir, k) / "sft"
    resume = claim_work_dir(d, replicate_fingerprint(p, x.world_dir, sft), f"the replicate on SFT seed {k}")
    subs = _sub_stages(p, k, x.world_dir, x.seeds_dir, d, reward_models)
    run_sub_stages(
        resume,
        [
            (
                f"{stage}@{run}" if run else stage,
                lambda m=paths["metrics_path"]: Path(m).is_file(),
                lambda stage=stage, run=run, paths=paths: _runner(stage)(
                    StageContext(stage, run, p, SimpleNamespace(**paths))
                ),
            )
            for stage, run, paths in subs
        ],
        f"SFT seed {k}",
    )
    metrics: dict = {"align": {}}
    for stage, run, paths in subs:
        m = json.loads(Path(paths["metrics_path"]).read_text())
        if run:
            metrics["align"][run] = m
        else:
            metrics[{"evaluate": "eval_sft", "preferences": "prefs"}.get(stage, stage)] = m
    return metrics


def run_replicates(ctx: StageContext) -> dict:
    """Replicate every decisive run on each further SFT seed (:func:`replicate_seeds`) and write
    ``paths.out_dir`` and ``paths.metrics_path`` (module docstring)."""
    p, out_dir, metrics_path = ctx.params, ctx.paths.out_dir, ctx.paths.metrics_path
    seeds, runs = replicate_seeds(p), decisive_order(p)
    work = default_work_dir(out_dir)
    per_seed = {k: replicate_seed(k, ctx, work) for k in seeds}
    with io.atomic_dir(out_dir) as tmp:
        io.write_json(tmp / "seeds.json", {"seeds": seeds, "runs": runs if seeds else []})
        for k in seeds:
            for part in ("eval", "prefs"):
                shutil.copytree(work / f"seed{k}" / part, Path(tmp) / f"seed{k}" / part)
    if work.exists():
        shutil.rmtree(work)
    metrics = {"seeds": seeds, "runs": runs if seeds else [], "per_seed": {str(k): m for k, m in per_seed.items()}}
    io.write_json(metrics_path, metrics)
    return metrics
