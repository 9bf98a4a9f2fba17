"""Preference alignment of the organism (paper §2, §5): offline DPO/IPO/SLiC, Avg-DPO, Online-DPO,
Online-BDHS, Mixed-DPO, RLOO and PPO, each a thin layer over TRL where TRL has the piece.

Entry point: :func:`train` (what a DVC stage or a notebook calls)::

    from study.align import train
    metrics = train("dpo", policy="models/sft", world="data/world", data="prefs/povid.parquet",
                    params={"beta": 0.1, "epochs": 3, ...}, out_dir="models/dpo", live_dir="dvclive/dpo")

Everything is validated before the model is touched: the method, every parameter
(:class:`~study.align.config.AlignParams`), that the reward-model directory exists, and the dataset's
columns. A killed run resumes from its work dir (``<out_dir>.work``) only if that state was written with
the same resolved params, seed, data, initial policy, world and reward model (:func:`run_fingerprint`,
:mod:`study.resume`); otherwise it starts clean, and a line says which.

Modules: :mod:`.config` (params, checks), :mod:`.losses` (the losses in plain torch), :mod:`.common`
(datasets, trainable params, optimiser groups, saving), :mod:`.offline` (DPO/IPO/SLiC), :mod:`.avg_dpo`
(Eq. 5), :mod:`.online` (Online-DPO, Online-BDHS, Mixed-DPO), :mod:`.reward` (reward scorer, collapse
monitor), :mod:`.rl` (RLOO via TRL; re-exports PPO), :mod:`.ppo` (compact PPO).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.align import methods as registry
from study.align.config import (
    AlignDataError,
    AlignParams,
    AlignParamsError,
    check_columns,
    check_reward_model,
    make_params,
)

# method name -> its trainer, knobs and columns (study.align.methods: a new method registers there)
METHODS = registry.REGISTRY


def load_data(data):
    """Preference rows from a parquet path (:func:`study.prefs.schema.load_prefs`), or ``data`` as given."""
    if isinstance(data, (str, Path)):
        p = Path(data)
        if not p.is_file():
            raise AlignDataError(f"preference file not found: {p}")
        if p.suffix == ".jsonl":
            from study import io

            return io.read_jsonl(p)
        from study.prefs.schema import load_prefs

        return load_prefs(p)
    return data


def train(
    method: str,
    *,
    policy,
    world,
    data,
    params: AlignParams | dict[str, Any] | None = None,
    out_dir,
    live_dir=None,
    work_dir=None,
    seed: int = 0,
    annotator=None,
    **kwargs,
) -> dict:
    """Align ``policy`` with ``method`` and save the result to ``out_dir`` (loadable by
    :func:`study.model.load_model`); returns the run's metrics.

    ``policy``: a checkpoint directory (loaded with :func:`study.model.load_model`) or ``(model,
    processor)``. ``world``: a :class:`study.world.corpus.World` or its directory (images, scenes).
    ``data``: preference rows (list / pandas / ``datasets``; a ``.parquet`` or ``.jsonl`` path is read).
    ``params``: :class:`AlignParams` or a mapping; its ``method`` is set to ``method``. ``annotator``:
    overrides the judge built from ``params.annotator``. Extra ``kwargs`` go to the method (e.g.
    ``eval_data`` for offline methods, ``callbacks``, ``encoder`` for Online-BDHS).
    """
    if method not in registry.REGISTRY:
        raise AlignParamsError(
            f"invalid alignment params: align.method must be one of {list(registry.REGISTRY)}, got {method!r}"
        )
    raw = params.model_dump() if isinstance(params, AlignParams) else dict(params or {})
    raw["method"] = method
    p = make_params(raw)
    if annotator is None:
        check_reward_model(p)
    rows = load_data(data)
    check_columns(rows, method)
    from study.world.corpus import World

    w = world if isinstance(world, World) else World(world)
    from study.prefs.schema import check_scene_ids

    check_scene_ids(rows, w, source=data if isinstance(data, (str, Path)) else None)  # known, never test/ood
    if isinstance(policy, (str, Path)):
        import torch

        from study.model.load import load_model

        # bf16 runs load the checkpoint in bf16 directly (a 7B in fp32 is ~28 GB of host memory per process)
        model, processor = load_model(policy, dtype=torch.bfloat16 if p.bf16 else None)
    else:
        model, processor = policy
    model.train()
    from study.resume import claim_work_dir, default_work_dir

    # resume only state written by this very configuration (study.resume); one line says which happened
    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    claim_work_dir(work, run_fingerprint(p, seed, data, policy, w), f"{method} run {Path(out_dir)}")
    return registry.get(method).train_fn()(
        model,
        processor,
        w,
        rows,
        p,
        out_dir,
        live_dir=live_dir,
        work_dir=work,
        seed=seed,
        annotator=annotator,
        **kwargs,
    )


def run_fingerprint(p: AlignParams, seed: int, data, policy, world) -> dict:
    """What determines a run's resumable state (:mod:`study.resume`): the resolved params, the seed and
    digests of the preference data, the initial policy, the world and the reward model."""
    from study.resume import tree_digest

    return {
        "params": p.model_dump(),
        "seed": seed,
        "data": _data_digest(data),
        "policy": _policy_digest(policy),
        "world": tree_digest(world.root),
        "reward_model": tree_digest(p.reward_model_path) if p.needs_annotator and p.reward_model_path else None,
    }


def _data_digest(data) -> str:
    from study.resume import tree_digest, value_digest

    if isinstance(data, (str, Path)):
        return tree_digest(data)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return value_digest(data.to_dict(orient="records"))
    if hasattr(data, "_fingerprint"):  # datasets.Dataset
        return str(data._fingerprint)
    return value_digest(list(data))


def _policy_digest(policy) -> str:
    import hashlib

    import torch

    from study.resume import tree_digest

    if isinstance(policy, (str, Path)):
        return tree_digest(policy)
    h = hashlib.sha256()
    for name, t in policy[0].state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


__all__ = [
    "METHODS",
    "AlignParams",
    "AlignParamsError",
    "AlignDataError",
    "check_columns",
    "make_params",
    "train",
    "load_data",
    "run_fingerprint",
]
