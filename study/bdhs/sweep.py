"""Calibrate rho_th on a trained organism: ``python -m study.bdhs.sweep --model DIR --world DIR``.

For each rho_th: one BDHS run with N_BDHS = 1 (the first-iteration rejection of EVERY sample; its draws
equal iteration 1 of the full run, see :mod:`.sampler` on seeding) and one with N_BDHS = ``--n-bdhs`` (with
N_BDHS = 1 that run is the first one, not sampled again).
Reported per rho_th: E[#visible] = k (1 - rho_th) and the measured mean, the share of semantically
different rejections after iteration 1 and after all iterations (:func:`.stats.acceptance_curve`), and the
hallucination content of the iteration-1 and of the accepted rejections (:func:`.stats.content_summary`).
Chosen answers are the ground-truth descriptions (``kind == "describe"``) of the ``--split`` corpus.

With rho_th = 0 among the values swept, each row also carries the organism's BDHS gate statistic against
it, the ratio of new hallucinated objects per iteration-1 regeneration, ``r = sum_i h_i(rho) / sum_i
h_i(0)`` over the same descriptions i, with a 95 % paired percentile bootstrap interval
(``it1_new_ratio_vs_0``, ``_lo``, ``_hi``; scenes resampled with replacement, both sums on the same draw,
:func:`study.eval.bootstrap.bootstrap_ci`); absent when rho_th = 0 produced no new hallucination (no ratio).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd
import torch

from study.bdhs.sampler import BDHSParams, bdhs_sample
from study.bdhs.similarity import SentenceEncoder
from study.bdhs.stats import acceptance_curve, content_summary, content_table
from study.eval.bootstrap import bootstrap_ci, ratio
from study.model.load import load_model
from study.world.corpus import World
from study.world.spec import load_spec


def describe_rows(world: World, split: str, n: int, first: int = 0) -> tuple[list, list[str], list[str], list]:
    """Images, prompts, ground-truth descriptions and scenes of the ``split`` corpus's description rows
    ``first .. first + n - 1`` (fewer when the corpus ends first and ``first`` is 0)."""
    rows = [r for r in world.corpus(split) if r["kind"] == "describe"]
    if first and len(rows) < first + n:
        raise ValueError(f"the {split} corpus has {len(rows)} description rows; rows {first}..{first + n - 1} asked")
    rows = rows[first : first + n]
    scenes = {s.scene_id: s for s in world.scenes(split)}
    return (
        [world.image(r["scene_id"]) for r in rows],
        [r["messages"][0]["content"][1]["text"] for r in rows],
        [r["messages"][1]["content"][0]["text"] for r in rows],
        [scenes[r["scene_id"]] for r in rows],
    )


def sweep(
    model,
    processor,
    world: World,
    spec,
    rhos,
    params: BDHSParams,
    *,
    split="val",
    n=200,
    encoder=None,
    seed=0,
    first=0,
    n_boot=1000,
) -> pd.DataFrame:
    """One row per rho_th of ``rhos``; every other BDHS knob (eps_s, N_BDHS, noise steps, temperature,
    max_new_tokens, batch size) is ``params``' (the study's ``bdhs`` section through
    :func:`study.prefs.bdhs.bdhs_params`), so the sweep samples as the BDHS dataset does. Descriptions
    ``first .. first + n - 1`` of ``split``; ``n_boot`` replicates for the ratio's interval (module docstring)."""
    images, prompts, chosen, scenes = describe_rows(world, split, n, first)
    encoder = encoder or SentenceEncoder()
    k = int(model.config.image_seq_length)
    out, new_it1 = [], {}
    for rho in rhos:
        t = time.time()
        it1 = bdhs_sample(
            model,
            processor,
            images,
            prompts,
            chosen,
            replace(params, rho_th=rho, n_bdhs=1),
            encoder,
            seed,
            progress=False,
        )
        full = (  # with N_BDHS = 1 the full run is iteration 1 itself: the same draws (module docstring)
            it1
            if params.n_bdhs == 1
            else bdhs_sample(
                model, processor, images, prompts, chosen, replace(params, rho_th=rho), encoder, seed, progress=False
            )
        )
        curve = acceptance_curve(full, params.eps_s, params.n_bdhs)
        t1 = content_table(it1, chosen, scenes, spec)
        new_it1[rho] = t1["new_hallucinated"].to_numpy(dtype=float)
        s1, sf = content_summary(t1), content_summary(content_table(full, chosen, scenes, spec))
        out.append(
            {
                "rho_th": rho,
                "noise_steps": params.noise_steps,
                "visible_expected": k * (1 - rho),
                "visible_mean": s1["mean_visible_tokens"],
                "different_it1": float(curve["different"].iloc[0]),
                "different_final": float(curve["different"].iloc[-1]),
                "mean_iterations": sum(r.iterations for r in full) / len(full),
                **{
                    f"it1_{key}": s1[key]
                    for key in (
                        "chair_i",
                        "chair_s",
                        "new_hallucinated_per_answer",
                        "context_share",
                        "colour_change_rate",
                    )
                },
                **{f"final_{key}": sf[key] for key in ("chair_i", "new_hallucinated_per_answer", "context_share")},
                "chosen_chair_i": s1["chosen_chair_i"],
                "seconds": time.time() - t,
            }
        )
        print(pd.DataFrame(out[-1:]).round(3).to_string(index=False), flush=True)
    if 0.0 in new_it1 and new_it1[0.0].sum() > 0:  # no ratio without a new hallucination at rho_th = 0
        groups = [sc.scene_id for sc in scenes]
        for row in out:
            stats = {"at": new_it1[row["rho_th"]], "zero": new_it1[0.0]}
            r, lo, hi = bootstrap_ci(stats, lambda t: ratio(t["at"], t["zero"]), n_boot, seed, groups)
            row.update(it1_new_ratio_vs_0=r, it1_new_ratio_vs_0_lo=lo, it1_new_ratio_vs_0_hi=hi)
    return pd.DataFrame(out)


def sweep_stats(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{sweep_key(rho_th): {column: value}}`` of a :func:`sweep` table: the shape of ``metrics/bdhs.json: sweep``
    that :func:`study.eval.gates.gate_values` reads."""
    from study.eval.gates import sweep_key

    return {
        sweep_key(r["rho_th"]): {k: float(v) for k, v in r.items() if k != "rho_th"} for r in table.to_dict("records")
    }


def gate_sweep(
    model, processor, world: World, spec, b, *, n: int, seed: int, first: int = 0, encoder=None
) -> dict[str, dict[str, float]]:
    """The BDHS gate's statistics of one model (:func:`sweep_stats`): iteration 1 only (N_BDHS = 1) at rho_th = 0
    and ``b.rho_th`` on ``val`` descriptions ``first .. first + n - 1``, every other knob the ``bdhs`` section
    ``b``'s. Iteration 1 draws as in the full run, so at those two points its ``it1_*`` columns equal the ``bdhs``
    stage's sweep of the same model, ``n`` and ``seed`` (that stage also sweeps more rho_th and every iteration).
    ``encoder``: default the section's (``b.encoder_path``, as the stage loads it)."""
    from study.bdhs.similarity import load_encoder
    from study.bdhs.stage import bdhs_params

    encoder = encoder or load_encoder(b.encoder_path or None)
    rhos = sorted({0.0, b.rho_th})
    params = bdhs_params(b, n_bdhs=1)
    return sweep_stats(
        sweep(model, processor, world, spec, rhos, params, split="val", n=n, encoder=encoder, seed=seed, first=first)
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--world", required=True)
    ap.add_argument("--spec", default="data/world_spec.yaml")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--first", type=int, default=0, help="first description row of --split swept")
    ap.add_argument("--params", default="params.yaml", help="the BDHS knobs not given below: its bdhs section")
    ap.add_argument("--rho", type=float, nargs="+", default=None, help="default: bdhs.sweep_rho")
    ap.add_argument("--noise-steps", type=int, default=None, help="default: bdhs.noise_steps")
    ap.add_argument("--n-bdhs", type=int, default=None, help="default: bdhs.n_bdhs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the table as CSV here")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 avoids thread thrashing when other processes share the cores)",
    )
    a = ap.parse_args(argv)
    from study.bdhs.stage import bdhs_params
    from study.config import load_params

    section = load_params(a.params).bdhs
    rhos = section.sweep_rho if a.rho is None else a.rho
    params = bdhs_params(section, rho_th=rhos[0], n_bdhs=a.n_bdhs)
    params = params if a.noise_steps is None else replace(params, noise_steps=a.noise_steps)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, processor = load_model(a.model)
    table = sweep(
        model,
        processor,
        World(a.world),
        load_spec(a.spec),
        rhos,
        params,
        split=a.split,
        n=a.n,
        seed=a.seed,
        first=a.first,
    )
    print(table.round(3).to_markdown(index=False) if _has_tabulate() else table.round(3).to_string(index=False))
    if a.out:
        table.to_csv(a.out, index=False)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
