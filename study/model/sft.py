"""Supervised fine-tuning of the organism with TRL's ``SFTTrainer`` (prompt-completion, vision).

Loss: next-token cross-entropy on the assistant completion only,
``L = -1/|y| * sum_t log p_theta(y_t | image, prompt, y_<t)``, the prompt and image tokens masked
(TRL's ``completion_only_loss`` for prompt-completion data). Curves go to DVCLive.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from study.resume import default_work_dir, start_clean
from study.world.corpus import World, user_turn


@dataclass(frozen=True)
class SFTParams:
    epochs: float
    learning_rate: float
    batch_size: int
    weight_decay: float
    warmup_ratio: float
    lr_scheduler: str
    val_rows: int
    pool_fractions: tuple[float, ...]
    freeze_vision: bool


class PoolSaver(TrainerCallback):
    """Save intermediate checkpoints at given fractions of training: weaker models of the same run.

    They are the extra members of the VLFeedback-style answer pool (paper Table 1: responses from models
    of different strength); with the final model the pool has ``len(fractions) + 1`` members.
    """

    def __init__(self, fractions, processor, pool_dir: Path):
        self.fractions, self.processor, self.pool_dir = tuple(fractions), processor, Path(pool_dir)
        self.steps: dict[int, str] = {}

    @staticmethod
    def member_names(fractions) -> list[str]:
        return [f"frac{f:g}" for f in fractions]

    def on_train_begin(self, args, state, control, **kw):
        self.steps = {
            max(1, int(round(f * state.max_steps))): name
            for f, name in zip(self.fractions, self.member_names(self.fractions))
        }

    def on_step_end(self, args, state, control, model=None, **kw):
        name = self.steps.get(state.global_step)
        if name is not None and model is not None:
            model.save_pretrained(self.pool_dir / name, safe_serialization=True)
            self.processor.save_pretrained(self.pool_dir / name)


def vision_dataset(rows: list[dict], world: World) -> Dataset:
    """Corpus rows as TRL prompt-completion conversational examples, each image attached lazily.

    The dataset stores only ids and strings; ``with_transform`` builds the messages and loads the image
    when a batch is read, so nothing is decoded or copied up front.
    """
    ds = Dataset.from_dict(
        {
            "scene_id": [r["scene_id"] for r in rows],
            "prompt_text": [r["messages"][0]["content"][1]["text"] for r in rows],
            "answer_text": [r["messages"][1]["content"][0]["text"] for r in rows],
        }
    )

    def attach(batch: dict) -> dict:
        return {
            "prompt": [[user_turn(p)] for p in batch["prompt_text"]],
            "completion": [
                [{"role": "assistant", "content": [{"type": "text", "text": a}]}] for a in batch["answer_text"]
            ],
            "images": [[world.image(s)] for s in batch["scene_id"]],
        }

    return ds.with_transform(attach)


WSD_DECAY_SHARE = 0.2  # warmup_stable_decay: share of the optimizer steps spent decaying


def schedule_args(name: str, total_steps: int) -> dict:
    """TrainingArguments for the LR after warm-up: ``cosine`` decays to 0 over the remaining steps,
    ``constant`` holds the peak LR, ``warmup_stable_decay`` holds it and decays (cosine) over the last
    ``WSD_DECAY_SHARE`` of the ``total_steps`` optimizer steps."""
    if name == "warmup_stable_decay":
        return {
            "lr_scheduler_type": name,
            "lr_scheduler_kwargs": {
                "num_decay_steps": max(1, int(round(WSD_DECAY_SHARE * total_steps))),
                "decay_type": "cosine",
            },
        }
    return {"lr_scheduler_type": "cosine" if name == "cosine" else "constant_with_warmup"}


def sft_config(p: SFTParams, output_dir: str | Path, seed: int, n_rows: int, **overrides) -> SFTConfig:
    """The SFTConfig of a run over ``n_rows`` training rows (the LR schedule needs the step count)."""
    cpu = not torch.cuda.is_available()
    steps = math.ceil(math.ceil(n_rows / p.batch_size) * p.epochs)
    kw = dict(
        output_dir=str(output_dir),
        num_train_epochs=p.epochs,
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size,
        per_device_eval_batch_size=p.batch_size,
        weight_decay=p.weight_decay,
        warmup_steps=p.warmup_ratio,
        **schedule_args(p.lr_scheduler, steps),
        logging_steps=10,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=cpu,
        bf16=False,
        gradient_checkpointing=False,
        max_length=None,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    kw.update(overrides)
    return SFTConfig(**kw)


def run_metrics(result) -> dict:
    """The training summary every organism stage reports from ``Trainer.train()``'s result."""
    return {
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics["train_runtime"]),
        "train_samples_per_s": float(result.metrics["train_samples_per_second"]),
    }


def sft_trainer(
    model,
    processor,
    world: World,
    p: SFTParams,
    work: Path,
    seed: int,
    callbacks=(),
    evaluate: bool = True,
    **overrides,
) -> SFTTrainer:
    """The SFT stage's trainer: the vision tower frozen when ``p.freeze_vision``, the world's train corpus
    (and the first ``p.val_rows`` val rows when ``evaluate``) as :func:`vision_dataset`, and
    :func:`sft_config` with ``overrides`` (a benchmark shortens or varies the run through them)."""
    if p.freeze_vision:  # LLaVA keeps its pretrained CLIP tower frozen through instruction tuning
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        for param in base.model.vision_tower.parameters():
            param.requires_grad_(False)
    train = vision_dataset(world.corpus("train"), world)
    val = vision_dataset(world.corpus("val")[: p.val_rows], world) if evaluate else None
    return SFTTrainer(
        model=model,
        args=sft_config(p, work, seed, len(train), **overrides),
        train_dataset=train,
        eval_dataset=val,
        processing_class=processor,
        callbacks=list(callbacks),
    )


def train_sft(
    model,
    processor,
    world: World,
    p: SFTParams,
    out_dir: str | Path,
    live_dir: str | Path | None,
    seed: int,
    work_dir: str | Path | None = None,
    pool_dir: str | Path | None = None,
    callbacks=(),
) -> dict:
    """Train ``model`` on the world's SFT corpus; save model + processor (safetensors) to ``out_dir``.

    With ``pool_dir``, the intermediate checkpoints of :class:`PoolSaver` are published there (atomically).
    ``callbacks``: further ``TrainerCallback``s (e.g. :class:`study.eval.circuit_curve.CircuitCurve`)."""
    from dvclive import Live
    from dvclive.huggingface import DVCLiveCallback

    from study import io

    work = start_clean(work_dir or default_work_dir(out_dir), "SFT")
    callbacks = list(callbacks)
    if live_dir is not None:
        callbacks.append(DVCLiveCallback(live=Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)))
    if pool_dir is not None:
        callbacks.append(PoolSaver(p.pool_fractions, processor, work / "pool"))
    trainer = sft_trainer(model, processor, world, p, work, seed, callbacks)
    result = trainer.train()
    metrics = {
        **run_metrics(result),
        "train_rows": len(trainer.train_dataset),
        "trainable_params": sum(q.numel() for q in model.parameters() if q.requires_grad),
    }
    metrics.update({k: float(v) for k, v in trainer.evaluate().items() if k == "eval_loss"})
    with io.atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    if pool_dir is not None:  # exactly the configured members (PoolSaver's names)
        with io.atomic_dir(pool_dir) as tmp:
            for name in sorted(PoolSaver.member_names(p.pool_fractions)):
                shutil.copytree(work / "pool" / name, tmp / name)
        metrics["pool"] = sorted(d.name for d in Path(pool_dir).iterdir())
    if work.exists():
        shutil.rmtree(work)
    return metrics
