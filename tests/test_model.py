"""Loader and generation: tiny random LLaVA-1.5 and LLaVA-NeXT checkpoints built offline."""

import numpy as np
import pytest
import torch
from PIL import Image

from study.config import load_section
from study.model import generate, load_model
from study.model.build import build_model
from study.model.generate import keep_all, keep_none
from study.model.load import ModelPathError
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.world.language import vocabulary
from study.world.spec import load_spec

SPEC = load_spec("data/world_spec.yaml")
TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llava")
    proc = build_processor(vocabulary(SPEC), 48, 6)
    build_model(proc, 48, TINY, seed=0).save_pretrained(d)
    proc.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def llava_next_dir(tmp_path_factory, save_tiny_llava_next):
    return save_tiny_llava_next(tmp_path_factory.mktemp("llava_next"), SPEC)


def _images(n=2, size=48):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize(
    "fixture,cls",
    [("llava_dir", "LlavaForConditionalGeneration"), ("llava_next_dir", "LlavaNextForConditionalGeneration")],
)
def test_loader_accepts_llava_family_and_generates(request, fixture, cls):
    model, proc = load_model(request.getfixturevalue(fixture))
    assert type(model).__name__ == cls and not model.training
    out = generate(
        model, proc, _images(), ["describe the image in detail .", "is there a cup in the image ?"], max_new_tokens=6
    )
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert all(len(o.split()) <= 6 for o in out)
    assert all(set(o.split()) <= set(proc.tokenizer.get_vocab()) for o in out)


def test_missing_path_fails_at_once_offline(tmp_path):
    with pytest.raises(ModelPathError, match="does not exist locally"):
        load_model(tmp_path / "llava-v1.6-vicuna-7b")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelPathError, match="safetensors"):
        load_model(tmp_path / "ckpt")


def test_processor_expands_image_and_roundtrips_text(llava_dir):
    _, proc = load_model(llava_dir)
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "is there a cup in the image ?"}]}],
        add_generation_prompt=True,
    )
    enc = proc(images=_images(1), text=[text], return_tensors="pt")
    n_img = int((enc["input_ids"] == proc.tokenizer.convert_tokens_to_ids("<image>")).sum())
    assert n_img == (48 // 6) ** 2
    assert proc.tokenizer.decode(enc["input_ids"][0, -9:]) == "is there a cup in the image ? ASSISTANT:"


@pytest.mark.parametrize("fixture", ["llava_dir", "llava_next_dir"])
def test_masking_every_image_token_blocks_the_image(request, fixture):
    model, proc = load_model(request.getfixturevalue(fixture))
    size = 48 if fixture == "llava_dir" else 32
    a, b = _images(2, size)
    prompt = ["describe the image in detail ."]
    kw = dict(max_new_tokens=8, do_sample=False)
    blind_a = generate(model, proc, [a], prompt, keep_fn=keep_none, **kw)
    blind_b = generate(model, proc, [b], prompt, keep_fn=keep_none, **kw)
    assert blind_a == blind_b
    # and the mask is real: with every token kept the logits depend on the image
    enc = proc(
        images=[a, b],
        text=[
            proc.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt[0]}]}],
                add_generation_prompt=True,
            )
        ]
        * 2,
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        logits = model(**enc).logits[:, -1]
    assert not torch.allclose(logits[0], logits[1])
    _, visible = generate(model, proc, [a], prompt, keep_fn=keep_all, return_visible=True, **kw)
    assert visible[0] == int((enc["input_ids"][0] == model.config.image_token_id).sum())


def test_generation_is_seeded():
    proc = build_processor(vocabulary(SPEC), 48, 6)
    model = build_model(proc, 48, TINY, seed=1).eval()
    kw = dict(max_new_tokens=8, do_sample=True, temperature=1.0)
    imgs, prompts = _images(2), ["describe the image in detail ."] * 2
    assert generate(model, proc, imgs, prompts, seed=3, **kw) == generate(model, proc, imgs, prompts, seed=3, **kw)


@pytest.mark.parametrize("fixture", ["llava_dir", "llava_next_dir"])
def test_dropping_masked_image_tokens_is_exact(request, fixture):
    """Removing masked image tokens (kept positions keep their position ids) = zeroing them in the mask."""
    from study.bdhs.mask import keep_fn
    from study.model.generate import apply_image_keep, compact, image_token_id, merged_inputs_embeds, render_prompts

    model, proc = load_model(request.getfixturevalue(fixture))
    size = 48 if fixture == "llava_dir" else 32
    imgs = _images(3, size)
    prompts = ["describe the image in detail ."] * 3
    prefixes = ["the image shows", "", "the image shows a kitchen scene . a"]  # unequal lengths: left padding
    enc = proc(
        images=imgs,
        text=render_prompts(proc, prompts, prefixes),
        return_tensors="pt",
        padding=True,
        padding_side="left",
    )
    masked, pos, visible = apply_image_keep(
        enc["input_ids"], enc["attention_mask"], image_token_id(model), keep_fn(0.5), torch.Generator().manual_seed(0)
    )
    n_img = int((enc["input_ids"][0] == image_token_id(model)).sum())
    assert 0 < min(visible) and max(visible) < n_img  # a partial mask
    with torch.no_grad():
        ref = model(**{**enc, "attention_mask": masked}, position_ids=pos).logits[:, -1]
        e, m, p = compact(merged_inputs_embeds(model, dict(enc)), masked, pos)
        got = model(inputs_embeds=e, attention_mask=m, position_ids=p).logits[:, -1]
    assert e.shape[1] < enc["input_ids"].shape[1]
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    kw = dict(prefixes=prefixes, keep_fn=keep_fn(0.5), max_new_tokens=8, seed=2)
    assert generate(model, proc, imgs, prompts, drop_masked=True, **kw) == generate(
        model, proc, imgs, prompts, drop_masked=False, **kw
    )
