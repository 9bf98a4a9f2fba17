"""On-policy-ness and image dependence of preference datasets, on answers whose likelihoods are known."""

import numpy as np
import pytest

from study.config import load_section
from study.eval import pref_grounding as pg
from study.model.stage import model_params_of


class _World:
    def image(self, scene_id):
        return scene_id


def _fake_logprobs(model, processor, images, prompts, answers, masked=False, batch_size=32):
    """Per token: -1 for an answer that names the cup, -2 otherwise; -3 for every answer without the image."""
    n = np.array([len(a.split()) for a in answers])
    per = np.array([-3.0 if masked else (-1.0 if "cup" in a else -2.0) for a in answers])
    return per * n, n


class _Model:
    def eval(self):
        return self


def test_means_and_paired_margins(monkeypatch):
    monkeypatch.setattr(pg, "answer_logprobs", _fake_logprobs)
    rows = [
        {
            "scene_id": f"train-{i // 2}",
            "prompt": "describe the image in detail .",
            "chosen": "there is a cup .",
            "rejected": "there is a fork here .",
            "rejected_2": "a plate ." if i % 2 else "",
        }
        for i in range(10)
    ]
    r = pg.pref_grounding(_Model(), None, _World(), rows, n_boot=50, seed=0)
    assert r["pairs"] == 10
    assert r["chosen"]["logp_per_token"]["value"] == pytest.approx(-1.0)
    assert r["rejected"]["logp_per_token"]["value"] == pytest.approx(-2.0)
    assert r["chosen"]["image_dependence"]["value"] == pytest.approx(2.0)  # -1 - (-3)
    assert r["rejected"]["image_dependence"]["value"] == pytest.approx(1.0)
    assert r["rejected_2"]["answers"] == 5  # empty second rejections skipped
    assert r["logp_per_token_margin"]["value"] == pytest.approx(1.0)
    assert r["image_dependence_margin"]["value"] == pytest.approx(1.0)
    assert r["chosen"]["tokens_per_answer"] == 5  # "there is a cup ."
    lo, hi = r["chosen"]["logp_per_token"]["ci95"]
    assert lo == pytest.approx(-1.0) and hi == pytest.approx(-1.0)  # constant values: no spread
    table = pg.grounding_table({"toy": r})
    assert table[0]["dataset"] == "toy" and table[0]["rejected image dep."] == pytest.approx(1.0)


def test_a_real_llava_gives_finite_numbers(spec):
    from PIL import Image

    from study.model.build import build_model
    from study.model.processor import build_processor
    from study.world.language import vocabulary

    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(
        proc,
        48,
        model_params_of(
            load_section("model"),
            text_hidden=32,
            text_layers=1,
            vision_hidden=16,
            vision_layers=1,
            text_intermediate=64,
        ),
        seed=0,
    )

    class W:
        def image(self, sid):
            return Image.fromarray(np.full((48, 48, 3), 40 * int(sid[-1]), np.uint8))

    rows = [
        {
            "scene_id": f"train-{i}",
            "prompt": "describe the image in detail .",
            "chosen": "there is a cup .",
            "rejected": "there is a red fork at the top .",
            "rejected_2": "",
        }
        for i in range(4)
    ]
    r = pg.pref_grounding(model, proc, W(), rows, batch_size=3, n_boot=20)
    assert "rejected_2" not in r
    for side in ("chosen", "rejected"):
        assert np.isfinite(r[side]["logp_per_token"]["value"]) and r[side]["logp_per_token"]["value"] < 0
        assert r[side]["image_dependence"]["value"] != 0  # a random LLaVA sees its image
