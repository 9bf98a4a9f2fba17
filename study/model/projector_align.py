"""Align the projector to a language model that can already read, as LLaVA's first training stage does.

LLaVA's stage 1 ("feature alignment") freezes both the CLIP tower and the LLM and trains only the
projector on image-caption pairs: the projector learns to write image features as token embeddings the
LLM's existing circuits read. Here the frozen LLM is the text-pretrained organism
(:mod:`study.model.lm_pretrain`), the frozen tower the pretrained one (:mod:`study.model.vision_pretrain`),
and the pairs are the SFT corpus's description rows of the train split (``kind == "describe"``).

Objective: completion-only next-token cross-entropy of the description given the image and prompt (as in
SFT), with gradients only into ``multi_modal_projector``. Afterwards every parameter is trainable again
(SFT decides what it freezes).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from trl import SFTTrainer

from study.world.corpus import World


@dataclass(frozen=True)
class ProjectorAlignParams:
    epochs: float
    learning_rate: float
    batch_size: int
    weight_decay: float
    warmup_ratio: float
    lr_scheduler: str


def align_projector(model, processor, world: World, p: ProjectorAlignParams, seed: int, work_dir: str | Path) -> dict:
    """Train only ``model``'s projector on the train descriptions; returns metrics (loss, throughput)."""
    from study.model.sft import SFTParams, run_metrics, sft_config, vision_dataset

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for q in base.parameters():
        q.requires_grad_(False)
    for q in base.model.multi_modal_projector.parameters():
        q.requires_grad_(True)
    rows = [r for r in world.corpus("train") if r["kind"] == "describe"]
    sp = SFTParams(  # the SFT schedule of this stage's own knobs; the last three are SFT-only, not read here
        epochs=p.epochs,
        learning_rate=p.learning_rate,
        batch_size=p.batch_size,
        weight_decay=p.weight_decay,
        warmup_ratio=p.warmup_ratio,
        lr_scheduler=p.lr_scheduler,
        val_rows=0,
        pool_fractions=(),
        freeze_vision=False,
    )
    args = sft_config(sp, work_dir, seed, len(rows), eval_strategy="no")
    trainer = SFTTrainer(model=model, args=args, train_dataset=vision_dataset(rows, world), processing_class=processor)
    result = trainer.train()
    trainable = sum(q.numel() for q in base.parameters() if q.requires_grad)
    for q in base.parameters():
        q.requires_grad_(True)
    if Path(work_dir).exists():
        shutil.rmtree(work_dir)
    return {"train_rows": len(rows), **run_metrics(result), "trainable_params": trainable}
