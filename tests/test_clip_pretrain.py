"""Contrastive (CLIP) pretraining of the vision tower (tiny world, tiny organism)."""

import json

import numpy as np
import pytest
import torch
from transformers import CLIPModel

from study.config import load_section
from study.model.build import build_model
from study.model.clip_pretrain import (
    caption,
    clip_config,
    encode_texts,
    max_caption_words,
    pretrain_clip,
    retrieval_top1,
)
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.model.vision_pretrain import VisionPretrainParams
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


@pytest.fixture(scope="module")
def world(pretrain_world):
    return pretrain_world


@pytest.fixture(scope="module")
def proc(spec):
    return build_processor(vocabulary(spec), 48, 6)


def test_captions_are_clean_deterministic_and_fit(world, spec):
    train = world.scenes("train")
    assert caption(spec, train[5], "train", 5, seed=1) == caption(spec, train[5], "train", 5, seed=1)
    assert len({caption(spec, train[5], "train", 5, seed=1, epoch=e) for e in range(8)}) > 1  # augmentation
    bound = max_caption_words(spec, train)
    assert max(len(caption(spec, s, "train", i, 0, e).split()) for e in range(3) for i, s in enumerate(train)) <= bound


def test_text_pooling_is_at_the_eos_token(world, spec, proc):
    torch.set_num_threads(1)
    tok = proc.tokenizer
    texts = [caption(spec, s, "train", i, 0) for i, s in enumerate(world.scenes("train")[:6])]
    enc = encode_texts(tok, texts, 128)
    ids = enc["input_ids"]
    assert (ids[:, 0] == tok.bos_token_id).all()
    lengths = enc["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # some rows are padded ...
    eos_pos = lengths - 1  # ... on the right, after </s>
    assert (ids[torch.arange(len(ids)), eos_pos] == tok.eos_token_id).all()
    assert ((ids == tok.eos_token_id).sum(1) == 1).all()
    torch.manual_seed(0)
    clip = CLIPModel(clip_config(build_model(proc, 48, TINY, 0).config.vision_config, tok, 128)).eval()
    with torch.no_grad():
        out = clip.text_model(**enc)
    rows = torch.arange(len(ids))
    assert torch.allclose(out.pooler_output, out.last_hidden_state[rows, eos_pos])
    assert not torch.allclose(out.pooler_output, out.last_hidden_state[rows, ids.argmax(1)])  # not legacy argmax
    assert not torch.allclose(out.pooler_output, out.last_hidden_state[:, -1])  # not the last pad


def test_retrieval_counts_full_chunks():
    class Fake:
        def __call__(self, input_ids, attention_mask, pixel_values):
            return type("O", (), {"logits_per_image": pixel_values @ input_ids.T.float()})()

    eye = torch.eye(4)
    enc = {"input_ids": torch.eye(4, dtype=torch.long)[[0, 1, 3, 2]], "attention_mask": torch.ones(4, 4)}
    assert retrieval_top1(Fake(), eye, enc, ["a", "b", "c", "d"], chunk=2) == pytest.approx(0.5)
    assert retrieval_top1(Fake(), eye, enc, ["a", "b", "c", "c"], chunk=2) == pytest.approx(1.0)  # identical text
    assert retrieval_top1(Fake(), eye[:3], enc, ["a", "b", "c"], chunk=2) == pytest.approx(1.0)  # remainder out


def test_clip_moves_only_the_tower_lowers_the_loss_and_reports(world, spec, proc):
    torch.set_num_threads(1)
    model = build_model(proc, 48, TINY, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = pretrain_clip(
        model,
        proc,
        world,
        spec,
        VisionPretrainParams(epochs=20, learning_rate=3e-3, batch_size=16, weight_decay=0.01),
        seed=0,
        n_val=32,
    )
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("model.vision_tower.") for k in moved)
    assert any("encoder.layers" in k for k in moved)
    assert set(after) == set(before)  # no CLIP text tower or projection left in the model
    assert m["steps"] == 120 and m["loss_last"] < m["loss_first"] - 0.3  # 6 full batches of 16 per epoch
    assert m["val_retrieval_chunk"] == 32
    assert 0.0 <= m["val_retrieval_top1"] <= 1.0 and 0.0 <= m["val_presence_auroc"] <= 1.0
    assert all(0.0 <= a <= 1.0 for a in m["val_presence_auroc_per_category"].values())
    assert json.loads(json.dumps(m)) == m
    assert np.isfinite(m["logit_scale"]) and m["logit_scale"] <= 100.0 + 1e-4


def test_same_seed_same_tower(world, spec, proc):
    torch.set_num_threads(1)
    p = VisionPretrainParams(epochs=1, learning_rate=1e-3, batch_size=32, weight_decay=0.0)
    a, b = build_model(proc, 48, TINY, seed=0), build_model(proc, 48, TINY, seed=0)
    ma, mb = (
        pretrain_clip(a, proc, world, spec, p, seed=3, n_val=32),
        pretrain_clip(b, proc, world, spec, p, seed=3, n_val=32),
    )
    assert ma["loss_last"] == mb["loss_last"] and ma["val_retrieval_top1"] == mb["val_retrieval_top1"]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    c = build_model(proc, 48, TINY, seed=0)
    pretrain_clip(c, proc, world, spec, p, seed=4, n_val=32)
    assert not all(
        torch.equal(x, y) for x, y in zip(a.model.vision_tower.parameters(), c.model.vision_tower.parameters())
    )


def test_training_starts_from_the_llava_tower(world, spec, proc):
    """With a vanishing learning rate the tower comes back as it went in: CLIP's vision side was its copy."""
    torch.set_num_threads(1)
    model = build_model(proc, 48, TINY, seed=0)
    before = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
    pretrain_clip(
        model,
        proc,
        world,
        spec,
        VisionPretrainParams(epochs=1, learning_rate=1e-12, batch_size=32, weight_decay=0.0),
        seed=0,
        n_val=32,
    )
    after = model.model.vision_tower.state_dict()
    assert all(torch.allclose(before[k], after[k], atol=1e-8) for k in before)


def test_legacy_eos_id_is_refused(proc):
    class Tok:
        pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

        def __len__(self):
            return 10

    with pytest.raises(ValueError, match="eos_token_id == 2"):
        clip_config(build_model(proc, 48, TINY, 0).config.vision_config, Tok(), 16)
