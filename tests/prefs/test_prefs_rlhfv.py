"""RLHF-V: the scene-graph correction removes every hallucination and never lowers the oracle score."""

import json

import numpy as np

from study.eval.chair import chair_stats
from study.prefs import OracleAnnotator, check_claims, correct_answer, corrupt, rlhfv_recipe
from study.prefs.sources import corpus_items, scene_map
from study.world import language
from study.world.scenes import cooccurrence

OBJS = [("cup", "white", "large", 0, 0), ("plate", "blue", "small", 1, 1), ("fork", "yellow", "small", 2, 2)]
P = "describe the image in detail ."


def test_hand_made_corrections(spec, make_scene):
    scene = make_scene(OBJS)
    # a hallucinated object at an empty cell: the sentence is dropped
    c = correct_answer(
        "there is a large white cup at the top left . there is a small green bottle at the top .", P, scene, spec
    )
    assert c.text == "there is a large white cup at the top left ."
    assert [e["type"] for e in c.edits] == ["drop_hallucination"]
    # a hallucinated object at the cell of an undescribed object: the noun and attributes are fixed
    c = correct_answer(
        "there is a large white cup at the top left . a large green bottle is at the center .", P, scene, spec
    )
    assert c.text == "there is a large white cup at the top left . a small blue plate is at the center ."
    # wrong colour and position are fixed from the closest instance
    c = correct_answer("i can see a small red plate at the center . the cup is right of the fork .", P, scene, spec)
    assert c.text == "i can see a small blue plate at the center . the cup is left of the fork ."
    # a false denial is dropped, a wrong context fixed
    c = correct_answer(
        "this is a street scene . there is no cup . a small yellow fork is at the bottom right .", P, scene, spec
    )
    assert c.text == "this is a kitchen scene . a small yellow fork is at the bottom right ."
    # a correct answer needs no correction
    ok = "there is a large white cup at the top left ."
    assert not correct_answer(ok, P, scene, spec).changed
    # short QA: a wrong answer becomes the template answer
    c = correct_answer("yes , there is a bottle .", "is there a bottle in the image ?", scene, spec)
    assert c.text == "no , there is no bottle ."
    c = correct_answer("there are two cups .", "how many cups are there ?", scene, spec)
    assert c.text == "there is one cup ."
    assert not correct_answer("the plate is blue .", "what color is the plate ?", scene, spec).changed


def _hallucinating_answers(spec, world, n_rounds=2):
    """Corpus answers corrupted (1-2 edits, possibly twice) plus word salad: answers with many errors."""
    scenes = scene_map(world)
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    rng = np.random.default_rng(0)
    out = []
    vocab = sorted(spec.word_to_category()) + list(spec.colors) + ["there", "is", "a", "at", "the", "left", "of", "."]
    for it in corpus_items(world, "train")[:240]:
        scene = scenes[it["scene_id"]]
        text = it["answer"]
        for _ in range(n_rounds):
            c = corrupt(text, it["prompt"], scene, spec, cooc, rng)
            text = c.text if c is not None else text
        out.append((it, text))
        salad = " ".join(vocab[int(i)] for i in rng.integers(len(vocab), size=12)) + " ."
        out.append((it, salad))
    return out


def test_correction_removes_every_hallucinated_object(spec, world):
    scenes = scene_map(world)
    oracle = OracleAnnotator(spec)
    fixed = 0
    for it, answer in _hallucinating_answers(spec, world):
        scene = scenes[it["scene_id"]]
        c = correct_answer(answer, it["prompt"], scene, spec)
        if not c.changed:
            assert check_claims(answer, scene, spec).n_errors == 0
            continue
        fixed += 1
        assert chair_stats(c.text, scene, spec)["hallucinated"] == 0, (answer, c.text)
        assert check_claims(c.text, scene, spec).n_errors == 0, (answer, c.text)
        assert oracle.score(scene, it["prompt"], c.text) >= oracle.score(scene, it["prompt"], answer), (answer, c.text)
    assert fixed >= 100


def test_rlhfv_recipe_skips_correct_answers(spec, world):
    scenes = scene_map(world)
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    rng = np.random.default_rng(0)
    bad = {}

    def hallucinate(it):
        c = corrupt(true_answer(it), it["prompt"], scenes[it["scene_id"]], spec, cooc, rng)
        bad[(it["scene_id"], it["prompt"])] = c.text
        return c.text

    def true_answer(it):  # corpus QA answers are exact; descriptions are redrawn without caption noise
        if it["kind"] != "describe":
            return it["answer"]
        return language.describe(spec, scenes[it["scene_id"]], np.random.default_rng(0), noise_rate=0.0)[0]

    def answer_fn(items):  # even items answer correctly (nothing to correct), odd ones hallucinate
        return [true_answer(it) if k % 2 == 0 else hallucinate(it) for k, it in enumerate(items)]

    rows = rlhfv_recipe(world, n=15, seed=0, answer_fn=answer_fn, model_id="fake")
    assert 0 < len(rows) <= 15
    oracle = OracleAnnotator(spec)
    for r in rows:
        assert r["rejected"] == bad[(r["scene_id"], r["prompt"])]  # only the hallucinating answers survive
        assert r["recipe"] == "rlhfv" and r["seed"] == 0
        src = json.loads(r["source_ids"])
        assert src["chosen"] == "correction:scene_graph" and src["rejected"] == "fake:sample" and src["edits"]
        scene = scenes[r["scene_id"]]
        assert check_claims(r["chosen"], scene, spec).n_errors == 0
        assert oracle.score(scene, r["prompt"], r["chosen"]) >= oracle.score(scene, r["prompt"], r["rejected"])


def test_rlhfv_recipe_with_a_model(spec, world, tiny):
    model, processor = tiny
    rows = rlhfv_recipe(world, n=4, seed=0, model=model, processor=processor, max_new_tokens=10, overdraw=4)
    assert len(rows) == 4  # a random model's word salad always needs correcting
    scenes = scene_map(world)
    for r in rows:
        assert chair_stats(r["chosen"], scenes[r["scene_id"]], spec)["hallucinated"] == 0
