"""Plumbing shared by every alignment method: datasets, trainable parameters, optimiser groups, TRL
configs, the judge, saving, and implicit-reward diagnostics.

Parameters trained (as in the paper's App. A):
  * ``lora=True``: LoRA adapters on the language model's attention and MLP projections
    (``q/k/v/o_proj``, ``gate/up/down_proj``, matched by :data:`LORA_TARGETS` so the CLIP tower's
    projections are left alone), and the ``multi_modal_projector`` trained fully
    (``modules_to_save``); the vision tower and embeddings stay frozen. The reference policy is the same
    network with the adapters disabled (which also restores the original projector).
  * ``lora=False``: full fine-tuning of the language model and the projector (vision tower too if
    ``train_vision_tower``); the reference is a frozen copy of the initial policy.
  * In both cases the projector gets its own learning rate ``projector_lr`` through a separate AdamW
    parameter group (:func:`param_groups`); the LR schedule scales both groups alike.

Precision and memory (the GPU path, :func:`prepare_model`, one code path for tiny and real models):
  * ``bf16``: the policy's weights are cast to bfloat16 before LoRA/trainer wrapping; every parameter
    that trains (LoRA A/B, the projector copy, or everything but the vision tower under full fine-tuning)
    is then kept in fp32 (:func:`upcast_trainable`: peft upcasts LoRA A/B itself but leaves its
    ``modules_to_save`` projector copy in bf16, where AdamW steps of ~1e-6 are below bf16's resolution
    and would be lost), and the TRL trainers run their forwards under bf16 autocast (``bf16=True`` in
    their configs). Outside autocast (sampling in the online loops, PPO) the projector casts its input to
    its own dtype (:func:`cast_projector_inputs`) and peft casts around the LoRA branch, so a mixed
    bf16/fp32 model runs everywhere. The frozen reference (full fine-tuning) stays in bf16.
  * ``gradient_checkpointing``: the trainers' ``activation_checkpointing`` (non-reentrant); TRL's DPO and
    RLOO trainers call ``enable_input_require_grads`` for peft models themselves; the manual PPO loop
    uses :func:`enable_checkpointing`.

Several processes (``accelerate launch``): the TRL trainers are DDP-aware; :func:`save_policy` writes on
the main process only and every process waits for it (:func:`barrier`).

Saving (:func:`save_policy`): LoRA is merged (``merge_and_unload``) and the plain
``LlavaForConditionalGeneration`` is written with ``save_pretrained`` (safetensors) plus the processor,
into a temporary sibling swapped in whole (:func:`study.io.atomic_dir`), so the result loads with
:func:`study.model.load_model` and a killed run never leaves half a model.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from study.align.config import AlignParams

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PROJECTOR = "multi_modal_projector"
VISION = "vision_tower"


def use_cpu() -> bool:
    return not torch.cuda.is_available()


# ------------------------------------------------------------------------------ precision / processes


def bf16_available() -> bool:
    """True if bfloat16 training works here: a CUDA GPU that supports bf16 (Ampere or newer), or, with
    no GPU, a CPU on which bf16 autocast runs (checked with a tiny matmul)."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.nn.functional.linear(torch.ones(2, 4), torch.full((3, 4), 0.5))
        return y.dtype == torch.bfloat16 and bool((y.float() == 2.0).all())
    except (RuntimeError, TypeError):
        return False


def check_precision(p: AlignParams) -> None:
    """Raise :class:`~study.align.config.AlignParamsError` if ``p.bf16`` cannot run on this machine."""
    from study.align.config import AlignParamsError

    if p.bf16 and not bf16_available():
        where = "this GPU (needs Ampere or newer)" if torch.cuda.is_available() else "this CPU"
        raise AlignParamsError(
            f"invalid alignment params: align.bf16 is true but {where} cannot run bfloat16; set align.bf16: false"
        )


def _cast_inputs_to_own_dtype(module, args, kwargs):
    dtype = next(module.parameters()).dtype

    def cast(x):
        return x.to(dtype) if torch.is_tensor(x) and x.is_floating_point() and x.dtype != dtype else x

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def cast_projector_inputs(model) -> int:
    """Make every multimodal projector cast its (vision-tower) input to its own dtype, so a bf16 vision
    tower can feed an fp32 (trained) projector outside autocast. Idempotent; returns the hooked count.
    The hook survives ``copy.deepcopy`` (peft's ``modules_to_save`` copy, :func:`frozen_copy`)."""
    n = 0
    for m in model.modules():
        if type(m).__name__.endswith("MultiModalProjector") and not getattr(m, "_casts_inputs", False):
            m.register_forward_pre_hook(_cast_inputs_to_own_dtype, with_kwargs=True)
            m._casts_inputs = True
            n += 1
    return n


def prepare_model(model, p: AlignParams):
    """Apply ``p``'s precision to a plain policy before any LoRA or trainer wrapping (module docstring):
    with ``bf16`` its weights become bfloat16 and its projector casts its inputs. Returns the model."""
    check_precision(p)
    if p.bf16:
        if any(q.dtype != torch.bfloat16 for q in model.parameters() if q.is_floating_point()):
            model.to(torch.bfloat16)
        cast_projector_inputs(model)
    return model


def upcast_trainable(model) -> int:
    """Keep every trainable parameter in fp32 (AdamW master weights); returns how many were cast."""
    n = 0
    for q in model.parameters():
        if q.requires_grad and q.is_floating_point() and q.dtype != torch.float32:
            q.data = q.data.float()
            n += 1
    return n


def _checkpointing_fields() -> tuple[str, str]:
    from transformers import TrainingArguments

    # transformers 5.x renamed gradient_checkpointing -> activation_checkpointing (the old name warns)
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
        return "activation_checkpointing", "activation_checkpointing_kwargs"
    return "gradient_checkpointing", "gradient_checkpointing_kwargs"


def precision_args(p: AlignParams) -> dict[str, Any]:
    """The TRL/transformers config fields of ``p.bf16`` and ``p.gradient_checkpointing``."""
    on, kwargs = _checkpointing_fields()
    return {
        "bf16": p.bf16,
        on: p.gradient_checkpointing,
        kwargs: {"use_reentrant": False} if p.gradient_checkpointing else None,
    }


def enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing on a (peft-wrapped) policy, for loops without a Trainer."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):  # LoRA: frozen embeddings must still pass gradients
        model.enable_input_require_grads()


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised process group (``accelerate launch``)."""
    d = _dist()
    return d is None or d.get_rank() == 0


def distributed_kind(trainer) -> str:
    """How the trainer's accelerator ran the model: ``NO`` (one process), ``MULTI_GPU`` / ``MULTI_CPU`` (DDP)
    or ``FSDP`` (accelerate's ``DistributedType``), recorded in each run's metrics."""
    kind = getattr(getattr(trainer, "accelerator", None), "distributed_type", None)
    return "NO" if kind is None else str(getattr(kind, "value", kind))


def barrier() -> None:
    d = _dist()
    if d is not None:
        d.barrier()


# ----------------------------------------------------------------------------------------------- world


def world_spec(world):
    """The :class:`WorldSpec` a built world was made from (see :meth:`study.world.corpus.World.spec`)."""
    return world.spec()


def scene_lookup(world, splits: Sequence[str] = ("train", "val", "test", "ood")) -> dict:
    """scene_id -> Scene over ``splits`` (see :func:`study.prefs.sources.scene_map`)."""
    from study.prefs.sources import scene_map

    return scene_map(world, splits)


def as_records(data) -> list[dict]:
    if hasattr(data, "column_names") and hasattr(data, "to_list"):
        return data.to_list()
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        return data.to_dict(orient="records")
    return [dict(r) for r in data]


def is_trl_dataset(data) -> bool:
    return hasattr(data, "column_names") and "images" in data.column_names


# -------------------------------------------------------------------------------------------- datasets


def assistant_turn(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def preference_dataset(rows, world, *, with_rejected_2: bool = False):
    """Preference rows as TRL's conversational vision preference dataset, each image attached lazily.

    Example: ``prompt = [user turn: image + text]``, ``chosen`` / ``rejected`` (/ ``rejected_2``) =
    ``[assistant turn]``, ``images = [PIL image of the scene]``. Only ids and strings are stored;
    ``with_transform`` builds the messages and loads the image when a batch is read (same pattern as
    :func:`study.model.sft.vision_dataset`). Equivalent to ``study.prefs.schema.to_trl`` without
    storing the images.
    """
    from datasets import Dataset

    from study.world.corpus import user_turn

    rows = as_records(rows)
    cols = {
        "scene_id": [r["scene_id"] for r in rows],
        "prompt_text": [r["prompt"] for r in rows],
        "chosen_text": [r["chosen"] for r in rows],
        "rejected_text": [r["rejected"] for r in rows],
    }
    if with_rejected_2:
        cols["rejected_2_text"] = [r["rejected_2"] for r in rows]
    ds = Dataset.from_dict(cols)

    def attach(batch: dict) -> dict:
        out = {
            "prompt": [[user_turn(p)] for p in batch["prompt_text"]],
            "chosen": [assistant_turn(a) for a in batch["chosen_text"]],
            "rejected": [assistant_turn(a) for a in batch["rejected_text"]],
            "images": [[world.image(s)] for s in batch["scene_id"]],
        }
        if "rejected_2_text" in batch:
            out["rejected_2"] = [assistant_turn(a) for a in batch["rejected_2_text"]]
        return out

    return ds.with_transform(attach)


def prompt_dataset(rows, world):
    """Prompt-only conversational vision dataset (RLOO): ``prompt``, ``images``, plus ``scene_id`` and
    ``prompt_text`` columns that TRL forwards to the reward function."""
    from datasets import Dataset

    from study.world.corpus import user_turn

    rows = as_records(rows)
    ds = Dataset.from_dict({"scene_id": [r["scene_id"] for r in rows], "prompt_text": [r["prompt"] for r in rows]})

    def attach(batch: dict) -> dict:
        return {
            "prompt": [[user_turn(p)] for p in batch["prompt_text"]],
            "images": [[world.image(s)] for s in batch["scene_id"]],
            "scene_id": list(batch["scene_id"]),
            "prompt_text": list(batch["prompt_text"]),
        }

    return ds.with_transform(attach)


# ---------------------------------------------------------------------------------- trainable params


def lora_config(p: AlignParams):
    from peft import LoraConfig

    return LoraConfig(
        r=p.lora_r,
        lora_alpha=p.lora_alpha,
        lora_dropout=p.lora_dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=[PROJECTOR],
        bias="none",
    )


def set_full_finetune(model, p: AlignParams):
    """Full fine-tuning: everything trainable except the vision tower (unless ``train_vision_tower``)."""
    for name, param in model.named_parameters():
        param.requires_grad_(p.train_vision_tower or VISION not in name)
    return model


def wrap_lora(model, p: AlignParams):
    from peft import get_peft_model

    return get_peft_model(model, lora_config(p))


def param_groups(model, lr: float, projector_lr: float, weight_decay: float = 0.0) -> list[dict]:
    """AdamW groups: the projector's parameters at ``projector_lr``, every other trainable one at ``lr``.

    Biases and norm weights (1-D) get no weight decay.
    """
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (PROJECTOR in name, param.ndim >= 2)
        groups.setdefault(key, []).append(param)
    out = []
    for (is_proj, decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "lr": projector_lr if is_proj else lr,
                "weight_decay": weight_decay if decay else 0.0,
                "name": ("projector" if is_proj else "policy"),
            }
        )
    if not out:
        raise ValueError("the model has no trainable parameter")
    return out


def build_optimizer(model, p: AlignParams, lr: float | None = None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        param_groups(model, lr or p.learning_rate, p.projector_lr, p.weight_decay), lr=lr or p.learning_rate
    )


class ProjectorLRMixin:
    """Trainer mixin: the optimiser is AdamW over :func:`param_groups` (projector at ``projector_lr``), and
    the trainable parameters are fp32 after the trainer has wrapped the model (:func:`upcast_trainable`)."""

    projector_lr: float | None = None

    def __init__(self, *args, projector_lr: float | None = None, **kwargs):
        if projector_lr is not None:
            self.projector_lr = projector_lr
        super().__init__(*args, **kwargs)
        upcast_trainable(self.model)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            a = self.args
            self.optimizer = torch.optim.AdamW(
                param_groups(opt_model, a.learning_rate, self.projector_lr or a.learning_rate, a.weight_decay),
                lr=a.learning_rate,
                betas=(a.adam_beta1, a.adam_beta2),
                eps=a.adam_epsilon,
            )
        return self.optimizer


def frozen_copy(model):
    """A frozen deep copy (the reference policy). Take it BEFORE any trainer patches the model's forward."""
    unpatch_forward(model)
    ref = copy.deepcopy(model).eval()
    for q in ref.parameters():
        q.requires_grad_(False)
    return ref


def unpatch_forward(model) -> None:
    """Remove the instance-level ``forward`` TRL's ``add_fused_lm_head`` installs (restores the class method)."""
    mods = [model]
    if hasattr(model, "get_base_model"):
        mods.append(model.get_base_model())
    for m in mods:
        if "forward" in vars(m):
            del m.forward


def schedule(optimizer, p: AlignParams, total_steps: int):
    from transformers import get_scheduler

    return get_scheduler(
        p.lr_scheduler,
        optimizer,
        num_warmup_steps=int(math.ceil(p.warmup_ratio * total_steps)),
        num_training_steps=max(total_steps, 1),
    )


# -------------------------------------------------------------------------------------------- configs


def dpo_args(p: AlignParams, output_dir: str | Path, seed: int, **overrides):
    from trl import DPOConfig

    kw: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=p.epochs,
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size,
        per_device_eval_batch_size=p.batch_size,
        gradient_accumulation_steps=p.grad_accum,
        weight_decay=p.weight_decay,
        warmup_steps=p.warmup_ratio,
        lr_scheduler_type=p.lr_scheduler,
        max_grad_norm=p.max_grad_norm,
        beta=p.beta,
        loss_type=[p.loss_type],
        logging_steps=p.logging_steps,
        save_strategy="steps",
        save_steps=p.save_steps,
        save_total_limit=1,
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=use_cpu(),
        **precision_args(p),
        max_length=p.max_length,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        precompute_ref_log_probs=False,
    )
    kw.update(overrides)
    return DPOConfig(**kw)


def dvclive_callback(live_dir: str | Path | None, resume: bool = False):
    if live_dir is None:
        return None
    from dvclive import Live
    from dvclive.huggingface import DVCLiveCallback

    return DVCLiveCallback(live=Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=resume))


def last_checkpoint(work_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    w = Path(work_dir)
    return get_last_checkpoint(str(w)) if w.is_dir() else None


def history_summary(
    history: list[dict],
    keys: Sequence[str] = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"),
) -> dict:
    """``{key}_first`` / ``{key}_last`` of the logged training curves (TRL's log history)."""
    out = {}
    for k in keys:
        vals = [h[k] for h in history if k in h and isinstance(h[k], (int, float))]
        if vals:
            out[f"{k}_first"], out[f"{k}_last"] = float(vals[0]), float(vals[-1])
    return out


# ------------------------------------------------------------------------------------------- judging


def make_annotator(p: AlignParams, world, seed: int = 0):
    """The judge named by ``p.annotator`` (lazy import of :mod:`study.prefs.annotators`)."""
    from study.prefs import annotators

    if p.annotator == "oracle":
        return annotators.OracleAnnotator(world_spec(world), seed=seed)
    if p.annotator == "noisy_oracle":
        return annotators.NoisyOracleAnnotator(world_spec(world), p.annotator_accuracy, seed=seed)
    from study.prefs.reward_model import judge_placement, load_reward_model

    rm, rm_proc = load_reward_model(p.reward_model_path, **judge_placement(p.bf16))
    return annotators.RewardModelAnnotator(
        rm, rm_proc, world, seed=seed, name=f"reward_model:{Path(p.reward_model_path).name}"
    )


def score_batch(annotator, scenes, prompts, answers) -> list[float]:
    if hasattr(annotator, "score_batch"):
        return [float(s) for s in annotator.score_batch(list(scenes), list(prompts), list(answers))]
    return [float(annotator.score(s, q, a)) for s, q, a in zip(scenes, prompts, answers)]


# -------------------------------------------------------------------------------------------- saving


def merged_policy(model):
    """The plain model to save: LoRA merged into the base weights (projector copy swapped in)."""
    unpatch_forward(model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
        unpatch_forward(model)
    return model


def save_policy(model, processor, out_dir: str | Path, info: dict | None = None) -> Path:
    """Save the (merged) policy + processor with safetensors; the directory appears atomically. With
    several processes only the main one writes, and every process returns once it is there."""
    from study import io

    plain = merged_policy(model)
    if is_main_process():
        with io.atomic_dir(out_dir) as tmp:
            plain.save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
            if info is not None:
                io.write_json(tmp / "align.json", info)
    barrier()
    return Path(out_dir)


# ------------------------------------------------------------------------------------ diagnostics


@torch.no_grad()
def pair_logps(model, processor, images, prompts, chosen, rejected, *, batch_size: int = 16):
    """Summed completion log-probs of (chosen, rejected) for each pair, tokenised exactly as TRL's DPO
    collator does; returns (logp_chosen, logp_rejected, n_chosen, n_rejected), each of shape [N]."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from study.align.losses import completion_logps
    from study.world.corpus import user_turn

    collate = DataCollatorForVisionPreference(processor=processor)
    was = model.training
    model.eval()
    outs = [[], [], [], []]
    for s in range(0, len(prompts), batch_size):
        ex = [
            {"prompt": [user_turn(q)], "chosen": assistant_turn(c), "rejected": assistant_turn(r), "images": [im]}
            for im, q, c, r in zip(
                images[s : s + batch_size],
                prompts[s : s + batch_size],
                chosen[s : s + batch_size],
                rejected[s : s + batch_size],
            )
        ]
        batch = collate(ex)
        dev = next(model.parameters()).device
        batch = {k: v.to(dev) if hasattr(v, "to") else v for k, v in batch.items()}
        logp, n = completion_logps(model, batch, grad=False)
        lc, lr = logp.chunk(2)
        nc, nr = n.chunk(2)
        for o, v in zip(outs, (lc, lr, nc, nr)):
            o.append(v.cpu())
    model.train(was)
    return tuple(torch.cat(o) for o in outs)


def implicit_rewards(
    model,
    ref_model,
    processor,
    images,
    prompts,
    chosen,
    rejected,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    batch_size: int = 16,
) -> dict:
    """DPO implicit-reward diagnostics of ``model`` vs ``ref_model`` on given pairs.

    Returns the per-pair margin ``h`` (:func:`study.align.losses.margin`), ``beta * h`` mean, accuracy
    (share of h > 0) and the mean pair loss of ``loss_type``.
    """
    from study.align.losses import margin, pair_loss

    pc, pr, nc, nr = pair_logps(model, processor, images, prompts, chosen, rejected, batch_size=batch_size)
    rc, rr, _, _ = pair_logps(ref_model, processor, images, prompts, chosen, rejected, batch_size=batch_size)
    h = margin(pc, pr, rc, rr)
    loss = pair_loss(loss_type, pc, pr, rc, rr, beta, nc, nr)
    return {
        "margin": h,
        "reward_margin_mean": float(beta * h.mean()),
        "accuracy": float((h > 0).float().mean()),
        "loss_mean": float(loss.mean()),
    }


_SAFE = re.compile(r"[^A-Za-z0-9_./-]")


def metric_name(key: str) -> str:
    return _SAFE.sub("_", key)
