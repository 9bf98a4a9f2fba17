"""The ``bdhs`` stage: the offline BDHS preference dataset and the Fig. 10 statistics.

1. The dataset (paper §5.4, "offline BDHS"): chosen = the SFT ground truth of ``n_pairs`` training items,
   rejected = a BDHS sample from the SFT model (:func:`study.prefs.bdhs.bdhs_recipe`).
2. The Table-6 ablation pair (:func:`study.prefs.union.matched_pair`), when ``povid_path`` is given: the
   POVID-style rows that have a BDHS partner, once with POVID's own 2nd rejection (noisy-image teacher
   forcing: "POVID-style image distortion") and once with the BDHS sample as the 2nd rejection
   ("BDHS_attn (offline)"), both for Avg-DPO: ``<union_dir>/povid_distortion.parquet`` and
   ``<union_dir>/povid_bdhs.parquet``.
3. The statistics: :func:`study.bdhs.sweep.sweep` over ``sweep_rho`` on ``sweep_n`` validation descriptions:
   share of semantically different rejections after each iteration and the exact hallucination content.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from study import io
from study.bdhs.sampler import BDHSParams
from study.bdhs.similarity import load_encoder
from study.bdhs.sweep import sweep, sweep_stats
from study.config import BDHSSection
from study.model.load import load_model
from study.world.corpus import World
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def bdhs_params(b: BDHSSection, rho_th: float | None = None, n_bdhs: int | None = None) -> BDHSParams:
    return BDHSParams(
        rho_th=b.rho_th if rho_th is None else rho_th,
        eps_s=b.eps_s,
        n_bdhs=b.n_bdhs if n_bdhs is None else n_bdhs,
        noise_steps=b.noise_steps,
        max_new_tokens=b.max_new_tokens,
        temperature=b.temperature,
        do_sample=b.do_sample,
        batch_size=b.batch_size,
    )


def run_bdhs(ctx: StageContext) -> tuple[list[dict], pd.DataFrame]:
    from study.eval.pref_grounding import pref_grounding
    from study.prefs.bdhs import bdhs_recipe
    from study.prefs.schema import load_prefs, save_prefs
    from study.prefs.union import matched_pair

    b, seed, world_spec, x = ctx.params.bdhs, ctx.params.seed, ctx.params.world.spec, ctx.paths
    world_dir, model_dir, out_path, sweep_path = x.world_dir, x.model_dir, x.out_path, x.sweep_path
    metrics_path, povid_path, union_dir = x.metrics_path, x.povid_path, x.union_dir
    torch.set_num_threads(b.threads)
    spec, world = load_spec(world_spec), World(world_dir)
    model, processor = load_model(model_dir)
    encoder = load_encoder(b.encoder_path or None)
    rows = bdhs_recipe(
        world,
        n=b.n_pairs,
        seed=seed,
        model=model,
        processor=processor,
        split="train",
        params=bdhs_params(b),
        encoder=encoder,
        model_id=Path(model_dir).name,
    )
    save_prefs(rows, out_path, world)
    union_rows = None
    if povid_path:
        own, union = matched_pair(load_prefs(povid_path, world), rows, "povid_distortion", "povid_bdhs")
        with io.atomic_dir(union_dir) as tmp:
            save_prefs(own, Path(tmp) / "povid_distortion.parquet", world)
            save_prefs(union, Path(tmp) / "povid_bdhs.parquet", world)
        union_rows = len(union)
    table = sweep(
        model, processor, world, spec, b.sweep_rho, bdhs_params(b), split="val", n=b.sweep_n, encoder=encoder, seed=seed
    )
    with io.atomic_path(sweep_path) as tmp:
        table.to_csv(tmp, index=False)
    import json

    src = [json.loads(r["source_ids"]) for r in rows]
    metrics = {
        "dataset": {
            "rows": len(rows),
            "rho_th": b.rho_th,
            "eps_s": b.eps_s,
            "n_bdhs": b.n_bdhs,
            "mean_iterations": sum(s["iterations"] for s in src) / max(len(src), 1),
            "guided_share": sum(bool(s["guided"]) for s in src) / max(len(src), 1),
            "mean_visible_tokens": sum(s["visible_tokens"] for s in src) / max(len(src), 1),
            "union_rows": union_rows,
        },
        "sweep": sweep_stats(table),
        # how on-policy and image-dependent the pairs are under the reference (study/eval/pref_grounding.py)
        "grounding": pref_grounding(model, processor, world, rows, seed=seed),
    }
    io.write_json(metrics_path, metrics)
    return rows, table
