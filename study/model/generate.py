"""Batched generation for any LLaVA-family model, with optional masking of image tokens.

Image-token masking (used by BDHS and by the "blind" diagnostic): for row b, a boolean ``keep`` vector
over that row's image-token positions zeroes the 2-D attention mask at the dropped positions. The
zeros persist through the KV cache for every generated token, so the text can attend only to the kept
image tokens. Position ids are passed explicitly as ``cumsum(padding_mask) - 1`` so that masking an image
token does not renumber the positions of the tokens after it (stack notes B4); padding is on the left.

An optional assistant ``prefix`` per row is appended after the generation prompt (reference-guided
continuation); ``stop_at_sentence`` ends a row at the first sentence terminator.

Dropping masked tokens (``drop_masked=True``, the default when a ``keep_fn`` is given): a masked image
token is never attended to by any other token, so removing it from the sequence changes nothing for the
remaining ones as long as their position ids keep their original values (RoPE sees the same positions,
causal attention sees the same keys). The prompt is then fed as ``inputs_embeds`` (the model's own
text/image merge, captured just before its language model runs) with the masked image positions
removed and rows re-padded on the left. With rho_th = 0.9 this shortens the 64-token image block to
~6 tokens for every prefill and every decode step. ``drop_masked=False`` keeps the zeroed-mask form
(the reference the tests compare against).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from study.world.corpus import user_turn

# keep_fn(n_image_tokens, generator) -> bool tensor of shape (n_image_tokens,)
KeepFn = Callable[[int, torch.Generator], torch.Tensor]


def keep_all(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


def keep_none(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.bool)


def render_prompts(processor, prompts: Sequence[str], prefixes: Sequence[str] | None = None) -> list[str]:
    texts = [processor.apply_chat_template([user_turn(p)], add_generation_prompt=True) for p in prompts]
    if prefixes is not None:
        texts = [t + (" " + pre if pre else "") for t, pre in zip(texts, prefixes)]
    return texts


def image_token_id(model) -> int:
    cfg = model.config
    return (
        getattr(cfg, "image_token_id", None)
        if getattr(cfg, "image_token_id", None) is not None
        else cfg.image_token_index
    )


def apply_image_keep(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, img_id: int, keep_fn: KeepFn, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Return (masked attention mask, position ids, visible image tokens per row)."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    masked = attention_mask.clone()
    visible = []
    for b in range(input_ids.shape[0]):
        pos = (input_ids[b] == img_id).nonzero(as_tuple=True)[0]
        keep = keep_fn(len(pos), g).to(torch.bool)
        masked[b, pos[~keep]] = 0
        visible.append(int(keep.sum()))
    return masked, position_ids, visible


class _Captured(Exception):
    pass


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def merged_inputs_embeds(model, enc: dict) -> torch.Tensor:
    """The language model's input embeddings for ``enc`` (text embeddings with image features scattered
    into the image-token positions), computed by the model's own multimodal forward and captured by a
    pre-hook on its language model before any decoder layer runs."""
    base = _base(model)
    lm = base.model.language_model

    def hook(module, args, kwargs):
        raise _Captured(kwargs["inputs_embeds"])

    handle = lm.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        base.model(**enc)
    except _Captured as c:
        return c.args[0]
    finally:
        handle.remove()
    raise RuntimeError(f"{type(base).__name__}: its language model was not called with inputs_embeds")


def compact(
    embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove every position whose ``attention_mask`` is 0 and left-pad the rows again.

    Returns (embeds, attention_mask, position_ids) of length max_b(#kept_b); kept positions keep their
    position ids, padding gets mask 0 and position id 0.
    """
    keep = attention_mask.bool()
    n = keep.sum(-1)
    length = int(n.max())
    B, _, H = embeds.shape
    out_e = embeds.new_zeros(B, length, H)
    out_m = attention_mask.new_zeros(B, length)
    out_p = position_ids.new_zeros(B, length)
    for b in range(B):
        k = int(n[b])
        if k:
            out_e[b, length - k :] = embeds[b, keep[b]]
            out_m[b, length - k :] = 1
            out_p[b, length - k :] = position_ids[b, keep[b]]
    return out_e, out_m, out_p


@torch.no_grad()
def generate(
    model,
    processor,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    prefixes: Sequence[str] | None = None,
    keep_fn: KeepFn | None = None,
    max_new_tokens: int = 96,
    batch_size: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_at_sentence: bool = False,
    seed: int = 0,
    progress: bool = False,
    return_visible: bool = False,
    drop_masked: bool = True,
):
    """Generate one answer per (image, prompt[, prefix]); returns the decoded continuations.

    With ``return_visible`` also returns the number of visible image tokens per row. With a ``keep_fn``
    and ``drop_masked``, masked image tokens are removed from the sequence (exact; module docstring).
    """
    if not (len(images) == len(prompts) and (prefixes is None or len(prefixes) == len(prompts))):
        raise ValueError("images, prompts and prefixes must have the same length")
    tok = processor.tokenizer
    eos = [tok.eos_token_id]
    if stop_at_sentence:
        eos += [tok.convert_tokens_to_ids(t) for t in (".", "?") if t in tok.get_vocab()]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts = render_prompts(processor, prompts, prefixes)
    outs: list[str] = []
    visible_all: list[int] = []
    img_id = image_token_id(model)
    it = range(0, len(texts), batch_size)
    for start in tqdm(it, desc="generate", disable=not progress, mininterval=2):
        sl = slice(start, start + batch_size)
        enc = processor(images=list(images[sl]), text=texts[sl], return_tensors="pt", padding=True, padding_side="left")
        attn = enc["attention_mask"]
        masked, position_ids, visible = apply_image_keep(enc["input_ids"], attn, img_id, keep_fn or keep_all, g)
        visible_all += visible
        inputs = {k: v.to(device) for k, v in enc.items()}
        sampling = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=top_p if do_sample else None,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
        )
        if keep_fn is not None and drop_masked:
            embeds, attn_c, pos_c = compact(
                merged_inputs_embeds(model, inputs), masked.to(device), position_ids.to(device)
            )
            new = model.generate(inputs_embeds=embeds, attention_mask=attn_c, position_ids=pos_c, **sampling)
        else:
            inputs["attention_mask"] = masked.to(device)
            gen = model.generate(**inputs, position_ids=position_ids.to(device), **sampling)
            new = gen[:, enc["input_ids"].shape[1] :]
        outs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    return (outs, visible_all) if return_visible else outs
