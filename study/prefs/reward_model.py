"""A learned reward model on a LLaVA backbone, trained with TRL's ``RewardTrainer`` (paper Eq. 1, App. A).

Model. :class:`LlavaRewardModel` (``LlavaNextRewardModel`` for LLaVA-NeXT) = the backbone's
``LlavaModel`` (vision tower + projector + language model, no LM head) and a scalar head
``score: Linear(hidden, 1, bias=False)`` read at the *last non-pad token* of each row (the ``</s>``
closing the assistant turn), found from the attention mask, so left and right padding both work:

    r(x, y) = w . h_L(x, y)[last t with attention_mask = 1]

It starts from any checkpoint :func:`study.model.load_model` loads (its ``.model`` weights are copied;
the head is drawn from N(0, 1/(H+1))). It is a ``PreTrainedModel`` with ``config.num_labels = 1``: saved
with ``save_pretrained`` (safetensors) plus the processor, loaded back with ``from_pretrained
(use_safetensors=True)`` — no pickle anywhere.

Loss: TRL's, unchanged: ``RewardTrainer.compute_loss`` = ``-logsigmoid(r(x, y+) - r(x, y-)).mean()``
(Bradley–Terry), chosen rows in the first half of the batch, rejected in the second.

What is adapted, and why. TRL 1.16's ``RewardTrainer`` is text-only: it tokenises conversations with
the tokenizer's chat template (an ``<image>`` placeholder would stay one token, never expanded into the
image's patch tokens), its collator pads ``chosen_ids``/``rejected_ids`` only, and it loads
``AutoModelForSequenceClassification``, which has no LLaVA class. Three thin pieces make it visual while
keeping TRL's loss, metrics and training loop:

1. Data: :func:`reward_dataset` pre-tokenises every pair with the *processor* (chat template, then the
   processor expands ``<image>`` into the image tokens) into TRL's processed format ``chosen_ids`` /
   ``rejected_ids``, plus an ``images`` column. TRL skips its own tokenisation for processed datasets.
2. Collator: :class:`VisionPreferenceCollator` calls TRL's ``DataCollatorForPreference`` for the ids and
   attention mask (same right padding, same chosen-then-rejected layout) and adds ``pixel_values`` for the
   same images repeated for the two halves (and ``image_sizes`` for LLaVA-NeXT).
3. Trainer: :class:`VisionRewardTrainer` subclasses ``RewardTrainer`` only to refuse datasets that are not
   pre-tokenised that way (TRL's text path would silently build wrong inputs). The tokenizer
   (``processor.tokenizer``) is passed as ``processing_class`` because TRL needs ``pad_token`` /
   ``get_vocab`` on it, which ``LlavaProcessor`` lacks; ``remove_unused_columns=False`` keeps ``images``.

What trains, precision and memory (``rm.lora``, ``rm.bf16``, ``rm.gradient_checkpointing``; the GPU path,
as :mod:`study.align.common` does for the policies):

* ``lora=False``: full fine-tuning of every weight (vision tower, projector, language model, head).
* ``lora=True``: peft LoRA adapters (rank ``lora_r``, scale ``lora_alpha``, no dropout) on the language
  model's attention and MLP projections (:data:`study.align.common.LORA_TARGETS`, the policies' choice) and
  the ``score`` head trained fully (``modules_to_save``); the vision tower, the projector and the embeddings
  stay frozen. After training the adapters are merged (``merge_and_unload``), so the saved directory holds
  the plain reward model, the same keys as a fully fine-tuned one, and :func:`load_reward_model` reads it
  unchanged.
* ``bf16``: the frozen weights are cast to bfloat16 (the trainable ones, LoRA A/B and the head, or every
  weight under full fine-tuning, stay fp32 for AdamW) and the trainer's forwards run under bf16 autocast.
  Refused with the key named where bf16 cannot run (:func:`check_rm_params`). A merged LoRA model keeps its
  language model in bf16 when saved; :func:`load_reward_model` loads every weight as fp32.
* ``gradient_checkpointing``: transformers' ``activation_checkpointing`` (non-reentrant); TRL calls
  ``enable_input_require_grads`` for the peft model itself.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoProcessor
from transformers.modeling_outputs import SequenceClassifierOutputWithPast
from transformers.models.llava.modeling_llava import LlavaModel, LlavaPreTrainedModel
from transformers.models.llava_next.modeling_llava_next import LlavaNextModel, LlavaNextPreTrainedModel
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask 1 in every row (works for left and right padding)."""
    pos = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (pos * attention_mask.long()).argmax(-1)


class _RewardHead:
    """Shared forward of the reward models: backbone -> last non-pad hidden state -> scalar."""

    def _init_head(self, config):
        hidden = config.text_config.hidden_size
        self.score = nn.Linear(hidden, 1, bias=False)
        nn.init.normal_(self.score.weight, std=1.0 / math.sqrt(hidden + 1))

    def forward(
        self,
        input_ids=None,
        pixel_values=None,
        attention_mask=None,
        position_ids=None,
        image_sizes=None,
        inputs_embeds=None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        kwargs.pop("use_cache", None)
        kwargs.pop("labels", None)
        if attention_mask is None:
            pad = self.config.get_text_config().pad_token_id
            attention_mask = (input_ids != pad).long() if pad is not None else torch.ones_like(input_ids)
        extra = {"image_sizes": image_sizes} if image_sizes is not None else {}
        out = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            **extra,
        )
        h = out.last_hidden_state
        last = last_token_index(attention_mask)
        pooled = h[torch.arange(h.shape[0], device=h.device), last]
        # a bf16 backbone (rm.bf16, merged LoRA) feeds the fp32 head outside autocast; fp32: a no-op
        rewards = self.score(pooled.to(self.score.weight.dtype))
        return SequenceClassifierOutputWithPast(logits=rewards)


class LlavaRewardModel(_RewardHead, LlavaPreTrainedModel):
    """LLaVA(-1.5 style) backbone + scalar reward head (module docstring)."""

    def __init__(self, config):
        super().__init__(config)
        self.model = LlavaModel(config)
        self._init_head(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()


class LlavaNextRewardModel(_RewardHead, LlavaNextPreTrainedModel):
    """LLaVA-NeXT (1.6, AnyRes) backbone + scalar reward head."""

    def __init__(self, config):
        super().__init__(config)
        self.model = LlavaNextModel(config)
        self._init_head(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()


REWARD_CLASSES = {"llava": LlavaRewardModel, "llava_next": LlavaNextRewardModel}


def reward_model_from_backbone(backbone, seed: int = 0) -> tuple[nn.Module, Any]:
    """A fresh reward model whose backbone weights are copied from ``backbone`` (head drawn with ``seed``).

    ``backbone``: a checkpoint path (loaded with :func:`study.model.load_model`) or ``(model, processor)``
    of a LLaVA-family generation model.
    """
    if isinstance(backbone, (str, Path)):
        from study.model import load_model

        gen, processor = load_model(backbone)
    else:
        gen, processor = backbone
    mtype = gen.config.model_type
    if mtype not in REWARD_CLASSES:
        raise ValueError(f"no reward model for model_type {mtype!r}; supported: {sorted(REWARD_CLASSES)}")
    config = gen.config.__class__.from_dict(gen.config.to_dict())
    config.num_labels = 1
    config.architectures = [REWARD_CLASSES[mtype].__name__]
    config.use_cache = False
    torch.manual_seed(seed)
    rm = REWARD_CLASSES[mtype](config)
    rm.model.load_state_dict(gen.model.state_dict(), strict=True)
    rm.config.get_text_config().pad_token_id = processor.tokenizer.pad_token_id
    return rm, processor


def save_reward_model(model, processor, out_dir: str | Path) -> Path:
    """``save_pretrained`` (safetensors) of model + processor, the directory swapped in atomically."""
    from study import io

    with io.atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return Path(out_dir)


def load_reward_model(path: str | Path, *, device: str | None = None, dtype: torch.dtype = torch.float32):
    """``(reward_model, processor)`` from a directory written by :func:`save_reward_model` (safetensors only),
    in ``dtype`` (fp32 unless a judge on a GPU asks for bf16, :func:`judge_placement`) on ``device``."""
    from study.model.load import check_model_dir

    p = check_model_dir(path)
    config = AutoConfig.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    cls = REWARD_CLASSES.get(config.model_type)
    if cls is None or cls.__name__ not in (config.architectures or []):
        raise ValueError(
            f"{p} is not a reward model (architectures {config.architectures}, model_type "
            f"{config.model_type!r}); train one with study.prefs.reward_model.train_reward_model"
        )
    model = cls.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=dtype)
    processor = AutoProcessor.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    if device:
        model.to(device)
    model.eval()
    return model, processor


def judge_placement(bf16: bool) -> dict:
    """Where a reward model that judges a policy's answers lives: ``{"device", "dtype"}`` for
    :func:`load_reward_model`. With a CUDA GPU, on it, in bf16 when the run trains in bf16 (a 7B judge in fp32
    is 28 GB beside the policy); without one, on the CPU in fp32, as the CPU study always ran."""
    if torch.cuda.is_available():
        return {"device": "cuda", "dtype": torch.bfloat16 if bf16 else torch.float32}
    return {"device": None, "dtype": torch.float32}


def _render(processor, prompt: str, answer: str) -> str:
    from study.world.corpus import conversation

    return processor.apply_chat_template(conversation(prompt, answer))


def reward_dataset(rows, world, processor):
    """TRL's processed preference format for vision: ``chosen_ids``, ``rejected_ids``, ``images``.

    ``rows`` are schema rows (:mod:`study.prefs.schema`); the ids are the processor's input ids of the full
    conversation (chat template, ``<image>`` expanded into the image tokens).
    """
    from datasets import Dataset

    from study.prefs.schema import validate_rows

    rows = validate_rows(rows, world)
    data: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "images": []}
    for r in rows:
        img = world.image(r["scene_id"])
        for key, ans in (("chosen_ids", r["chosen"]), ("rejected_ids", r["rejected"])):
            enc = processor(images=[img], text=[_render(processor, r["prompt"], ans)])
            ids = enc["input_ids"][0]
            data[key].append(list(ids.tolist() if hasattr(ids, "tolist") else ids))
        data["images"].append([img])
    return Dataset.from_dict(data)


class VisionPreferenceCollator:
    """TRL's ``DataCollatorForPreference`` for the ids, plus ``pixel_values`` (chosen half, then rejected)."""

    def __init__(self, processor, pad_to_multiple_of: int | None = None):
        self.processor = processor
        self.text = DataCollatorForPreference(
            pad_token_id=processor.tokenizer.pad_token_id, pad_to_multiple_of=pad_to_multiple_of
        )

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.text(examples)
        images = [ex["images"][0] for ex in examples]
        pix = self.processor.image_processor(images + images, return_tensors="pt")
        batch["pixel_values"] = pix["pixel_values"]
        if "image_sizes" in pix:
            batch["image_sizes"] = pix["image_sizes"]
        return batch


class VisionRewardTrainer(RewardTrainer):
    """``RewardTrainer`` that only accepts datasets from :func:`reward_dataset` (module docstring)."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        from trl.data_utils import get_dataset_column_names

        cols = set(get_dataset_column_names(dataset))
        need = {"chosen_ids", "rejected_ids", "images"}
        if not need <= cols:
            raise ValueError(
                f"{dataset_name} dataset has columns {sorted(cols)}; the vision reward trainer needs "
                f"{sorted(need)} (build it with study.prefs.reward_model.reward_dataset)"
            )
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)


@dataclass(frozen=True)
class RMParams:
    """Reward-model training knobs (paper: lr 2e-5, 4000 steps, batch 32, constant LR, warmup 0.03)."""

    learning_rate: float
    batch_size: int  # pairs per step (2x rows through the model)
    epochs: float
    max_steps: int  # > 0 overrides epochs
    warmup_ratio: float
    weight_decay: float
    logging_steps: int
    center_rewards_coefficient: float | None
    lora: bool  # LoRA on the language model + the score head trained fully; else full fine-tuning
    lora_r: int
    lora_alpha: int
    bf16: bool  # frozen weights bf16, trainable ones fp32, forwards under bf16 autocast
    gradient_checkpointing: bool  # non-reentrant activation checkpointing


class RMParamsError(ValueError):
    """Reward-model knobs that cannot run (the message names the ``rm.`` key)."""


def check_rm_params(p: RMParams) -> None:
    """Raise :class:`RMParamsError` naming the key if ``p`` cannot run here: LoRA sizes out of range, or
    ``bf16`` where bfloat16 does not run (as :func:`study.align.common.check_precision` for ``align.bf16``)."""
    from study.align.common import bf16_available

    if p.lora and p.lora_r < 1:
        raise RMParamsError(f"invalid reward-model params: rm.lora_r must be >= 1 with rm.lora: true, got {p.lora_r}")
    if p.lora and not p.lora_alpha > 0:
        raise RMParamsError(
            f"invalid reward-model params: rm.lora_alpha must be > 0 with rm.lora: true, got {p.lora_alpha}"
        )
    if p.bf16 and not bf16_available():
        where = "this GPU (needs Ampere or newer)" if torch.cuda.is_available() else "this CPU"
        raise RMParamsError(
            f"invalid reward-model params: rm.bf16 is true but {where} cannot run bfloat16; set rm.bf16: false"
        )


def rm_lora_config(p: RMParams):
    """peft LoRA on the language model's projections (the policies' targets), the ``score`` head trained fully."""
    from peft import LoraConfig

    from study.align.common import LORA_TARGETS

    return LoraConfig(
        r=p.lora_r,
        lora_alpha=p.lora_alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        modules_to_save=["score"],
        bias="none",
    )


def prepare_reward_model(model, p: RMParams):
    """Apply ``p``'s trainable set and precision to a fresh reward model (module docstring): LoRA-wrapped
    when ``p.lora``; with ``p.bf16`` every frozen floating-point weight becomes bfloat16 (trainable ones
    stay fp32). Returns the model to train."""
    check_rm_params(p)
    if p.lora:
        from peft import get_peft_model

        model = get_peft_model(model, rm_lora_config(p))
    if p.bf16:
        for q in model.parameters():
            if not q.requires_grad and q.is_floating_point() and q.dtype != torch.bfloat16:
                q.data = q.data.to(torch.bfloat16)
    return model


def reward_config(p: RMParams, output_dir: str | Path, seed: int, **overrides) -> RewardConfig:
    from study.align.common import precision_args

    check_rm_params(p)
    cpu = not torch.cuda.is_available()
    kw = dict(
        output_dir=str(output_dir),
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size,
        per_device_eval_batch_size=p.batch_size,
        num_train_epochs=p.epochs,
        max_steps=p.max_steps,
        warmup_steps=p.warmup_ratio,
        weight_decay=p.weight_decay,
        lr_scheduler_type="constant_with_warmup",
        logging_steps=p.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=cpu,
        **precision_args(p),  # bf16, activation_checkpointing (non-reentrant); RewardConfig defaults both on
        max_length=None,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        center_rewards_coefficient=p.center_rewards_coefficient,
    )
    kw.update(overrides)
    return RewardConfig(**kw)


def train_reward_model(
    backbone,
    train_rows,
    world,
    out_dir: str | Path,
    p: RMParams,
    *,
    seed: int = 0,
    eval_rows=None,
    work_dir: str | Path | None = None,
    callbacks: Sequence = (),
    **config_overrides,
) -> dict:
    """Train a reward model on preference rows; save it (safetensors) to ``out_dir``; return metrics.

    ``p.lora`` / ``p.bf16`` / ``p.gradient_checkpointing`` as in the module docstring; LoRA is merged
    before saving, so the directory is the same plain reward model either way. ``callbacks``: extra
    ``TrainerCallback``s.

    Metrics: ``train_loss`` (TRL's mean), ``losses`` (logged training losses in order), ``steps``,
    ``train_runtime_s``, ``train_pairs``, and ``eval_accuracy`` on ``eval_rows`` when given.
    """
    from study.align.common import merged_policy

    check_rm_params(p)  # before any model is loaded
    model, processor = reward_model_from_backbone(backbone, seed)
    model = prepare_reward_model(model, p)
    train = reward_dataset(train_rows, world, processor)
    work = Path(work_dir or Path(out_dir).with_name(Path(out_dir).name + ".work"))
    trainer = VisionRewardTrainer(
        model=model,
        args=reward_config(p, work, seed, **config_overrides),
        train_dataset=train,
        processing_class=processor.tokenizer,
        data_collator=VisionPreferenceCollator(processor),
        callbacks=list(callbacks) or None,
    )
    t0 = time.time()
    result = trainer.train()
    model = merged_policy(trainer.model).eval()  # LoRA merged into the plain reward model; else unchanged
    save_reward_model(model, processor, out_dir)
    if work.exists():
        shutil.rmtree(work)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "train_loss": float(result.training_loss),
        "losses": [float(x) for x in losses],
        "steps": int(trainer.state.global_step),
        "train_runtime_s": time.time() - t0,
        "train_pairs": len(train),
        "params": asdict(p),
    }
    if eval_rows is not None:
        from study.prefs.annotators import RewardModelAnnotator, annotator_accuracy

        metrics["eval_accuracy"] = annotator_accuracy(RewardModelAnnotator(model, processor, world), eval_rows, world)
    return metrics


@torch.no_grad()
def reward_scores(
    model, processor, images: Sequence, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 64
) -> list[float]:
    """``r(image, prompt, answer)`` for every row (model in eval mode, right padding)."""
    if not (len(images) == len(prompts) == len(answers)):
        raise ValueError("images, prompts and answers must have the same length")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    for s in range(0, len(prompts), batch_size):
        texts = [_render(processor, p, a) for p, a in zip(prompts[s : s + batch_size], answers[s : s + batch_size])]
        enc = processor(
            images=list(images[s : s + batch_size]), text=texts, return_tensors="pt", padding=True, padding_side="right"
        )
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out += [float(x) for x in logits[:, 0].float().cpu()]
    model.train(was_training)
    return out
