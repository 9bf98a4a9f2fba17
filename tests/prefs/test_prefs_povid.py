"""POVID: every corruption is a verified hallucination; injected objects are absent; rejected_2; noise."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from study.eval.mentions import asserted_categories
from study.prefs import OracleAnnotator, check_claims, corrupt, povid_recipe, qa_grade
from study.prefs.facts import parse_prompt
from study.prefs.povid import CORRUPTION_TYPES, _local_add_diffusion_noise, _local_betas, teacher_forced_rejections
from study.prefs.sources import corpus_items, scene_map
from study.world.scenes import cooccurrence

ERROR_OF = {
    "object_replace": ("hallucinated_object",),
    "object_insert": ("hallucinated_object",),
    "attribute": ("wrong_color", "wrong_size", "wrong_position"),
    "count": ("wrong_position", "wrong_count", "false_denial", "hallucinated_object"),
    "relation": ("false_relation",),
    "qa_exist_flip": ("false_denial", "hallucinated_object"),
}


def _kind_errors(report):
    out = Counter()
    for e, k in report.errors.items():
        out[e.split(":")[0]] += k
    return out


@pytest.mark.parametrize("ctype", CORRUPTION_TYPES)
def test_each_corruption_is_a_detectable_hallucination(spec, world, ctype):
    scenes = scene_map(world)
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    oracle = OracleAnnotator(spec)
    rng = np.random.default_rng(0)
    made = 0
    for it in corpus_items(world, "train")[:240]:
        scene = scenes[it["scene_id"]]
        c = corrupt(it["answer"], it["prompt"], scene, spec, cooc, rng, max_edits=1, types=(ctype,), oracle=oracle)
        if c is None:
            continue
        made += 1
        before, after = check_claims(it["answer"], scene, spec), check_claims(c.text, scene, spec)
        assert after.n_errors > before.n_errors, (it, c)
        assert oracle.score(scene, it["prompt"], c.text) < oracle.score(scene, it["prompt"], it["answer"])
        assert len(c.edits) == 1
        edit = c.edits[0]
        kinds = ERROR_OF.get(edit["type"], ERROR_OF[ctype])
        grew = _kind_errors(after) - _kind_errors(before)
        if parse_prompt(it["prompt"], spec)["kind"] == "describe":
            assert edit["type"] == ctype
            assert any(grew[k] > 0 for k in kinds), (edit, grew)
        if edit["type"] in ("object_replace", "object_insert"):
            obj = edit["object"]
            assert obj not in scene.categories  # the injected object is absent from the scene
            assert obj in asserted_categories(c.text, spec)  # and the exact mention parser sees it asserted
            assert obj not in asserted_categories(it["answer"], spec)
    assert made >= 20, (ctype, made)


def test_qa_corruptions_flip_the_grade(spec, world):
    scenes = scene_map(world)
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    rng = np.random.default_rng(1)
    seen = Counter()
    for it in corpus_items(world, "train", kinds=("exist", "color", "count", "relation"))[:200]:
        scene, q = scenes[it["scene_id"]], parse_prompt(it["prompt"], spec)
        assert qa_grade(q, it["answer"], scene, spec) == 1  # the corpus answers are correct
        c = corrupt(it["answer"], it["prompt"], scene, spec, cooc, rng)
        assert c is not None
        assert qa_grade(q, c.text, scene, spec) == -1, (it, c)
        seen[it["kind"]] += 1
    assert set(seen) == {"exist", "color", "count", "relation"}


def test_povid_recipe_schema_and_provenance(spec, world):
    rows = povid_recipe(world, n=25, seed=3)
    again = povid_recipe(world, n=25, seed=3)
    other = povid_recipe(world, n=25, seed=4)
    assert rows == again and rows != other and len(rows) == 25
    truth = {(it["scene_id"], it["prompt"]): it["answer"] for it in corpus_items(world, "train")}
    types = Counter()
    for r in rows:
        assert r["recipe"] == "povid" and r["seed"] == 3 and r["rejected_2"] == ""
        assert r["chosen"] == truth[(r["scene_id"], r["prompt"])]  # chosen = SFT ground truth
        src = json.loads(r["source_ids"])
        assert src["chosen"] == "corpus:train" and src["rejected"] == "povid_corruption" and src["edits"]
        types.update(e["type"] for e in src["edits"])
    assert len(types) >= 4
    llava = povid_recipe(world, n=10, seed=0, prompt_source="llava")
    assert {json.loads(r["source_ids"])["kind"] for r in llava} == {"describe"}


def test_rejected_2_noisy_teacher_forcing(spec, world, tiny):
    model, processor = tiny
    rows = povid_recipe(world, n=6, seed=0, model=model, processor=processor, model_id="tiny")
    assert len(rows) == 6
    for r in rows:
        src = json.loads(r["source_ids"])
        assert src["rejected_2"].startswith("noisy_tf:tiny:N=500")
        assert r["rejected_2"] and r["rejected_2"] != r["chosen"]
        assert len(r["rejected_2"].split()) == len(r["chosen"].split())  # one prediction per chosen token
    # teacher forcing reads the chosen prefix: a model that copies its input shifts the answer by one
    images = [world.image(rows[0]["scene_id"])]
    out = teacher_forced_rejections(model, processor, images, [rows[0]["prompt"]], [rows[0]["chosen"]], noise_steps=0)
    assert len(out[0].split()) == len(rows[0]["chosen"].split())


def test_diffusion_noise_schedule():
    b = _local_betas()
    assert b[0] == pytest.approx(1 / (1 + np.exp(6)) * (5e-3 - 1e-5) + 1e-5)
    assert 1e-5 < b.min() < b.max() < 5e-3 and len(b) == 1000
    abar = float(np.prod(1 - b[:500]))
    gray = Image.fromarray(np.full((64, 64, 3), 127, np.uint8))
    assert _local_add_diffusion_noise(gray, 0, np.random.default_rng(0)) is gray
    x = np.asarray(_local_add_diffusion_noise(gray, 500, np.random.default_rng(0)), dtype=float) / 127.5 - 1
    assert x.std() == pytest.approx(np.sqrt(1 - abar), rel=0.05)
    try:
        from study.bdhs.noise import alpha_bar
    except Exception:
        return
    assert alpha_bar(500) == pytest.approx(abar)
