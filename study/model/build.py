"""Build a tiny but real ``LlavaForConditionalGeneration`` (CLIP vision tower + Llama LM) from params."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor


@dataclass(frozen=True)
class ModelParams:
    """Architecture knobs of the organism (validated in :mod:`study.config`)."""

    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int


def build_model(processor: LlavaProcessor, image_size: int, p: ModelParams, seed: int) -> LlavaForConditionalGeneration:
    tok = processor.tokenizer
    text = dict(
        model_type="llama",
        vocab_size=len(tok),
        hidden_size=p.text_hidden,
        num_hidden_layers=p.text_layers,
        num_attention_heads=p.text_heads,
        num_key_value_heads=p.text_kv_heads,
        intermediate_size=p.text_intermediate,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    vision = dict(
        model_type="clip_vision_model",
        image_size=image_size,
        patch_size=p.patch_size,
        num_channels=3,
        hidden_size=p.vision_hidden,
        num_hidden_layers=p.vision_layers,
        num_attention_heads=p.vision_heads,
        intermediate_size=2 * p.vision_hidden,
        projection_dim=p.vision_hidden,
    )
    n_tokens = (image_size // p.patch_size) ** 2
    cfg = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=n_tokens,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    return model


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
