"""Overhead of TRL's DPO step against a plain PyTorch step computing the same loss on the same batch,
and the wall time of one offline DPO epoch through :mod:`study.align` (a script, not a test).

    python benchmarks/dpo_overhead.py                        # tiny random organism, tiny world (built in /tmp)
    python benchmarks/dpo_overhead.py --model /tmp/exp/sft --world /tmp/exp/world --pairs 512

Timed, per optimisation step on one batch of ``--batch`` pairs (median of ``--steps`` after ``--warmup``):
  * collate: TRL's ``DataCollatorForVisionPreference`` (image processing + tokenisation of the batch);
  * trl step: ``DPOTrainer.training_step`` (fused log-prob head, reference forward, loss, metrics,
    backward) + ``optimizer.step()``;
  * plain step: :func:`study.align.losses.plain_pair_loss` (full-logit forwards of policy and reference,
    ``log_softmax``/gather, the same loss) + backward + ``optimizer.step()``, same AdamW settings.
Both start from the same weights and batch and take the same AdamW steps; their first three losses are
printed and must agree (the first is log 2 for DPO: policy = reference).
Then one epoch of :func:`study.align.offline.train_offline` over ``--pairs`` pairs (collation, logging
and the final save included) gives pairs/s.

Pairs: chosen = the ground-truth description of a train scene, rejected = the same with its first
object word swapped for another category (the tests' hand-made pairs).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from study.config import align_params, load_section
from study.model.stage import model_params_of
from study.world.stage import corpus_params_of, scene_params_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def handmade_pairs(world, spec, n: int) -> list[dict]:
    lexicon = spec.word_to_category()
    names = sorted(spec.category_names)
    out = []
    for r in world.corpus("train"):
        if r["kind"] != "describe":
            continue
        chosen = r["messages"][1]["content"][0]["text"]
        words = chosen.split()
        for i, w in enumerate(words):
            if w in lexicon:
                words[i] = next(c for c in names if c != lexicon[w] and c not in words)
                break
        rejected = " ".join(words)
        if rejected == chosen:
            continue
        out.append(
            {
                "prompt": r["messages"][0]["content"][1]["text"],
                "chosen": chosen,
                "rejected": rejected,
                "scene_id": r["scene_id"],
            }
        )
        if len(out) == n:
            break
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="local LLaVA checkpoint (default: tiny random organism)")
    ap.add_argument("--world", default=None, help="built world dir (default: a small world built in a temp dir)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=128, help="pairs in the timed epoch")
    ap.add_argument("--loss", default="sigmoid", choices=["sigmoid", "ipo", "hinge"])
    ap.add_argument("--lora", action="store_true", help="LoRA instead of full fine-tuning in the epoch run")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from study.align import common
    from study.align.config import make_params
    from study.align.losses import plain_pair_loss
    from study.align.offline import make_dpo_trainer, train_offline
    from study.world.corpus import World, build_world
    from study.world.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="dpo_overhead."))
    spec = load_spec(Path(__file__).resolve().parents[1] / "data" / "world_spec.yaml")
    if a.world:
        world = World(a.world)
    else:
        build_world(
            spec,
            tmp / "world",
            seed=0,
            sizes={"train": max(a.pairs, a.batch), "val": 4, "test": 4, "ood": 4},
            scene_params=scene_params_of(load_section("world")),
            corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
            faint_alpha=0.3,
            noise_std=6.0,
        )
        world = World(tmp / "world")

    def fresh():
        if a.model:
            from study.model.load import load_model

            return load_model(a.model)
        from study.model.build import build_model
        from study.model.processor import build_processor
        from study.world.language import vocabulary

        proc = build_processor(vocabulary(spec), spec.image_size, 6)
        return build_model(
            proc,
            spec.image_size,
            model_params_of(
                load_section("model"),
                text_hidden=32,
                text_layers=1,
                vision_hidden=16,
                vision_layers=1,
                text_intermediate=64,
            ),
            seed=0,
        ), proc

    pairs = handmade_pairs(world, spec, max(a.pairs, a.batch))
    p = align_params(
        {"sigmoid": "dpo", "ipo": "ipo", "hinge": "slic"}[a.loss],
        lora=False,
        learning_rate=1e-5,
        projector_lr=1e-5,
        batch_size=a.batch,
        epochs=1,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        logging_steps=10**6,
        save_steps=10**6,
    )

    # --- one step, TRL vs plain ------------------------------------------------------------------------
    model, proc = fresh()
    model.train()
    trainer = make_dpo_trainer(model, proc, common.preference_dataset(pairs[: a.batch], world), p, tmp / "trl", 0)
    examples = [trainer.train_dataset[i] for i in range(a.batch)]
    t_coll = []
    for _ in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        batch = trainer.data_collator(copy.deepcopy(examples))
        t_coll.append(time.perf_counter() - t0)
    opt = trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which we bypass to time one step
    trl_times, trl_losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = trainer.training_step(trainer.model, dict(batch))
        opt.step()
        opt.zero_grad(set_to_none=True)
        trl_times.append(time.perf_counter() - t0)
        trl_losses.append(float(loss.detach()))

    plain, _ = fresh()
    common.set_full_finetune(plain, p)
    plain.train()
    ref = common.frozen_copy(plain)
    popt = torch.optim.AdamW(common.param_groups(plain, p.learning_rate, p.projector_lr), lr=p.learning_rate)
    plain_times, plain_losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = plain_pair_loss(plain, ref, dict(batch), p.beta, p.loss_type)
        loss.backward()
        popt.step()
        popt.zero_grad(set_to_none=True)
        plain_times.append(time.perf_counter() - t0)
        plain_losses.append(float(loss.detach()))

    med = lambda xs: statistics.median(xs[a.warmup :])  # noqa: E731
    n_params = sum(q.numel() for q in plain.parameters())
    res = {
        "model": a.model or "tiny random organism",
        "params": n_params,
        "batch_pairs": a.batch,
        "threads": a.threads,
        "collate_ms": 1e3 * med(t_coll),
        "trl_step_ms": 1e3 * med(trl_times),
        "plain_step_ms": 1e3 * med(plain_times),
        "trl_losses": trl_losses[:3],
        "plain_losses": plain_losses[:3],
    }
    res["trl_over_plain"] = res["trl_step_ms"] / res["plain_step_ms"]

    # --- one offline epoch through study.align ----------------------------------------------------------
    model, proc = fresh()
    pe = make_params(p, lora=a.lora, lora_r=16, lora_alpha=32)
    t0 = time.perf_counter()
    m = train_offline(model, proc, world, pairs[: a.pairs], pe, tmp / "epoch_out", seed=0)
    wall = time.perf_counter() - t0
    res.update(
        {
            "epoch_pairs": a.pairs,
            "epoch_lora": a.lora,
            "epoch_wall_s": wall,
            "epoch_trainer_runtime_s": m["train_runtime_s"],
            "epoch_pairs_per_s": a.pairs / m["train_runtime_s"],
        }
    )

    print(
        f"\nDPO overhead ({res['model']}, {n_params:,} parameters, batch {a.batch} pairs, {a.threads} thread(s), "
        f"loss {a.loss})"
    )
    print(f"  collate (TRL vision collator)   {res['collate_ms']:8.1f} ms / batch")
    fmt = lambda xs: ", ".join(f"{x:.6f}" for x in xs[:3])  # noqa: E731
    print(f"  TRL DPOTrainer.training_step    {res['trl_step_ms']:8.1f} ms / step   (losses {fmt(trl_losses)})")
    print(f"  plain PyTorch step, same loss   {res['plain_step_ms']:8.1f} ms / step   (losses {fmt(plain_losses)})")
    print(f"  TRL / plain                     {res['trl_over_plain']:8.2f} x")
    print(
        f"  offline epoch, {a.pairs} pairs ({'LoRA' if a.lora else 'full FT'}): {wall:.1f} s wall, trainer "
        f"{m['train_runtime_s']:.1f} s = {res['epoch_pairs_per_s']:.1f} pairs/s"
    )
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return res


if __name__ == "__main__":
    main()
