"""The ``organism`` stage: the grounding report of the SFT organism and its validity gates.

The gated split is ``val`` (``organism.gate_split``); ``test`` is reported beside it and never used to
choose anything; ``ood`` gives the recall ratio. The BDHS gate reads the ``bdhs`` stage's Fig-10 sweep
(``metrics/bdhs.json: sweep``) at ``bdhs.rho_th`` and at 0. The seed gates need the SFT organism trained
from ``organism.sft_seeds`` (>= 3 seeds, the main ``seed`` among them): every other seed is built,
vision-pretrained, passed through the ``lm`` stage and instruction-tuned here with the same params, then
reported and gated the same way. A killed stage keeps each extra seed's finished sub-stages (vision, lm,
sft) in ``<out_dir>.work/seed{k}`` and reuses them when they were written with the same params and world
(:func:`seed_fingerprint`, :mod:`study.resume`); an unfinished sub-stage is trained again from its start.
A pretrained base passed through SFT (``model.base_path``, ``sft.on_base: pass``) has no other seed to
draw: only it is gated (:func:`extra_seeds`).

Outputs: ``metrics/organism.json`` (``gates`` with pass/fail, ``reports`` per split, ``per_seed`` gate
values, ``gate_noise``: each seed's gate values with 95 % intervals, clear or within noise,
:mod:`study.eval.gate_noise`, and ``sources``: where each seed's hallucinated mentions on the gated split
come from, :mod:`study.eval.sources`) and, under ``out_dir``, the rows every number is computed from
(``{split}/pope.jsonl``, ``describe.jsonl``, ``sampled.jsonl``; :mod:`study.eval.organism`; an extra seed's
under ``seed{k}/{split}/``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from study import io
from study.config import (
    EvalSection,
    OrganismSection,
)
from study.eval.gate_noise import gate_intervals, noise_table
from study.eval.gates import check_gates, gate_values, seed_values, summary
from study.eval.organism import grounding_report
from study.eval.sources import describe_sources
from study.model.load import load_model
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


def seed_fingerprint(p, world_dir) -> dict:
    """What determines an extra seed's models (:mod:`study.resume`): the resolved params with that seed, and
    a digest of the world they train on."""
    from study.resume import tree_digest

    return {"params": p.model_dump(mode="json"), "world": tree_digest(world_dir)}


def _seed_model(seed: int, ctx: StageContext, work: Path):
    """Vision pretraining, LM pretraining + projector alignment, and SFT of the organism with another seed,
    with the stage's params (the seed aside), in the stage's own scratch directory ``work/seed{seed}``.

    A sub-stage whose metrics file is there (each writes it after its model, atomically) is kept when the
    directory was written with this seed's fingerprint (:func:`seed_fingerprint`): a killed stage loses at
    most the sub-stage it was in."""
    from study.model.stage import run_lm, run_sft, run_vision
    from study.pipeline import StageContext
    from study.resume import claim_work_dir

    d, p = work / f"seed{seed}", ctx.params.model_copy(update={"seed": seed})
    world_dir = ctx.paths.world_dir
    resume = claim_work_dir(d, seed_fingerprint(p, world_dir), f"the organism's SFT seed {seed}")
    vision = SimpleNamespace(world_dir=world_dir, out_dir=str(d / "vision"), metrics_path=str(d / "vision.json"))
    lm = SimpleNamespace(
        world_dir=world_dir, init_dir=vision.out_dir, out_dir=str(d / "lm"), metrics_path=str(d / "lm.json")
    )
    sft = SimpleNamespace(
        world_dir=world_dir,
        init_dir=lm.out_dir,
        out_dir=str(d / "sft"),
        pool_dir=None,
        live_dir=None,
        metrics_path=str(d / "sft.json"),
    )
    for stage, paths, run in (("vision", vision, run_vision), ("lm", lm, run_lm), ("sft", sft, run_sft)):
        if resume and Path(paths.metrics_path).is_file() and Path(paths.out_dir).is_dir():
            print(f"seed {seed}: {stage} kept from the interrupted run ({paths.out_dir})")
            continue
        resume = False  # a sub-stage trained again invalidates every later one
        run(StageContext(stage, None, p, paths))
    return load_model(d / "sft")


def extra_seeds(p) -> list[int]:
    """The SFT seeds trained here besides the pipeline's model: ``organism.sft_seeds`` but ``seed``; none when
    a pretrained base passes through SFT (``model.base_path``, ``sft.on_base: pass``): one checkpoint, no
    other SFT draw of it exists, so the seed gates read "not measured"."""
    if p.model.base_path and p.sft.on_base == "pass":
        return []
    return [s for s in p.organism.sft_seeds if s != p.seed]


def run_organism(ctx: StageContext) -> dict:
    """Report and gate the SFT organism (module docstring); every other seed of ``organism.sft_seeds`` is
    trained with the stage's params."""
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
    seed_rows = {}
    work = Path(out_dir).with_name(Path(out_dir).name + ".work")
    for s in extra_seeds(p):
        m, proc = _seed_model(s, ctx, work)
        r, seed_rows[s] = _reports(m, proc, world, spec, e, o, seed, (o.gate_split, "ood"))  # the same items
        per_seed[s] = gate_values(r[o.gate_split], r["ood"], None, None)  # the BDHS sweep is of the main seed
        noise[s] = noise_table(per_seed[s], gate_intervals(r[o.gate_split], r["ood"]))
        sources[s] = describe_sources(seed_rows[s][o.gate_split]["describe"], scenes, spec)
    if work.exists():
        import shutil

        shutil.rmtree(work)
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
