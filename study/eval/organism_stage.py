"""The ``organism`` stage: the grounding report of the SFT organism and its validity gates.

The gated split is ``val`` (``organism.gate_split``); ``test`` is reported beside it and never used to
choose anything; ``ood`` gives the recall ratio. The BDHS gate reads the ``bdhs`` stage's Fig-10 sweep
(``metrics/bdhs.json: sweep``) at ``bdhs.rho_th`` and at 0. The seed gates need the SFT organism trained
from ``organism.sft_seeds`` (>= 3 seeds, the main ``seed`` among them): every other seed's SFT model comes from
the ``sft_seeds`` stage (:mod:`study.model.seeds`: the same recipe, trained from that seed) and is reported and
gated the same way, on the same items, its BDHS gate included: the stage sweeps that model at rho_th = 0 and
``bdhs.rho_th`` on the same ``bdhs.sweep_n`` descriptions (:func:`study.bdhs.sweep.gate_sweep`, whose
iteration-1 statistics are the ``bdhs`` stage's at those points; only when the main seed has a sweep to compare
with). A pretrained base passed through SFT (``model.base_path``, ``sft.on_base: pass``) has no other seed to
draw: only it is gated (:func:`study.model.seeds.extra_seeds`).

Outputs: ``metrics/organism.json`` (``gates`` with pass/fail, ``reports`` per split, ``per_seed`` gate
values, ``bdhs_sweep``: every other seed's BDHS gate statistics, ``gate_noise``: each seed's gate values with
95 % intervals, clear or within noise, :mod:`study.eval.gate_noise`, and ``sources``: where each seed's
hallucinated mentions on the gated split come from, :mod:`study.eval.sources`) and, under ``out_dir``, the rows
every number is computed from (``{split}/pope.jsonl``, ``describe.jsonl``, ``sampled.jsonl``;
:mod:`study.eval.organism`; an extra seed's under ``seed{k}/{split}/``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from study import io
from study.bdhs.similarity import load_encoder
from study.bdhs.sweep import gate_sweep
from study.config import (
    EvalSection,
    OrganismSection,
)
from study.eval.gate_noise import gate_intervals, noise_table
from study.eval.gates import check_gates, gate_values, seed_values, summary
from study.eval.organism import grounding_report
from study.eval.sources import describe_sources
from study.model.load import load_model
from study.model.seeds import extra_seeds, load_seed_model
from study.world.corpus import World
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def _reports(
    model, processor, world, spec, e: EvalSection, o: OrganismSection, seed: int, splits: tuple[str, ...]
) -> tuple[dict, dict]:
    reps, rows = {}, {}
    for split in splits:
        n = min(e.n_scenes, len(world.scenes(split)))
        reps[split], rows[split] = grounding_report(
            model,
            processor,
            world,
            spec,
            split=split,
            n_scenes=n,
            n_pos=e.n_pos,
            batch_size=e.batch_size,
            max_new_tokens=e.max_new_tokens,
            temperature=e.masked_temperature,
            probe_train=o.probe_train,
            n_boot=e.n_boot,
            seed=seed,
        )
    return reps, rows


def run_organism(ctx: StageContext) -> dict:
    """Report and gate the SFT organism and every other seed of ``organism.sft_seeds`` (``paths.seeds_dir``,
    the ``sft_seeds`` stage's output; module docstring)."""
    p, x = ctx.params, ctx.paths
    e, o, b, seed, world_spec = p.eval, p.organism, p.bdhs, p.seed, p.world.spec
    world_dir, model_dir, bdhs_metrics, out_dir, metrics_path = (
        x.world_dir,
        x.model_dir,
        x.bdhs_metrics,
        x.out_dir,
        x.metrics_path,
    )
    spec, world = load_spec(world_spec), World(world_dir)
    sweep = json.loads(Path(bdhs_metrics).read_text()).get("sweep") if Path(bdhs_metrics).is_file() else None
    splits = (o.gate_split, "test", "ood") if o.gate_split != "test" else ("test", "ood")
    t0 = time.perf_counter()
    net, processor = load_model(model_dir)
    reps, rows = _reports(net, processor, world, spec, e, o, seed, splits)
    per_seed = {seed: gate_values(reps[o.gate_split], reps["ood"], sweep, b.rho_th)}
    noise = {seed: noise_table(per_seed[seed], gate_intervals(reps[o.gate_split], reps["ood"], sweep, b.rho_th))}
    scenes = {sc.scene_id: sc for sc in world.scenes(o.gate_split)}
    sources = {seed: describe_sources(rows[o.gate_split]["describe"], scenes, spec)}
    seed_rows, seed_sweeps = {}, {}
    encoder = load_encoder(b.encoder_path or None) if sweep is not None and extra_seeds(p) else None
    for s in extra_seeds(p):
        m, proc = load_seed_model(x.seeds_dir, s)
        r, seed_rows[s] = _reports(m, proc, world, spec, e, o, seed, (o.gate_split, "ood"))  # the same items
        if sweep is not None:
            seed_sweeps[s] = gate_sweep(m, proc, world, spec, b, n=b.sweep_n, seed=seed, encoder=encoder)
        sw = seed_sweeps.get(s)
        per_seed[s] = gate_values(r[o.gate_split], r["ood"], sw, b.rho_th)
        noise[s] = noise_table(per_seed[s], gate_intervals(r[o.gate_split], r["ood"], sw, b.rho_th))
        sources[s] = describe_sources(seed_rows[s][o.gate_split]["describe"], scenes, spec)
    values = {**per_seed[seed], **seed_values(list(per_seed.values()))}
    gates = check_gates(values)
    test_values = gate_values(reps["test"], reps["ood"], sweep, b.rho_th)
    for name, g in gates.items():
        g["test_value"] = test_values.get(name)
    metrics = {
        "gates": gates,
        "summary": summary(gates),
        "all_pass": all(g["passed"] for g in gates.values()),
        "gate_split": o.gate_split,
        "sft_seeds": sorted(per_seed),
        "per_seed": {str(k): v for k, v in per_seed.items()},
        "bdhs_sweep": {str(k): v for k, v in seed_sweeps.items()},
        "gate_noise": {str(k): v for k, v in noise.items()},
        "sources": {str(k): v for k, v in sources.items()},
        "reports": reps,
        "seconds": time.perf_counter() - t0,
    }
    with io.atomic_dir(out_dir) as tmp:
        for sub, by_split in [(Path(tmp), rows)] + [(Path(tmp) / f"seed{k}", r) for k, r in seed_rows.items()]:
            for split, r in by_split.items():
                for kind, items in r.items():
                    io.write_jsonl(sub / split / f"{kind}.jsonl", items)
    io.write_json(metrics_path, metrics)
    return metrics
