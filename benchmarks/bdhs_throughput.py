"""BDHS throughput: the batched sampler vs naive loops.

    python benchmarks/bdhs_throughput.py --model artifacts/models/sft --world artifacts/world [--n 64]

Three runs of :func:`study.bdhs.bdhs_sample` on the same samples, params and seed:

* ``batched``: the sampler as the pipeline runs it (every sentence continuation of every pending sample
  in one batched ``generate`` call per iteration, masked image tokens dropped, one batched embedding);
* ``naive``: Algorithm 1 written literally: one sample at a time; per try one ``generate`` call per
  sentence (batch size 1, masked image tokens zeroed in the attention mask, not dropped) and one
  embedding call for the rejected answer;
* ``naive-gen``: batched embeddings but one sentence continuation per ``generate`` call (isolates the
  generation part).

Sampling makes the number of retries differ slightly between runs, so the generated rows are counted and
rows/s is reported next to samples/s. Time is split into generation (calls to ``generate``) and
embedding (calls to the sentence encoder); the rest is overhead. Without ``--model`` a tiny random LLaVA
is built and the samples are drawn from the world spec.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

import study.bdhs.sampler as sampler
from study.bdhs import BDHSParams, SentenceEncoder, bdhs_sample
from study.bdhs.stage import bdhs_params
from study.config import load_section
from study.model.stage import model_params_of
from study.world.stage import scene_params_of


class Timer:
    """Wraps ``sampler.generate`` and the encoder to accumulate their wall time and generated rows."""

    def __init__(self, encoder: SentenceEncoder):
        self.encoder, self.gen_s, self.emb_s, self.rows = encoder, 0.0, 0.0, 0
        self._generate = sampler.generate

    def generate(self, *args, **kw):
        t = time.perf_counter()
        out = self._generate(*args, **kw)
        self.gen_s += time.perf_counter() - t
        self.rows += len(out)
        return out

    def embed(self, texts):
        t = time.perf_counter()
        out = SentenceEncoder.embed(self.encoder, texts)
        self.emb_s += time.perf_counter() - t
        return out


def run(
    model,
    processor,
    data,
    params: BDHSParams,
    encoder: SentenceEncoder,
    seed: int,
    *,
    per_sample: bool = False,
    drop_masked: bool = True,
) -> dict:
    timer = Timer(encoder)
    gen = timer.generate
    sampler.generate = lambda *a, **kw: gen(*a, drop_masked=drop_masked, **kw)
    encoder.embed = timer.embed
    try:
        t = time.perf_counter()
        if per_sample:
            res = [
                r
                for i in range(len(data[0]))
                for r in bdhs_sample(
                    model, processor, *(d[i : i + 1] for d in data), params, encoder, seed + i, progress=False
                )
            ]
        else:
            res = bdhs_sample(model, processor, *data, params, encoder, seed, progress=False)
        total = time.perf_counter() - t
    finally:
        sampler.generate = timer._generate
        del encoder.embed
    return {
        "seconds": total,
        "samples_per_s": len(res) / total,
        "rows": timer.rows,
        "rows_per_s": timer.rows / total,
        "gen_s": timer.gen_s,
        "gen_rows_per_s": timer.rows / timer.gen_s,
        "gen_share": timer.gen_s / total,
        "emb_share": timer.emb_s / total,
        "mean_iterations": float(np.mean([r.iterations for r in res])),
    }


def load_data(args):
    from study.world.language import describe, vocabulary
    from study.world.spec import load_spec

    spec = load_spec(args.spec)
    if args.model:
        from study.model import load_model

        model, processor = load_model(args.model)
    else:
        from study.model.build import build_model
        from study.model.processor import build_processor

        processor = build_processor(vocabulary(spec), spec.image_size, 6)
        model = build_model(processor, spec.image_size, model_params_of(load_section("model")), seed=0).eval()
    if args.world:
        from study.bdhs.sweep import describe_rows
        from study.world.corpus import World

        images, prompts, chosen, _ = describe_rows(World(args.world), "val", args.n)
    else:
        from study.world.render import render_scene
        from study.world.scenes import generate_split

        scenes = generate_split(spec, scene_params_of(load_section("world")), 0, "test", args.n)
        images = [Image.fromarray(render_scene(spec, s)) for s in scenes]
        chosen = [describe(spec, s, np.random.default_rng(i))[0] for i, s in enumerate(scenes)]
        prompts = ["describe the image in detail ."] * len(scenes)
    return model, processor, (images, prompts, chosen)


def main() -> None:
    ap = argparse.ArgumentParser(description="BDHS throughput: batched vs one continuation at a time")
    ap.add_argument("--model", help="trained checkpoint dir (default: a tiny random LLaVA)")
    ap.add_argument("--world", help="built world dir: chosen = val descriptions (default: drawn from the spec)")
    ap.add_argument("--spec", default="data/world_spec.yaml")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--rho", type=float, default=None, help="default: params.yaml bdhs.rho_th")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1, help="alternating batched/naive repeats (medians reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 avoids OpenMP thrashing when other processes share the 2 cores",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, processor, data = load_data(args)
    encoder = SentenceEncoder()
    params = replace(bdhs_params(load_section("bdhs"), rho_th=args.rho), batch_size=args.batch_size)
    print(
        f"{' '.join(f'{k}={v}' for k, v in vars(args).items())}\ntorch threads {torch.get_num_threads()}, {args.n} samples, "
        f"{sum(len(c.split(' . ')) for c in data[2])} chosen sentences, rho_th {params.rho_th}"
    )
    encoder.embed(data[2][:8])  # warm-up
    n_pol = sum(x.numel() for x in model.parameters())
    n_enc = sum(x.numel() for x in encoder.model.parameters())
    print(f"policy {n_pol / 1e6:.2f} M parameters, similarity encoder {n_enc / 1e6:.1f} M ({n_enc / n_pol:.0f}x)")
    runs = {"batched": [], "naive": [], "naive-gen": []}
    one = replace(params, batch_size=1)
    for _ in range(args.repeats):
        runs["batched"].append(run(model, processor, data, params, encoder, args.seed))
        runs["naive"].append(run(model, processor, data, one, encoder, args.seed, per_sample=True, drop_masked=False))
        runs["naive-gen"].append(run(model, processor, data, one, encoder, args.seed, drop_masked=False))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    for k, m in med.items():
        print(
            f"{k:8s} {m['seconds']:7.1f} s  {m['samples_per_s']:6.2f} samples/s  {m['rows']:5.0f} rows "
            f"{m['rows_per_s']:7.1f} rows/s  generation {m['gen_share']:.0%}  embedding {m['emb_share']:.0%}  "
            f"mean iterations {m['mean_iterations']:.2f}"
        )
    b = med["batched"]
    for name in ("naive", "naive-gen"):
        n = med[name]
        print(
            f"batched vs {name}: {b['samples_per_s'] / n['samples_per_s']:.1f}x samples/s, "
            f"{b['rows_per_s'] / n['rows_per_s']:.1f}x rows/s end to end (target >= 10x); generation alone "
            f"{b['gen_rows_per_s']:.1f} vs {n['gen_rows_per_s']:.1f} rows/s = "
            f"{b['gen_rows_per_s'] / n['gen_rows_per_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
