"""Load any local LLaVA-family checkpoint (LLaVA-1.5 and LLaVA-NeXT/1.6 classes) safely and offline.

Safety: safetensors only (``use_safetensors=True``), ``local_files_only=True`` (no hub call), never
``trust_remote_code``. A missing or incomplete path fails at once with a message saying what is missing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoProcessor,
    LlavaForConditionalGeneration,
    LlavaNextForConditionalGeneration,
    PreTrainedModel,
    ProcessorMixin,
)

MODEL_CLASSES = {"llava": LlavaForConditionalGeneration, "llava_next": LlavaNextForConditionalGeneration}


class ModelPathError(FileNotFoundError):
    pass


def check_model_dir(path: str | Path) -> Path:
    """Raise :class:`ModelPathError` unless ``path`` is a local checkpoint with config and safetensors (or a
    :mod:`study.model.pointer` to one, followed and checked); returns the checkpoint's directory."""
    from study.model.pointer import resolve

    p = resolve(path)
    if not p.is_dir():
        raise ModelPathError(
            f"model path {str(path)!r} does not exist locally. This study loads checkpoints offline only: "
            "download the LLaVA checkpoint (safetensors) to a local directory and point the params at it, "
            "or run the `sft` stage to train the default model organism."
        )
    if not (p / "config.json").is_file():
        raise ModelPathError(f"model path {p} has no config.json")
    if not any(p.glob("*.safetensors")):
        raise ModelPathError(f"model path {p} has no *.safetensors weights (other formats are refused: no pickle)")
    return p


def load_model(
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: str | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Return ``(model, processor)`` for a local LLaVA or LLaVA-NeXT checkpoint, in eval mode."""
    p = check_model_dir(path)
    config = AutoConfig.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    cls = MODEL_CLASSES.get(config.model_type)
    if cls is None:
        raise ValueError(f"model at {p} has model_type {config.model_type!r}; supported: {sorted(MODEL_CLASSES)}")
    model = cls.from_pretrained(
        p, local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=dtype or torch.float32
    )
    processor = AutoProcessor.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    if device:
        model.to(device)
    model.eval()
    return model, processor
