"""Avg-DPO (the paper's Eq. 5): one chosen answer, two rejected answers, the two pair losses averaged.

    L = E[ gamma * L_pair(x, y+, y-) + (1 - gamma) * L_pair(x, y+, y~-) ],   gamma = 0.5 by default

with L_pair the DPO loss (or IPO / SLiC via ``pair_loss``). This follows POVID's public code (the two
DPO losses averaged), not the POVID paper's weighted sum of log-probabilities (the paper's footnote 1).

How it is computed, exactly, on top of TRL:

* :class:`AvgPreferenceCollator` runs TRL's own ``DataCollatorForVisionPreference`` twice on the batch,
  once with ``rejected`` and once with ``rejected_2`` as the rejected answer, and returns both batches
  (``{"pair_a": ..., "pair_b": ...}``); the Trainer moves the nested dict to the device unchanged.
* :class:`AvgDPOTrainer.compute_loss` calls TRL's ``DPOTrainer.compute_loss`` on each batch (TRL's
  log-probs, reference forward and loss, each already averaged over the batch) and returns
  ``gamma * L_a + (1 - gamma) * L_b``. Since both halves are means over the same B pairs, this is Eq. 5's
  expectation over the batch, for any gamma. (A half with weight 0 is not computed.)

Cost: the chosen answer is scored twice (once per half), i.e. 4B sequences per step instead of 3B; in
exchange every number is TRL's. The logged ``rewards/*`` metrics average both halves;
``avg_dpo/loss_a`` and ``avg_dpo/loss_b`` are logged separately.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

from study.align import common
from study.align.config import AlignParams, check_columns
from study.align.offline import AlignDPOTrainer, default_work_dir, make_dpo_trainer, run_dpo_trainer


@dataclass
class AvgPreferenceCollator:
    """Two TRL vision preference batches from examples with ``rejected`` and ``rejected_2``."""

    processor: object
    max_length: int | None = None

    def __post_init__(self):
        self.base = DataCollatorForVisionPreference(processor=self.processor, max_length=self.max_length)

    @staticmethod
    def _pair(examples: list[dict], key: str) -> list[dict]:
        # TRL's collator rewrites the message lists in place, so each half gets its own copies
        return [
            {
                "prompt": copy.deepcopy(e["prompt"]),
                "chosen": copy.deepcopy(e["chosen"]),
                "rejected": copy.deepcopy(e[key]),
                "images": list(e["images"]),
            }
            for e in examples
        ]

    def __call__(self, examples: list[dict]) -> dict:
        if "rejected_2" not in examples[0]:
            raise KeyError("Avg-DPO examples need a 'rejected_2' answer")
        return {
            "pair_a": self.base(self._pair(examples, "rejected")),
            "pair_b": self.base(self._pair(examples, "rejected_2")),
        }


class AvgDPOTrainer(AlignDPOTrainer):
    """``DPOTrainer`` computing Eq. 5 from two TRL pair losses (module docstring)."""

    def __init__(self, *args, gamma: float = 0.5, data_collator=None, processing_class=None, **kwargs):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        args_ = kwargs.get("args")
        if data_collator is None:
            data_collator = AvgPreferenceCollator(processing_class, getattr(args_, "max_length", None))
        super().__init__(*args, data_collator=data_collator, processing_class=processing_class, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "pair_a" not in inputs:  # a plain preference batch: ordinary DPO
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if return_outputs:
            raise ValueError("AvgDPOTrainer does not return outputs")
        mode = "train" if self.model.training else "eval"
        loss = 0.0
        for key, w in (("pair_a", self.gamma), ("pair_b", 1.0 - self.gamma)):
            if w == 0.0:
                continue
            part = super().compute_loss(model, inputs[key])
            self._metrics[mode][f"avg_dpo/loss_{key[-1]}"].append(float(part.detach()))
            loss = loss + w * part
        return loss


def train_avg_dpo(
    model,
    processor,
    world,
    data,
    p: AlignParams,
    out_dir: str | Path,
    *,
    live_dir=None,
    work_dir=None,
    seed: int = 0,
    eval_data=None,
    callbacks=(),
    annotator=None,
) -> dict:
    """Avg-DPO on rows with ``rejected`` and ``rejected_2`` (or a TRL dataset with both); same outputs,
    resume and atomic save as :func:`study.align.offline.train_offline`."""
    check_columns(data, "avg_dpo")
    model = common.prepare_model(model, p)
    train_ds = data if common.is_trl_dataset(data) else common.preference_dataset(data, world, with_rejected_2=True)
    eval_ds = None
    if eval_data is not None:
        check_columns(eval_data, "avg_dpo")
        eval_ds = (
            eval_data
            if common.is_trl_dataset(eval_data)
            else common.preference_dataset(eval_data, world, with_rejected_2=True)
        )
    work = Path(work_dir) if work_dir else default_work_dir(out_dir)
    ckpt = common.last_checkpoint(work)
    trainer = make_dpo_trainer(
        model,
        processor,
        train_ds,
        p,
        work,
        seed,
        trainer_cls=AvgDPOTrainer,
        eval_ds=eval_ds,
        callbacks=[common.dvclive_callback(live_dir, resume=ckpt is not None), *callbacks],
        trainer_kwargs={"gamma": p.gamma},
    )
    info = {
        "method": "avg_dpo",
        "loss_type": p.loss_type,
        "gamma": p.gamma,
        "params": p.model_dump(),
        "seed": seed,
        "rows": len(train_ds),
    }
    return run_dpo_trainer(trainer, processor, out_dir, work, info, ckpt)
