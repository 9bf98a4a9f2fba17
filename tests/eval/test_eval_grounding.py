"""Grounding instruments on cases whose answer is known by construction."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from study.config import load_section
from study.eval.grounding import (
    answer_logprobs,
    auroc,
    auroc_ci,
    auroc_gain_ci,
    image_features,
    presence_probe,
    single_token_ids,
    yes_no_margins,
)
from study.model.build import build_model
from study.model.generate import apply_image_keep, image_token_id, keep_none, render_prompts
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


def _pairwise_auroc(s, y, w=None):
    w = np.ones(len(s)) if w is None else w
    num = den = 0.0
    for i, j in itertools.product(range(len(s)), repeat=2):
        if y[i] == 1 and y[j] == 0:
            den += w[i] * w[j]
            num += w[i] * w[j] * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / den


def test_auroc_known_values_and_brute_force():
    assert auroc([3, 2, 1, 0], [1, 1, 0, 0]) == 1.0
    assert auroc([0, 1, 2, 3], [1, 1, 0, 0]) == 0.0
    assert auroc([5, 5, 5, 5], [1, 0, 1, 0]) == 0.5  # a constant score: chance
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 40).astype(float), rng.integers(0, 2, 40)
    assert auroc(s, y) == pytest.approx(_pairwise_auroc(s, y))
    assert np.isnan(auroc([1, 2], [1, 1]))


def test_auroc_ci_resamples_groups_and_brackets_the_value():
    rng = np.random.default_rng(1)
    y = np.tile([1, 0], 100)
    s = y + rng.normal(0, 1.0, 200)
    groups = [f"s{i // 4}" for i in range(200)]
    r = auroc_ci(s, y, groups, n_boot=300, seed=0)
    assert r["ci95"][0] < r["value"] < r["ci95"][1]
    assert 0.6 < r["value"] < 0.9
    assert auroc_ci(s, y, groups, n_boot=300, seed=0) == r  # same seed, same interval
    gain = auroc_gain_ci(s, np.zeros(200), y, groups, n_boot=300, seed=0)
    assert gain["value"] == pytest.approx(r["value"] - 0.5)
    assert gain["ci95"][0] > 0


class _PresenceModel(torch.nn.Module):
    """A hand-made 'LLaVA': its yes-logit is the mean brightness of the image tokens it may attend to,
    and a constant when every image token is masked. A bright image means the object is present."""

    def __init__(self, processor):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        tok = processor.tokenizer
        self.config = SimpleNamespace(image_token_id=tok.convert_tokens_to_ids("<image>"))
        self.yes, self.no, self.vocab = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no"), len(tok)

    def forward(self, input_ids, pixel_values, attention_mask, position_ids, logits_to_keep=0, **kw):
        seen = ((input_ids == self.config.image_token_id) & attention_mask.bool()).any(-1).float()
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        logits[:, 0, self.yes] = seen * pixel_values.mean(dim=(1, 2, 3)) * 10
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def processor(spec):
    return build_processor(vocabulary(spec), 48, 6)


def _img(v):
    return Image.fromarray(np.full((48, 48, 3), v, np.uint8))


def test_a_model_that_reads_presence_gets_auroc_1_and_blind_it_gets_0_5(processor):
    model = _PresenceModel(processor)
    labels = [1, 0] * 6
    images = [_img(220 if y else 30) for y in labels]
    prompts = ["is there a cup in the image ?"] * len(labels)
    with_img = yes_no_margins(model, processor, images, prompts, batch_size=5)
    blind = yes_no_margins(model, processor, images, prompts, masked=True, batch_size=5)
    assert auroc(with_img, labels) == 1.0
    assert auroc(blind, labels) == 0.5
    assert np.allclose(blind, blind[0])


def test_yes_no_tokens_are_single_word_tokens(processor):
    tok = processor.tokenizer
    assert single_token_ids(tok, ("yes", "Yes")) == [tok.convert_tokens_to_ids("yes")]  # "Yes" is not in the vocabulary
    with pytest.raises(ValueError, match="single token"):
        single_token_ids(tok, ("Oui",))


@pytest.fixture(scope="module")
def tiny(processor):
    m = build_model(processor, 48, TINY, seed=0)
    m.eval()
    return m


def test_masked_margins_do_not_depend_on_the_image_on_a_real_llava(tiny, processor):
    images = [_img(v) for v in (0, 90, 250)]
    prompts = ["is there a cup in the image ?"] * 3
    blind = yes_no_margins(tiny, processor, images, prompts, masked=True)
    seen = yes_no_margins(tiny, processor, images, prompts)
    assert np.allclose(blind, blind[0], atol=1e-5)
    assert not np.allclose(seen, seen[0], atol=1e-5)


def test_answer_logprobs_equal_a_token_by_token_sum(tiny, processor):
    images = [_img(10), _img(200)]
    prompts = ["describe the image in detail .", "is there a cup in the image ?"]
    answers = ["there is a small red cup at the top .", "no , there is no cup ."]
    lp, n = answer_logprobs(tiny, processor, images, prompts, answers, batch_size=2)
    lp_masked, _ = answer_logprobs(tiny, processor, images, prompts, answers, masked=True, batch_size=1)
    tok = processor.tokenizer
    assert list(n) == [len(a.split()) for a in answers]
    full = render_prompts(processor, prompts, answers)
    for b in range(2):
        for masked, got in ((False, lp[b]), (True, lp_masked[b])):
            enc = processor(images=[images[b]], text=[full[b]], return_tensors="pt")
            attn, pos, _ = apply_image_keep(
                enc["input_ids"],
                enc["attention_mask"],
                image_token_id(tiny),
                keep_none if masked else (lambda k, g: torch.ones(k, dtype=torch.bool)),
                torch.Generator(),
            )
            with torch.no_grad():
                logits = tiny(
                    input_ids=enc["input_ids"], pixel_values=enc["pixel_values"], attention_mask=attn, position_ids=pos
                ).logits[0]
            ids = enc["input_ids"][0]
            k = int(n[b])
            want = sum(torch.log_softmax(logits[t - 1], -1)[ids[t]].item() for t in range(len(ids) - k, len(ids)))
            assert got == pytest.approx(want, abs=1e-4)
    assert tok is processor.tokenizer


def test_image_features_have_mean_and_max_pools(tiny, processor):
    f = image_features(tiny, processor, [_img(0), _img(255), _img(0)], batch_size=2)
    assert f.shape == (3, 2 * TINY.text_hidden)
    assert np.allclose(f[0], f[2], atol=1e-5) and not np.allclose(f[0], f[1], atol=1e-3)


def test_presence_probe_sees_a_feature_that_encodes_presence_and_not_noise():
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.integers(0, 2, (400, 3)).astype(float), rng.integers(0, 2, (200, 3)).astype(float)
    informative = presence_probe(
        np.c_[y_tr + rng.normal(0, 0.3, y_tr.shape), rng.normal(size=(400, 5))],
        y_tr,
        np.c_[y_te + rng.normal(0, 0.3, y_te.shape), rng.normal(size=(200, 5))],
        y_te,
        ["a", "b", "c"],
    )
    noise = presence_probe(rng.normal(size=(400, 8)), y_tr, rng.normal(size=(200, 8)), y_te, ["a", "b", "c"])
    assert informative["mean_auroc"] > 0.95
    assert 0.35 < noise["mean_auroc"] < 0.65
    assert set(informative["per_category"]) == {"a", "b", "c"}
