"""Supervised fine-tuning of the organism with TRL's ``SFTTrainer`` (prompt-completion, vision).

Loss: next-token cross-entropy on the assistant completion only,
``L = -1/|y| * sum_t log p_theta(y_t | image, prompt, y_<t)``, the prompt and image tokens masked
(TRL's ``completion_only_loss`` for prompt-completion data). Curves go to DVCLive.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from trl import SFTConfig, SFTTrainer

from study.world.corpus import World


@dataclass(frozen=True)
class SFTParams:
    epochs: float = 4.0
    learning_rate: float = 2e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    val_rows: int = 300


class VisionSFTDataset(Dataset):
    """Corpus rows as TRL prompt-completion conversational examples with their image attached lazily."""

    def __init__(self, rows: list[dict], world: World):
        self.rows, self.world = rows, world

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        if i >= len(self.rows):
            raise IndexError(i)
        r = self.rows[i]
        return {"prompt": r["messages"][:1], "completion": r["messages"][1:],
                "images": [self.world.image(r["scene_id"])]}


def sft_config(p: SFTParams, output_dir: str | Path, seed: int, **overrides) -> SFTConfig:
    cpu = not torch.cuda.is_available()
    kw = dict(
        output_dir=str(output_dir), num_train_epochs=p.epochs, learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size, per_device_eval_batch_size=p.batch_size,
        weight_decay=p.weight_decay, warmup_ratio=p.warmup_ratio, lr_scheduler_type="cosine",
        logging_steps=10, eval_strategy="epoch", save_strategy="no", report_to=[], seed=seed, data_seed=seed,
        use_cpu=cpu, bf16=False, gradient_checkpointing=False, max_length=None, remove_unused_columns=False,
        dataloader_num_workers=0, disable_tqdm=False, dataset_kwargs={"skip_prepare_dataset": True},
    )
    kw.update(overrides)
    return SFTConfig(**kw)


def train_sft(model, processor, world: World, p: SFTParams, out_dir: str | Path, live_dir: str | Path | None,
              seed: int, work_dir: str | Path | None = None) -> dict:
    """Train ``model`` on the world's SFT corpus; save model + processor (safetensors) to ``out_dir``."""
    from dvclive import Live
    from dvclive.huggingface import DVCLiveCallback

    from study import io

    train = VisionSFTDataset(world.corpus("train"), world)
    val = VisionSFTDataset(world.corpus("val")[: p.val_rows], world)
    work = Path(work_dir or Path(out_dir).with_name(Path(out_dir).name + ".work"))
    callbacks = []
    if live_dir is not None:
        callbacks.append(DVCLiveCallback(live=Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)))
    trainer = SFTTrainer(model=model, args=sft_config(p, work, seed), train_dataset=train, eval_dataset=val,
                         processing_class=processor, callbacks=callbacks)
    result = trainer.train()
    metrics = {"train_loss": float(result.training_loss), "train_runtime_s": float(result.metrics["train_runtime"]),
               "train_rows": len(train)}
    metrics.update({k: float(v) for k, v in trainer.evaluate().items() if k == "eval_loss"})
    with io.atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    if work.exists():
        import shutil
        shutil.rmtree(work)
    return metrics
