"""Online-DPO, Online-BDHS and Mixed-DPO (paper §2.3, §5.4, §5.6): pairs drawn from the CURRENT policy,
trained round by round with TRL's ``DPOTrainer``.

Why not ``trl.experimental.online_dpo.OnlineDPOTrainer``: in TRL 1.16 it takes ``reward_funcs`` only,
i.e. one score per completion, and picks ``chosen = argmax`` with ``first >= second`` -- a tie goes to
the first sample instead of being skipped, and a PAIRWISE judge (our noisy oracle flips the verdict on a
pair, not a score) has no place. It also cannot express Online-BDHS (chosen = ground truth) or Mixed-DPO
(offline pairs in the same batch). So each method here is a small loop around TRL's DPO trainer:

    pi_ref = pi_0 (the initial policy, frozen for the whole run)
    for round r = 0 .. R-1  (R = ceil(epochs * N / round_size); the prompts of round r are the next
                             ``round_size`` rows of a seeded per-epoch permutation):
        build the round's pairs from the current policy pi_r (below)
        one pass of DPOTrainer over them (batch_size pairs per step), loss_type from ``pair_loss``
    -> pi_R, saved merged (LoRA) with safetensors, atomically

One AdamW (projector in its own LR group) and one LR schedule live across all rounds (passed to each
round's trainer through ``optimizers=``), so the rounds form a single optimisation run; the schedule's
length is estimated as R x ceil(round_size / batch_size) steps (skipped ties end it a little early).
The reference is a frozen copy of pi_0 also under LoRA (TRL's adapter-disabling reference cannot be
used across rounds: each round's trainer would add a new "ref" adapter copied from the current one).

Pairs of round r, per method:
  * ``online_dpo``: two samples y1, y2 ~ pi_r(.|x) at ``temperature``; the annotator judges them:
    chosen = its preferred answer, rejected = the other. Ties are skipped: identical answers, and, for a
    judge that decides from scores (``prefer_from_scores``, all of study.prefs' annotators), equal scores
    (for the noisy oracle these are the exact oracle's, so a tie is an oracle tie and a separated pair
    gets the noisy PAIRWISE verdict). A judge with only ``prefer`` decides every non-identical pair.
  * ``mixed_dpo`` (Eq. 4): per sample, alpha ~ Bernoulli(p) (seeded per round): alpha = 1 -> the offline
    pair (y+, y-) of the dataset, alpha = 0 -> an online pair as above (ties skipped), so
    L = E[alpha L(y+, y-) + (1 - alpha) L(y~+, y~-)].
  * ``online_bdhs`` (paper §5.4): chosen = the row's ground truth (SFT answer); rejected = a BDHS sample
    (:func:`study.bdhs.bdhs_sample`) from the current policy. BDHS runs at rounds r with
    ``r % regen_every == 0``, for the prompts of rounds r .. r + regen_every - 1; those rounds use the
    cached rejections (so ``regen_every >= R`` is offline BDHS from pi_0). With ``bdhs_with_external``
    the dataset's own rejected answer is kept too and Avg-DPO (Eq. 5) is applied: rejected = external
    y-, rejected_2 = BDHS y~- ("Online-BDHS ∪ POVID").

Curves (DVCLive, one step per round): the trainer's loss and ``rewards/margins|accuracies`` averaged
over the round, pairs and ties, the annotator's mean score of the sampled answers (the policy's quality
as the judge sees it), of chosen and of rejected, the drawn offline share (Mixed-DPO) and mean answer
length. Resume: after every round the trainable weights, optimiser, scheduler and loop state (round,
BDHS cache, curves) are written atomically to ``work_dir/state``; a new call resumes after the last
finished round.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from study import io
from study.align import common
from study.align.config import AlignParams, check_columns

# ------------------------------------------------------------------------------------------ schedule


def n_rounds(n_rows: int, round_size: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * n_rows / round_size))


def round_indices(n_rows: int, round_size: int, r: int, seed: int) -> list[int]:
    """Rows of round ``r``: positions r*round_size ... of the stream of per-epoch seeded permutations."""
    out = []
    for pos in range(r * round_size, (r + 1) * round_size):
        epoch, k = divmod(pos, n_rows)
        out.append(int(np.random.default_rng([seed, 7919, epoch]).permutation(n_rows)[k]))
    return out


def mixed_assignment(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Eq. 4's alpha per sample: True (offline pair) with probability ``p``, else False (online pair)."""
    return rng.random(n) < p


def _seed(*parts) -> int:
    return int(
        np.random.SeedSequence(
            [int(x) if not isinstance(x, str) else zlib.crc32(x.encode()) for x in parts]
        ).generate_state(1)[0]
        % (2**31 - 1)
    )


# ------------------------------------------------------------------------------------ sampling/judging


def sample_pairs(
    model, processor, images: Sequence, prompts: Sequence[str], p: AlignParams, seed: int
) -> tuple[list[str], list[str]]:
    """Two samples per prompt from the current policy (one batched ``study.model.generate`` call)."""
    from study.model.generate import generate

    was = model.training
    model.eval()
    try:
        outs = generate(
            model,
            processor,
            list(images) * 2,
            list(prompts) * 2,
            do_sample=True,
            temperature=p.temperature,
            max_new_tokens=p.max_new_tokens,
            batch_size=p.gen_batch_size,
            seed=seed,
        )
    finally:
        model.train(was)
    n = len(prompts)
    return outs[:n], outs[n:]


def annotate_pairs(
    annotator, scenes: Sequence, prompts: Sequence[str], a: Sequence[str], b: Sequence[str], stats: dict | None = None
) -> list[dict | None]:
    """The annotator's verdict on each pair: ``{"chosen", "rejected", "score_chosen", "score_rejected"}``,
    or None for a tie, which is skipped. ``stats`` (optional) receives ``score_samples``, the mean score of
    all 2n answers (the policy's quality as the judge sees it).

    Ties: identical answers always; otherwise a judge with ``judge`` (every :mod:`study.prefs.annotators`
    judge) decides, and its None (no preference: equal scores, or for the oracle neither description
    Pareto-dominating the other) is a tie; a judge with only ``prefer_from_scores`` ties on equal scores;
    a judge with only ``prefer`` (purely pairwise) decides every non-identical pair.
    """
    sa = common.score_batch(annotator, scenes, prompts, a)
    sb = common.score_batch(annotator, scenes, prompts, b)
    if stats is not None and (sa or sb):
        stats["score_samples"] = float(np.mean([*sa, *sb]))
    out: list[dict | None] = []
    for s, q, x, y, u, v in zip(scenes, prompts, a, b, sa, sb):
        if x.strip() == y.strip():
            out.append(None)
            continue
        if hasattr(annotator, "judge"):
            k = annotator.judge(s, q, x, y, u, v)
        elif hasattr(annotator, "prefer_from_scores"):  # a hand-made judge deciding from its scores
            k = None if u == v else annotator.prefer_from_scores(s, q, x, y, u, v)
        else:
            k = annotator.prefer(s, q, x, y)
        if k is None:
            out.append(None)
            continue
        if k not in (0, 1):
            raise ValueError(f"annotator.prefer must return 0 or 1, got {k!r}")
        c, r, sc, sr = (x, y, u, v) if k == 0 else (y, x, v, u)
        out.append({"chosen": c, "rejected": r, "score_chosen": sc, "score_rejected": sr})
    return out


def bdhs_params(p: AlignParams):
    """Online-BDHS's sampler knobs: the mask, similarity, tries and noise of its BDHS group (the ``bdhs``
    section's values, :class:`study.align.knobs.BDHSKnobs`); generation length, temperature and batch of its
    sampling group."""
    from study.bdhs import BDHSParams

    return BDHSParams(
        rho_th=p.bdhs_rho_th,
        eps_s=p.bdhs_eps_s,
        n_bdhs=p.bdhs_n,
        noise_steps=p.bdhs_noise_steps,
        max_new_tokens=p.max_new_tokens,
        temperature=p.temperature,
        do_sample=True,
        batch_size=p.gen_batch_size,
    )


def load_encoder():
    from study.bdhs import similarity

    return similarity.load_encoder(None) if hasattr(similarity, "load_encoder") else similarity.SentenceEncoder(None)


def default_bdhs_fn(model, processor, images, prompts, chosen, params, encoder, seed) -> list[str]:
    from study.bdhs import bdhs_sample

    was = model.training
    model.eval()
    try:
        res = bdhs_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False)
    finally:
        model.train(was)
    return [r.rejected for r in res]


# ------------------------------------------------------------------------------------------- state


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: q.detach().cpu().contiguous() for n, q in model.named_parameters() if q.requires_grad}


def save_state(state_dir: Path, model, optimizer, scheduler, loop: dict) -> None:
    from safetensors.torch import save_file

    with io.atomic_dir(state_dir) as tmp:
        save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
        io.save_state({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optim")
        io.write_json(tmp / "loop.json", loop)


def load_state(state_dir: Path, model, optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    weights = load_file(str(state_dir / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RuntimeError(f"resume state {state_dir} does not match the model (unknown {missing[:3]}); delete it")
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w)
    opt = io.load_state(state_dir / "optim")
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    return json.loads((state_dir / "loop.json").read_text())


# --------------------------------------------------------------------------------------------- loop


def _round_rows(
    method,
    p,
    rows,
    idx,
    r,
    total,
    seed,
    model,
    processor,
    world,
    scenes,
    annotator,
    sample_fn,
    bdhs_fn,
    encoder,
    cache,
    stats_out,
) -> list[dict]:
    """The preference rows trained in round ``r`` (see the module docstring) and the round's statistics."""
    out: list[dict] = []
    online_idx = list(idx)
    if method == "mixed_dpo":
        alpha = mixed_assignment(len(idx), p.p, np.random.default_rng([seed, 104723, r]))
        stats_out["drawn_offline"] = int(alpha.sum())
        stats_out["drawn"] = len(idx)
        for i, a in zip(idx, alpha):
            if a:
                out.append(
                    {
                        "prompt": rows[i]["prompt"],
                        "chosen": rows[i]["chosen"],
                        "rejected": rows[i]["rejected"],
                        "scene_id": rows[i]["scene_id"],
                        "source": "offline",
                    }
                )
        online_idx = [i for i, a in zip(idx, alpha) if not a]
    if method in ("online_dpo", "mixed_dpo") and online_idx:
        images = [world.image(rows[i]["scene_id"]) for i in online_idx]
        prompts = [rows[i]["prompt"] for i in online_idx]
        a, b = sample_fn(model, processor, images, prompts, p, _seed(seed, "pairs", r))
        verdicts = annotate_pairs(
            annotator, [scenes[rows[i]["scene_id"]] for i in online_idx], prompts, a, b, stats_out
        )
        sa = [v["score_chosen"] for v in verdicts if v]
        stats_out.update(
            online_pairs=len(online_idx),
            ties=sum(v is None for v in verdicts),
            answer_words=float(np.mean([len(t.split()) for t in (*a, *b)])),
        )
        if sa:
            stats_out["score_chosen"] = float(np.mean([v["score_chosen"] for v in verdicts if v]))
            stats_out["score_rejected"] = float(np.mean([v["score_rejected"] for v in verdicts if v]))
        for i, v in zip(online_idx, verdicts):
            if v is not None:
                out.append(
                    {
                        "prompt": rows[i]["prompt"],
                        "chosen": v["chosen"],
                        "rejected": v["rejected"],
                        "scene_id": rows[i]["scene_id"],
                        "source": "online",
                    }
                )
    if method == "online_bdhs":
        if r % p.regen_every == 0 or any(str(i) not in cache for i in idx):
            block = sorted(
                {
                    i
                    for rr in range(r, min(r + p.regen_every, total))
                    for i in round_indices(len(rows), p.round_size, rr, seed)
                }
                | set(idx)
            )
            rej = bdhs_fn(
                model,
                processor,
                [world.image(rows[i]["scene_id"]) for i in block],
                [rows[i]["prompt"] for i in block],
                [rows[i]["chosen"] for i in block],
                bdhs_params(p),
                encoder,
                _seed(seed, "bdhs", r),
            )
            cache.update({str(i): t for i, t in zip(block, rej)})
            stats_out["regenerated"] = len(block)
        ties = 0
        for i in idx:
            y_minus = cache[str(i)]
            if y_minus.strip() == rows[i]["chosen"].strip():
                ties += 1
                continue
            row = {
                "prompt": rows[i]["prompt"],
                "chosen": rows[i]["chosen"],
                "rejected": y_minus,
                "scene_id": rows[i]["scene_id"],
                "source": "bdhs",
            }
            if p.bdhs_with_external:
                row["rejected"], row["rejected_2"] = rows[i]["rejected"], y_minus
            out.append(row)
        stats_out.update(ties=ties, answer_words=float(np.mean([len(cache[str(i)].split()) for i in idx])))
    return out


def train_online(
    model,
    processor,
    world,
    data,
    p: AlignParams,
    out_dir: str | Path,
    *,
    annotator=None,
    live_dir=None,
    work_dir=None,
    seed: int = 0,
    encoder=None,
    callbacks=(),
    sample_fn: Callable | None = None,
    bdhs_fn: Callable | None = None,
) -> dict:
    """Online-DPO / Online-BDHS / Mixed-DPO (``p.method``); saves the merged policy to ``out_dir``.

    ``data``: rows with ``prompt`` and ``scene_id`` (+ ``chosen`` for online_bdhs, + ``chosen`` and
    ``rejected`` for mixed_dpo). ``annotator``: any object with ``score(scene, prompt, answer)`` and
    ``prefer(scene, prompt, a, b)`` (built from ``p.annotator`` when None; not used by online_bdhs).
    ``sample_fn`` / ``bdhs_fn`` replace the samplers (tests). Returns the run's metrics.
    """
    from transformers.trainer_callback import PrinterCallback

    from study.align.avg_dpo import AvgDPOTrainer
    from study.align.offline import AlignDPOTrainer, default_work_dir, make_dpo_trainer

    method = p.method
    if method not in ("online_dpo", "online_bdhs", "mixed_dpo"):
        raise ValueError(f"train_online runs online_dpo/online_bdhs/mixed_dpo, got {method!r}")
    check_columns(data, method)
    rows = common.as_records(data)
    if method == "online_bdhs" and p.bdhs_with_external:
        check_columns(rows, "mixed_dpo")  # needs the external rejected answer too
    if method != "online_bdhs" and annotator is None:
        annotator = common.make_annotator(p, world, seed)
    if method == "online_bdhs":
        bdhs_fn = bdhs_fn or default_bdhs_fn
        if encoder is None and bdhs_fn is default_bdhs_fn:
            encoder = load_encoder()
    sample_fn = sample_fn or sample_pairs
    scenes = common.scene_lookup(world) if method != "online_bdhs" else {}

    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    state_dir = work / "state"
    # policy and reference (the reference is copied before anything patches or wraps the model; in bf16
    # if p.bf16); trainable parameters in fp32; activation checkpointing comes with each round's trainer
    model = common.prepare_model(model, p)
    ref = common.frozen_copy(model)
    if p.lora:
        model = common.wrap_lora(model, p)
    else:
        common.set_full_finetune(model, p)
    common.upcast_trainable(model)
    model.train()
    total = n_rounds(len(rows), p.round_size, p.epochs)
    steps_per_round = math.ceil(math.ceil(p.round_size / p.batch_size) / p.grad_accum)
    optimizer = common.build_optimizer(model, p)
    scheduler = common.schedule(optimizer, p, total * steps_per_round)
    loop = {"round": -1, "cache": {}, "history": []}
    resumed = state_dir.is_dir()
    if resumed:
        loop = load_state(state_dir, model, optimizer, scheduler)
    live = None
    if live_dir is not None:
        from dvclive import Live

        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=resumed)
        if not resumed:
            live.log_params(
                {
                    "method": method,
                    **{k: v for k, v in p.model_dump().items() if isinstance(v, (int, float, str, bool))},
                }
            )
    avg = method == "online_bdhs" and p.bdhs_with_external
    t0 = time.perf_counter()
    start = loop["round"] + 1
    for r in range(start, total):
        idx = round_indices(len(rows), p.round_size, r, seed)
        stats: dict = {"round": r}
        round_rows = _round_rows(
            method,
            p,
            rows,
            idx,
            r,
            total,
            seed,
            model,
            processor,
            world,
            scenes,
            annotator,
            sample_fn,
            bdhs_fn,
            encoder,
            loop["cache"],
            stats,
        )
        stats["pairs"] = len(round_rows)
        stats["offline_pairs"] = sum(x["source"] == "offline" for x in round_rows)
        if round_rows:
            ds = common.preference_dataset(round_rows, world, with_rejected_2=avg)
            trainer = make_dpo_trainer(
                model,
                processor,
                ds,
                p,
                work / "round",
                _seed(seed, "round", r),
                trainer_cls=AvgDPOTrainer if avg else AlignDPOTrainer,
                ref_model=ref,
                peft=False,
                optimizers=(optimizer, scheduler),
                callbacks=list(callbacks),
                num_train_epochs=1,
                save_strategy="no",
                logging_steps=1,
                trainer_kwargs={"gamma": p.gamma} if avg else None,
            )
            trainer.remove_callback(PrinterCallback)  # per-round curves go to DVCLive, not stdout
            trainer.train()
            steps = [h for h in trainer.state.log_history if "loss" in h]
            for k in ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
                vals = [h[k] for h in steps if k in h]
                if vals:
                    stats[f"train/{k}"] = float(np.mean(vals))
            stats["steps"] = len(steps)
            common.unpatch_forward(model)
            common.unpatch_forward(ref)
            del trainer
        loop["history"].append(stats)
        loop["round"] = r
        if live is not None:
            for k, v in stats.items():
                if k != "round" and isinstance(v, (int, float)):
                    live.log_metric(common.metric_name(k if "/" in k else f"round/{k}"), v)
            live.next_step()
        save_state(state_dir, model, optimizer, scheduler, loop)
    if live is not None:
        live.end()
    hist = loop["history"]
    metrics = {
        "rounds": total,
        "pairs": int(sum(h["pairs"] for h in hist)),
        "ties": int(sum(h.get("ties", 0) for h in hist)),
        "wall_s": time.perf_counter() - t0,
        "resumed_at_round": start if resumed else None,
    }
    if method == "mixed_dpo":
        drawn = sum(h.get("drawn", 0) for h in hist)
        metrics["offline_share_drawn"] = sum(h.get("drawn_offline", 0) for h in hist) / max(drawn, 1)
        metrics["offline_share_trained"] = sum(h["offline_pairs"] for h in hist) / max(metrics["pairs"], 1)
    for k in (
        "train/loss",
        "train/rewards/margins",
        "train/rewards/accuracies",
        "score_samples",
        "score_chosen",
        "score_rejected",
        "answer_words",
    ):
        vals = [h[k] for h in hist if k in h]
        if vals:
            metrics[f"{k}_first"], metrics[f"{k}_last"] = float(vals[0]), float(vals[-1])
    metrics["history"] = hist
    common.save_policy(
        model,
        processor,
        out_dir,
        {
            "method": method,
            "loss_type": p.loss_type,
            "params": p.model_dump(),
            "seed": seed,
            "rows": len(rows),
            "metrics": {k: v for k, v in metrics.items() if k != "history"},
        },
    )
    if work.exists():
        shutil.rmtree(work)
    return metrics
