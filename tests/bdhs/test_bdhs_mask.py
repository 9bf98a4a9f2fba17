"""Eq. 6 mask: share of kept tokens, fresh draws, per-sample sharing, and that it really blocks attention."""

import pytest
import torch

from study.bdhs.mask import SharedKeep, draw_keep, keep_fn
from study.model.generate import apply_image_keep, generate, image_token_id, render_prompts


@pytest.mark.parametrize("rho", [0.25, 0.5, 0.9, 0.99])
def test_keep_share_matches_one_minus_rho(rho):
    keep = keep_fn(rho)(10_000, torch.Generator().manual_seed(1))
    assert keep.dtype == torch.bool and keep.shape == (10_000,)
    sd = ((1 - rho) * rho / 10_000) ** 0.5
    assert abs(keep.float().mean().item() - (1 - rho)) < 5 * sd + 1e-4


def test_extremes_and_fresh_draws():
    g = torch.Generator().manual_seed(0)
    assert keep_fn(0.0)(500, g).all()
    assert not keep_fn(1.0)(500, g).any()
    f = keep_fn(0.5)
    assert not torch.equal(f(64, g), f(64, g))  # a fresh mask on every call


@pytest.mark.parametrize("bad", [-0.1, 1.01])
def test_invalid_rho_raises(bad):
    with pytest.raises(ValueError, match="rho_th"):
        keep_fn(bad)
    with pytest.raises(ValueError, match="rho_th"):
        draw_keep(8, bad, torch.Generator())


def test_shared_keep_one_mask_per_sample():
    keep = SharedKeep([0, 0, 1, 1, 1], 0.5)
    g = torch.Generator().manual_seed(0)
    masks = [keep(64, g) for _ in range(5)]
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[2], masks[4])
    assert not torch.equal(masks[0], masks[2])
    assert keep.visible(1) == int(masks[2].sum())
    with pytest.raises(RuntimeError):
        keep(64, g)


def _logits(model, processor, image, keep):
    text = render_prompts(processor, ["describe the image in detail ."])
    enc = processor(images=[image], text=text, return_tensors="pt", padding=True, padding_side="left")
    masked, pos, visible = apply_image_keep(
        enc["input_ids"], enc["attention_mask"], image_token_id(model), keep, torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        out = model(
            input_ids=enc["input_ids"], pixel_values=enc["pixel_values"], attention_mask=masked, position_ids=pos
        )
    return out.logits[0, -1], visible[0]


def test_full_mask_blocks_the_image(tiny, images):
    model, processor = tiny
    a, va = _logits(model, processor, images[0], keep_fn(1.0))
    b, vb = _logits(model, processor, images[1], keep_fn(1.0))
    assert va == vb == 0
    assert torch.allclose(a, b, atol=1e-6)
    c, vc = _logits(model, processor, images[0], keep_fn(0.0))
    d, _ = _logits(model, processor, images[1], keep_fn(0.0))
    assert vc == 64
    assert (c - d).abs().max().item() > 1e-4


def test_full_mask_gives_identical_generations(tiny, images):
    model, processor = tiny
    prompts = ["describe the image in detail ."] * 2
    blind = generate(model, processor, images[:2], prompts, keep_fn=keep_fn(1.0), max_new_tokens=8)
    assert blind[0] == blind[1]
