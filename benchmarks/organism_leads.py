"""Try an organism recipe and measure it against the validity gates (the issue's "leads" table).

One lead = a world (params.yaml's ``world`` with overrides), a fresh organism (``model`` overrides),
an optional vision-tower pretraining (``vision`` overrides), optional text pretraining of the LM (``lm``)
and projector alignment (``projector``), SFT (``sft`` overrides), then the grounding
report on ``val`` (gated) and ``ood``, and optionally ``test``, and the BDHS gate's sweep (rho_th = 0 and the
default, one try each, on ``--bdhs-n`` val descriptions from ``--first`` on, with the ratio's paired
bootstrap interval). Everything goes through the study's own
functions, the same ones the DVC stages call; nothing here is a second code path.

    python benchmarks/organism_leads.py --name base --set world.exist_per_scene=0 vision.epochs=0
    python benchmarks/organism_leads.py --name frozen --set sft.freeze_vision=true
    python benchmarks/organism_leads.py --name llava3 --sft-seed 2 --threads 1 \
        --set vision.objective=clip vision.epochs=30 lm.epochs=1 projector.epochs=1 sft.epochs=3

``--tower-only`` stops after the vision-tower pretraining and writes its metrics (patch accuracy on clear and
faint objects, presence AUROC, the tower's probe): choosing a tower knob sees no gate. ``--lm-only`` skips the
tower and stops after the text stage (``lm``), writing its metrics (reading accuracy and AUROC before and after):
the text stage never reads an image and the tower trains only vision weights, so its draw is the one the full lead
makes at the same seed and threads.

Two leads at once: run each with ``--threads 1`` (2 cores), from a frozen copy of the code if you edit
``study/`` meanwhile (a lead imports some modules late).

Prints the gate table and stage times and writes ``<out>/<name>.json`` (the reports, gate values,
timings, the resolved params). Worlds are cached under ``<out>/worlds/<hash of the world params>``, built once
even when leads start together (``cached_world``).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.config import load_params  # noqa: E402
from study.eval.gate_noise import count_margins, gate_intervals, noise_table  # noqa: E402
from study.eval.gates import check_gates, gate_values  # noqa: E402
from study.eval.organism import grounding_report  # noqa: E402
from study.io import write_json  # noqa: E402


def _parse_sets(sets: list[str]) -> dict:
    import yaml

    out: dict = {}
    for s in sets:
        key, _, val = s.partition("=")
        d = out
        *parents, leaf = key.split(".")
        for k in parents:
            d = d.setdefault(k, {})
        d[leaf] = yaml.safe_load(val)
    return out


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        return f"{model}, avx512f={'avx512f' in info}"
    except (OSError, StopIteration):
        return platform.processor()


def cached_world(p, out: Path) -> tuple[Path, float | None]:
    """The world of params ``p`` under ``<out>/worlds/<hash of p.world and p.seed>``: built once, then reused.

    Returns the directory and the seconds spent building (None when it was reused). Leads started together
    share one world: the first builds it under a file lock and the others wait for it, so no lead reads a
    directory that another is replacing.
    """
    from types import SimpleNamespace

    from study.pipeline import StageContext
    from study.world.stage import run_world

    wkey = hashlib.sha256(
        json.dumps({"world": p.world.model_dump(), "seed": p.seed}, sort_keys=True).encode()
    ).hexdigest()[:12]
    wdir = out / "worlds" / wkey
    wdir.parent.mkdir(parents=True, exist_ok=True)
    with open(out / "worlds" / f"{wkey}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (wdir / "spec.json").is_file():
            return wdir, None
        t = time.perf_counter()
        paths = SimpleNamespace(out_dir=str(wdir), metrics_path=str(out / "worlds" / f"{wkey}.json"))
        run_world(StageContext("world", None, p, paths))
        return wdir, time.perf_counter() - t


def _write_partial(args, out: Path, mseed: int, times: dict, row: dict, **stage_metrics) -> None:
    """``--tower-only`` / ``--lm-only``: write ``<out>/<json-name or name>.json`` with the stage's metrics and print
    the row that reads them."""
    write_json(
        out / f"{args.json_name or args.name}.json",
        {"name": args.name, "overrides": args.set, "sft_seed": mseed, "cpu": _cpu(), "times": times, **stage_metrics},
    )
    print(f"== {args.name} ({' '.join(args.set)}) seed {mseed} — {_cpu()}\n{json.dumps(row)}\n{times}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", nargs="*", default=[], help="dotted overrides, e.g. sft.epochs=4")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--out", default="artifacts/leads")
    ap.add_argument("--n-scenes", type=int, default=200)
    ap.add_argument(
        "--first",
        type=int,
        default=0,
        help="first val and ood scene gated (scenes first .. first + n-scenes - 1); raise world.n_val/n_ood to match",
    )
    ap.add_argument("--json-name", default=None, help="write <out>/<json-name>.json instead of <out>/<name>.json")
    ap.add_argument(
        "--reuse-model",
        action="store_true",
        help="a lead killed after SFT: load <out>/models/<name> and only report and gate it",
    )
    ap.add_argument(
        "--tower-only",
        action="store_true",
        help="stop after the vision-tower pretraining: write and print its metrics (no SFT, no gate)",
    )
    ap.add_argument(
        "--lm-only",
        action="store_true",
        help="skip the tower, stop after the text stage (lm): write and print its metrics (no SFT, no gate)",
    )
    ap.add_argument("--test", action="store_true", help="also report the test split (never used to choose)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--sft-seed",
        type=int,
        default=None,
        help="seed of the model's init, vision pretraining and SFT (default: params' seed); the world keeps params' seed",
    )
    ap.add_argument(
        "--curve",
        type=int,
        default=0,
        help="record the yes/no AUROC on 100 val scenes every N SFT steps (study.eval.circuit_curve); 0 = off",
    )
    ap.add_argument(
        "--bdhs-n",
        type=int,
        default=100,
        help="val descriptions of the BDHS gate's sweep (rho_th = 0 and bdhs.rho_th, one try), from --first on; 0 = skip",
    )
    args = ap.parse_args()
    if args.tower_only and args.lm_only:
        ap.error("--tower-only and --lm-only each stop after their own stage: give one")
    torch.set_num_threads(args.threads)

    from study.model.build import n_parameters
    from study.model.sft import train_sft
    from study.model.stage import align_projector_of, base_model, pretrain_language_model, pretrain_tower, sft_params_of
    from study.world.corpus import World
    from study.world.spec import load_spec

    p = load_params(ROOT / "params.yaml", profile=args.profile, overrides=_parse_sets(args.set))
    out = Path(args.out)
    times: dict[str, float] = {}
    wdir, world_s = cached_world(p, out)
    if world_s is not None:
        times["world_s"] = world_s
    world, spec = World(wdir), load_spec(p.world.spec)
    mseed = p.seed if args.sft_seed is None else args.sft_seed
    mdir = out / "models" / args.name
    vis, lm, proj, curve = {}, {}, {}, None
    if args.reuse_model:
        from study.model.load import load_model

        model, processor = load_model(mdir)
        sft = {"reused": str(mdir), "train_rows": 0, "train_runtime_s": 0.0}
    else:
        model, processor = base_model(p.model, spec, mseed)
        vis = {}
        if p.vision.epochs > 0 and not args.lm_only:
            t = time.perf_counter()
            vis = pretrain_tower(p.vision, model, processor, world, spec, mseed)
            times["vision_s"] = time.perf_counter() - t
        if args.tower_only:
            keys = ("val_patch_accuracy", "val_patch_accuracy_clear", "val_patch_accuracy_faint", "val_presence_auroc")
            row = {k: vis.get(k) for k in keys} | {
                "loss_last": vis.get("loss_last"),
                "tower_probe": vis.get("tower_probe"),
            }
            _write_partial(args, out, mseed, times, row, vision=vis)
            return
        lm = proj = {}
        if p.lm.epochs > 0:
            t = time.perf_counter()
            lm = pretrain_language_model(p.lm, model, processor, world, spec, mseed, out / "work" / args.name / "lm")
            times["lm_s"] = time.perf_counter() - t
        if args.lm_only:
            keys = (
                "reading_accuracy_before",
                "reading_accuracy",
                "reading_auroc_before",
                "reading_auroc",
                "train_loss",
            )
            _write_partial(args, out, mseed, times, {k: lm.get(k) for k in keys}, lm=lm)
            return
        if p.projector.epochs > 0:
            t = time.perf_counter()
            proj = align_projector_of(
                p.projector, model, processor, world, mseed, out / "work" / args.name / "projector"
            )
            times["projector_s"] = time.perf_counter() - t
        model.train()
        t = time.perf_counter()
        curve = None
        if args.curve:
            from study.eval.circuit_curve import CircuitCurve

            curve = CircuitCurve(
                processor,
                world,
                spec,
                split="val",
                n_scenes=100,
                n_pos=p.eval.n_pos,
                every=args.curve,
                seed=p.seed,
                batch_size=p.eval.batch_size,
                log=lambda s: print(s, flush=True),
            )
        sft = train_sft(
            model, processor, world, sft_params_of(p.sft), mdir, None, mseed, callbacks=[curve] if curve else ()
        )
        times["sft_s"] = time.perf_counter() - t
        if curve:
            sft["circuit_curve"] = curve.points
            times["curve_s"] = sum(q["seconds"] for q in curve.points)
    model.eval()
    t = time.perf_counter()
    kw = dict(
        n_scenes=args.n_scenes, n_pos=p.eval.n_pos, batch_size=p.eval.batch_size, n_boot=p.eval.n_boot, seed=p.seed
    )
    for split in ("val", "ood"):
        have = len(world.scenes(split))
        if args.first + args.n_scenes > have:
            raise SystemExit(
                f"--first {args.first} --n-scenes {args.n_scenes} needs {args.first + args.n_scenes} {split} scenes, "
                f"the world has {have}: raise world.n_{split}"
            )
    rep, _ = grounding_report(model, processor, world, spec, split="val", first=args.first, **kw)
    ood, _ = grounding_report(model, processor, world, spec, split="ood", first=args.first, **kw)
    test = grounding_report(model, processor, world, spec, split="test", **kw)[0] if args.test else None
    times["report_s"] = time.perf_counter() - t
    sweep_stats = None
    if args.bdhs_n:
        from study.bdhs.sweep import gate_sweep

        t = time.perf_counter()
        sweep_stats = gate_sweep(model, processor, world, spec, p.bdhs, n=args.bdhs_n, seed=p.seed, first=args.first)
        times["bdhs_sweep_s"] = time.perf_counter() - t
    values = gate_values(rep, ood, sweep_stats, p.bdhs.rho_th)
    gates = check_gates(values)
    noise = noise_table(values, gate_intervals(rep, ood, sweep_stats, p.bdhs.rho_th))
    result = {
        "name": args.name,
        "overrides": args.set,
        "sft_seed": mseed,
        "world_dir": str(wdir),
        "times": times,
        "cpu": _cpu(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": n_parameters(model),
        "vision": vis,
        "lm": lm,
        "projector": proj,
        "sft": sft,
        "gates": gates,
        "gate_noise": noise,
        "scenes": {"first": args.first, "n": args.n_scenes},
        "bdhs_sweep": sweep_stats,
        "reports": {"val": rep, "ood": ood, "test": test},
    }
    write_json(out / f"{args.json_name or args.name}.json", result)
    print(f"\n== {args.name} ({' '.join(args.set)}) — {_cpu()}")
    print(
        "times:",
        {k: round(v, 1) for k, v in times.items()},
        "| sft rows/s:",
        round(sft["train_rows"] * p.sft.epochs / max(sft["train_runtime_s"], 1e-9), 1),
    )
    if vis:
        tp = vis.get("tower_probe", {})
        print(
            f"vision ({p.vision.objective} on {p.vision.scenes} scenes): val presence AUROC {vis['val_presence_auroc']:.3f}"
            + (f", retrieval top-1 {vis['val_retrieval_top1']:.3f}" if "val_retrieval_top1" in vis else "")
            + (f"; tower probe on the world: val {tp['val_auroc']:.3f}, ood {tp['ood_auroc']:.3f}" if tp else "")
        )
    if lm:
        print(
            f"lm: reading accuracy {lm['reading_accuracy_before']:.3f} -> {lm['reading_accuracy']:.3f}, "
            f"AUROC {lm['reading_auroc']:.3f}, loss {lm['train_loss']:.3f}"
        )
    if proj:
        print(f"projector alignment: loss {proj['train_loss']:.3f}")
    if curve:
        print(
            "circuit curve (step: val POPE-random AUROC / masked):",
            "  ".join(f"{q['step']}: {q['auroc']:.2f}/{q['auroc_masked']:.2f}" for q in curve.points),
        )
    for k, v in gates.items():
        val = "-" if v["value"] is None else f"{v['value']:.3f}"
        n = noise.get(k, {"ci95": None, "margin": "no interval"})  # the seed gates are not per model
        ci = "" if n["ci95"] is None else f"[{n['ci95'][0]:.3f}, {n['ci95'][1]:.3f}]"
        print(f"  {k:24s} {v['status']:13s} {val:>8s} {ci:>16s}  {n['margin']:12s}  {v['target']}")
    print("  verdicts:", count_margins(noise))
    print(
        f"  ood chair_i {ood['describe']['chair_i']['value']:.3f}; masked AUROC r/p/a "
        + " / ".join(f"{rep[f'pope_{t}']['auroc_masked']['value']:.2f}" for t in ("random", "popular", "adversarial"))
    )


if __name__ == "__main__":
    main()
