"""The BDHS loop on a tiny random LLaVA: params, acceptance, the unguided last try, batching, seeding."""

from dataclasses import replace

import pytest
import torch

from study.bdhs import bdhs_sample, sampler
from study.bdhs.stage import bdhs_params
from study.config import load_section

CHOSEN = [
    "this is a park scene . a small green tree is at the top .",
    "yes , there is a cup .",
    "a large red car is at the left",  # no sentence terminator
    "the image shows a office scene . i can see a small white laptop at the center . the lamp is left of the book .",
]
PROMPTS = ["describe the image in detail ."] * 4


def run(tiny, images, encoder, seed=0, **kw):
    model, processor = tiny
    params = replace(bdhs_params(load_section("bdhs")), **{"rho_th": 0.5, "max_new_tokens": 4, **kw})
    return bdhs_sample(model, processor, images, PROMPTS, CHOSEN, params, encoder, seed, progress=False)


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("rho_th", 1.5, r"\[0, 1\]"),
        ("rho_th", -0.1, r"\[0, 1\]"),
        ("eps_s", 1.2, r"\[-1, 1\]"),
        ("n_bdhs", 0, ">= 1"),
        ("noise_steps", 1001, r"\[0, 1000\]"),
        ("noise_steps", -1, r"\[0, 1000\]"),
    ],
)
def test_invalid_params_name_the_parameter(name, value, allowed):
    kw = {"rho_th": 0.5, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be in .*{allowed}"):
        replace(bdhs_params(load_section("bdhs")), **kw)


def test_nothing_accepted_early_ends_unguided(tiny, images, encoder):
    res = run(tiny, images, encoder, eps_s=-1.0, n_bdhs=3)
    assert [r.iterations for r in res] == [3] * 4
    assert not any(r.guided for r in res)
    assert all(len(r.history) == 3 and r.history[-1] == r.similarity for r in res)


def test_everything_accepted_at_first_guided_try(tiny, images, encoder):
    res = run(tiny, images, encoder, eps_s=1.0, n_bdhs=5)
    assert [r.iterations for r in res] == [1] * 4
    assert all(r.guided and len(r.history) == 1 and -1 <= r.similarity <= 1 for r in res)


def test_single_iteration_is_guided_and_accepted(tiny, images, encoder):
    res = run(tiny, images, encoder, eps_s=-1.0, n_bdhs=1)
    assert all(r.iterations == 1 and r.guided for r in res)


def test_same_seed_same_results(tiny, images, encoder):
    a = run(tiny, images, encoder, seed=3, eps_s=0.5, n_bdhs=2, noise_steps=200)
    b = run(tiny, images, encoder, seed=3, eps_s=0.5, n_bdhs=2, noise_steps=200)
    c = run(tiny, images, encoder, seed=4, eps_s=0.5, n_bdhs=2, noise_steps=200)
    assert a == b
    assert [r.rejected for r in a] != [r.rejected for r in c]


def test_visible_tokens_follow_rho(tiny, images, encoder):
    assert [r.visible_tokens for r in run(tiny, images, encoder, rho_th=0.0, eps_s=1.0)] == [64] * 4
    assert [r.visible_tokens for r in run(tiny, images, encoder, rho_th=1.0, eps_s=1.0)] == [0] * 4


def test_bad_rows_are_named(tiny, images, encoder):
    model, processor = tiny
    p = replace(bdhs_params(load_section("bdhs")), rho_th=0.5)
    with pytest.raises(ValueError, match="row 2"):
        bdhs_sample(model, processor, [images[0], images[1], None, images[3]], PROMPTS, CHOSEN, p, encoder, 0)
    with pytest.raises(ValueError, match="row 1"):
        bdhs_sample(model, processor, images, PROMPTS, [CHOSEN[0], "  ", *CHOSEN[2:]], p, encoder, 0)


def test_one_batched_call_per_iteration(tiny, images, encoder, monkeypatch):
    """Every sentence of every pending sample goes into ONE generate call; the last call is unguided."""
    calls = []

    def fake_generate(model, processor, imgs, prompts, *, prefixes, stop_at_sentence, max_new_tokens, keep_fn, **kw):
        g = torch.Generator().manual_seed(0)
        [keep_fn(64, g) for _ in prompts]  # as apply_image_keep does: once per row, in row order
        calls.append(
            {
                "n": len(prompts),
                "prefixes": prefixes,
                "images": imgs,
                "stop": stop_at_sentence,
                "budget": max_new_tokens,
            }
        )
        return ["zebra crossing ." for _ in prompts]

    monkeypatch.setattr(sampler, "generate", fake_generate)
    res = run(tiny, images, encoder, eps_s=-1.0, n_bdhs=3, max_new_tokens=5)
    n_sent = [2, 1, 1, 3]
    assert [c["n"] for c in calls] == [sum(n_sent), sum(n_sent), 4]
    assert [c["stop"] for c in calls] == [True, True, False]
    assert calls[-1]["prefixes"] is None and calls[-1]["budget"] == 5 * 3
    by_sample = [
        sorted((pre for pre, im in zip(calls[0]["prefixes"], calls[0]["images"]) if im is img), key=len)
        for img in images
    ]  # noise_steps = 0: the images themselves
    assert [len(p) for p in by_sample] == n_sent
    first, second = by_sample[0]
    assert CHOSEN[0].startswith(first) and len(first.split()) < 6  # kept part of sentence 1
    assert second.startswith("this is a park scene .")  # GT sentence 1 + kept part of 2
    assert by_sample[1][0].split()[0] in ("yes", "no")
    assert CHOSEN[2].startswith(by_sample[2][0])  # no terminator: one row
    assert all(r.rejected == "zebra crossing ." for r in res)


def test_guided_rejection_rejoins_the_reference(tiny, images, encoder, monkeypatch):
    def fake_generate(m, p, imgs, prompts, *, keep_fn, **kw):
        [keep_fn(64, torch.Generator()) for _ in prompts]
        return ["zebra ." for _ in prompts]

    monkeypatch.setattr(sampler, "generate", fake_generate)
    res = run(tiny, images, encoder, eps_s=1.0)
    sentences = res[3].rejected.split(" . ")
    assert len(sentences) == 3 and res[3].rejected.endswith("zebra .")
    assert res[2].rejected.endswith("zebra .") and res[2].rejected.count(".") == 1
