"""The ``reward_models`` stage: the paper's Table 7 analog (do reward models transfer across datasets?).

For every recipe a in ``rm.recipes`` a reward model r_a is trained on a's train pairs with TRL's
``RewardTrainer`` (Bradley-Terry loss  -log sigma(r(x, y+) - r(x, y-)), backbone initialised from the SFT
model, :mod:`study.prefs.reward_model`) and scored on the held-out (val) pairs of every recipe b of
``prefs.heldout_recipes`` (written by the ``preferences`` stage):

    acc(a -> b) = share of held-out pairs of b with r_a(x, y+) > r_a(x, y-)   (ties decided at random)

with a 95 % Wilson interval (n pairs). The paper found that RMs from construction-type data (POVID,
RLHF-V: corruptions or corrections of one answer) do not transfer to ranking-type data (VLFeedback) and
vice versa (finding F7); the diagonal is in-distribution accuracy.

How each RM trains (full fine-tuning or LoRA, fp32 or bf16, activation checkpointing) is set by ``rm.lora``,
``rm.bf16``, ``rm.gradient_checkpointing`` (the ``gpu`` profile turns all three on; the CPU study none).
"""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from study import io
from study.config import RMSection
from study.prefs.annotators import RewardModelAnnotator, annotator_accuracy
from study.prefs.reward_model import RMParams, load_reward_model, train_reward_model
from study.prefs.schema import load_prefs
from study.world.corpus import World

if TYPE_CHECKING:
    from study.pipeline import StageContext


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    if n <= 0:
        raise ValueError("wilson needs n > 0")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def rm_params_of(r: RMSection, **overrides) -> RMParams:
    """The reward-model training knobs of the ``rm`` section (``overrides`` replace some)."""
    return RMParams(**{**{k: getattr(r, k) for k in RMParams.__dataclass_fields__}, **overrides})


def run_reward_models(ctx: StageContext) -> dict:
    """Train one RM per ``rm.recipes`` entry, score each on every held-out set; write ``paths.metrics_path``.

    Metrics: ``{"accuracy": {train: {eval: {"value", "ci95", "n", "ties"}}}, "train": {train: {...}}}``.
    """
    r, seed, x = ctx.params.rm, ctx.params.seed, ctx.paths
    world_dir, sft_dir, train_dir, heldout_dir = x.world_dir, x.sft_dir, x.train_dir, x.heldout_dir
    out_dir, metrics_path = x.out_dir, x.metrics_path
    torch.set_num_threads(r.threads)
    world = World(world_dir)
    heldout_files = sorted(Path(heldout_dir).glob("*.parquet"))
    if not heldout_files:
        raise FileNotFoundError(f"no held-out pairs in {heldout_dir} (run the `preferences` stage)")
    heldout = {f.stem: load_prefs(f, world) for f in heldout_files}
    params = rm_params_of(r)
    device = "cuda" if torch.cuda.is_available() else None  # score on the GPU the RM trained on (CPU: as loaded)
    metrics: dict = {"accuracy": {}, "train": {}}
    with io.atomic_dir(out_dir) as tmp:
        for name in r.recipes:
            rows = load_prefs(Path(train_dir) / f"{name}.parquet", world)
            tm = train_reward_model(
                sft_dir, rows, world, Path(tmp) / name, params, seed=seed, work_dir=Path(tmp) / f"{name}.work"
            )
            metrics["train"][name] = {
                k: v for k, v in tm.items() if k in ("train_loss", "steps", "train_pairs", "train_runtime_s")
            }
            if torch.cuda.is_available():  # the trainer's GPU memory goes before the RM is scored there
                gc.collect()
                torch.cuda.empty_cache()
            model, processor = load_reward_model(Path(tmp) / name, device=device)
            judge = RewardModelAnnotator(model, processor, world, name=f"rm_{name}", seed=seed)
            metrics["accuracy"][name] = {}
            for ev, pairs in heldout.items():
                d = annotator_accuracy(judge, pairs, world, seed=seed, return_details=True)
                k = round(d["accuracy"] * d["n"])
                metrics["accuracy"][name][ev] = {
                    "value": d["accuracy"],
                    "ci95": list(wilson(k, d["n"])),
                    "n": d["n"],
                    "ties": d["ties"],
                }
            del judge, model  # one reward model in memory at a time
    io.write_json(metrics_path, metrics)
    return metrics


def transfer_table(metrics: dict):
    """Train recipe x held-out recipe accuracy as a formatted DataFrame (percent with CI)."""
    import pandas as pd

    acc = metrics["accuracy"]
    cols = sorted({e for row in acc.values() for e in row})
    cell = lambda v: f"{100 * v['value']:.1f} [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"
    df = pd.DataFrame({e: {t: cell(acc[t][e]) for t in acc if e in acc[t]} for e in cols})
    df.index.name = "RM trained on \\ evaluated on"
    return df
