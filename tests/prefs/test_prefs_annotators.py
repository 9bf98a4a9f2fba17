"""Oracle on hand-made cases; the noisy oracle's measured accuracy matches its knob."""

import numpy as np
import pytest

from study.prefs import NoisyOracleAnnotator, OracleAnnotator, annotator_accuracy, check_claims, qa_grade
from study.prefs.annotators import W_ERROR, W_HALLUCINATION
from study.prefs.facts import parse_prompt
from study.prefs.povid import povid_recipe
from study.prefs.sources import scene_map

OBJS = [("cup", "white", "large", 0, 0), ("plate", "blue", "small", 1, 1), ("fork", "yellow", "small", 2, 2)]
TRUE = (
    "this is a kitchen scene . there is a large white cup at the top left . "
    "a small blue plate is at the center . i can see a small yellow fork at the bottom right ."
)


def test_oracle_descriptions(spec, make_scene):
    o = OracleAnnotator(spec)
    scene = make_scene(OBJS)
    prompt = "describe the image in detail ."
    assert o.score(scene, prompt, TRUE) == pytest.approx(1.0)
    halluc = TRUE + " there is a small green bottle at the top ."
    assert o.score(scene, prompt, halluc) == pytest.approx(1.0 - W_HALLUCINATION)
    wrong_color = TRUE.replace("small blue plate", "small red plate")
    assert o.score(scene, prompt, wrong_color) == pytest.approx(11 / 12 - W_ERROR)
    partial = "there is a large white cup at the top left ."
    assert o.score(scene, prompt, partial) == pytest.approx(4 / 12)
    false_rel = TRUE + " the fork is left of the cup ."
    assert check_claims(false_rel, scene, spec).errors["false_relation"] == 1
    assert o.score(scene, prompt, false_rel) == pytest.approx(1.0 - W_ERROR)
    assert o.score(scene, prompt, TRUE + " the cup is left of the fork .") == pytest.approx(1.0)
    assert o.prefer(scene, prompt, halluc, TRUE) == 1
    assert o.prefer(scene, prompt, TRUE, wrong_color) == 0
    assert o.score(scene, prompt, "") == 0.0
    # preference is Pareto on (false claims, facts stated): the scalar's 4/12 < 1 - 0.5 does not decide it
    assert o.judge(scene, prompt, partial, halluc, 0.0, 0.0) is None  # says less vs errs more
    assert o.judge(scene, prompt, TRUE, partial, 0.0, 0.0) == 0  # more facts, no more errors
    assert o.judge(scene, prompt, halluc, TRUE, 0.0, 0.0) == 1  # same facts, one more error
    assert o.judge(scene, prompt, TRUE, TRUE + " the cup is left of the fork .", 0.0, 0.0) is None


def test_oracle_judge_is_length_neutral(spec, make_scene):
    """Adding a true sentence wins, a false one loses, one of each ties, and the empty answer beats
    nothing that states a fact (the scalar score preferred "" to one right + one wrong object)."""
    o = OracleAnnotator(spec)
    scene = make_scene(OBJS)
    prompt = "describe the image in detail ."
    base = "there is a large white cup at the top left ."
    right = base + " a small blue plate is at the center ."
    wrong = base + " there is a small green bottle at the bottom left ."
    both = right + " there is a small green bottle at the bottom left ."
    j = lambda a, b: o.judge(scene, prompt, a, b, o.score(scene, prompt, a), o.score(scene, prompt, b))  # noqa: E731
    assert j(right, base) == 0 and j(wrong, base) == 1 and j(both, base) is None
    one_each = "there is a large white cup at the top left . there is a small green bottle at the bottom left ."
    assert o.score(scene, prompt, "") > o.score(scene, prompt, one_each)  # the scalar rewards saying nothing
    assert j("", one_each) is None  # the judge does not
    assert j("", base) == 1
    ranks = o.rank(scene, prompt, [base, right, wrong, both])
    assert ranks == [0.0, 3.0, -3.0, 0.0]  # right dominates the other three; every other answer dominates wrong


def test_oracle_short_qa(spec, make_scene):
    o = OracleAnnotator(spec)
    scene = make_scene(OBJS)
    cases = [
        ("is there a cup in the image ?", "yes , there is a cup .", 1),
        ("is there a cup in the image ?", "no , there is no cup .", -1),
        ("does the image contain a bottle ?", "no , there is no bottle .", 1),
        ("is there a mug in this picture ?", "yes , there is a mug .", 1),  # synonym of cup
        ("what color is the plate ?", "the plate is blue .", 1),
        ("what color is the plate ?", "the plate is red .", -1),
        ("what color is the bottle ?", "there is no bottle in the image .", 1),
        ("what color is the bottle ?", "the bottle is green .", -1),
        ("what color is the plate ?", "it is .", 0),
        ("how many cups are there ?", "there is one cup .", 1),
        ("how many cups are there ?", "there are two cups .", -1),
        ("how many bottles are there ?", "there are no bottles .", 1),
        ("is the cup left of the fork ?", "yes , the cup is left of the fork .", 1),
        ("is the cup right of the fork ?", "yes , the cup is right of the fork .", -1),
        ("is the cup right of the fork ?", "no , the cup is not right of the fork .", 1),
        ("is there a cup in the image ?", "", 0),
    ]
    for prompt, answer, expected in cases:
        assert parse_prompt(prompt, spec)["kind"] != "describe", prompt
        assert o.score(scene, prompt, answer) == expected, (prompt, answer)
        assert qa_grade(parse_prompt(prompt, spec), answer, scene, spec) == expected


def test_prefer_ties_are_random_but_consistent(spec, make_scene):
    o = OracleAnnotator(spec)
    scene = make_scene(OBJS)
    picks = []
    for k in range(40):
        a, b = f"yes , there is a cup . {'the' * (k + 1)}", "yes , there is a cup ."
        p = o.prefer(scene, "is there a cup in the image ?", a, b)
        assert o.prefer(scene, "is there a cup in the image ?", b, a) == 1 - p  # same winner either order
        picks.append(p)
    assert 5 < sum(picks) < 35  # ties are split, not always the first answer


def test_noisy_oracle_accuracy_matches_knob(spec, world):
    rows = povid_recipe(world, n=None, seed=0, split="train") + povid_recipe(world, n=None, seed=1, split="train")
    rows = rows[:2000]
    scenes = scene_map(world)
    assert len(rows) == 2000
    assert annotator_accuracy(OracleAnnotator(spec), rows, scenes) == 1.0

    class CachedOracle(OracleAnnotator):  # the same scores, computed once for the repeated measurements
        cache: dict = {}

        def score(self, scene, prompt, answer):
            key = (scene.scene_id, prompt, answer)
            if key not in self.cache:
                self.cache[key] = super().score(scene, prompt, answer)
            return self.cache[key]

    oracle = CachedOracle(spec)
    for acc, seed in ((0.6, 0), (0.8, 0), (0.8, 1), (0.95, 0), (0.95, 1)):
        measured = annotator_accuracy(NoisyOracleAnnotator(spec, acc, seed=seed, oracle=oracle), rows, scenes)
        tol = 3.5 * np.sqrt(acc * (1 - acc) / len(rows)) + 0.005  # about 3 points at 0.8, 2 at 0.95
        assert abs(measured - acc) < tol, (acc, seed, measured, len(rows))
    assert annotator_accuracy(NoisyOracleAnnotator(spec, 1.0, oracle=oracle), rows, scenes) == 1.0
    assert abs(annotator_accuracy(NoisyOracleAnnotator(spec, 0.5, oracle=oracle), rows, scenes) - 0.5) < 0.05
    with pytest.raises(ValueError, match="accuracy"):
        NoisyOracleAnnotator(spec, 0.4)


def test_noisy_oracle_is_deterministic_and_order_free(spec, make_scene):
    n = NoisyOracleAnnotator(spec, 0.7, seed=3)
    scene = make_scene(OBJS)
    bad = TRUE + " there is a small green bottle at the top ."
    p = n.prefer(scene, "describe .", TRUE, bad)
    assert n.prefer(scene, "describe .", TRUE, bad) == p
    assert n.prefer(scene, "describe .", bad, TRUE) == 1 - p
    ranks = n.rank(scene, "describe .", [TRUE, bad, TRUE + " the cup is left of the fork ."])
    assert sum(ranks) == 3  # Copeland wins over 3 pairs


def test_always_first_annotator_scores_half(spec, world):
    from study.prefs.annotators import Annotator

    class First(Annotator):
        def score(self, scene, prompt, answer):
            return 0.0

        def prefer_from_scores(self, scene, prompt, a, b, sa, sb):
            return 0

    rows = povid_recipe(world, n=300, seed=0)
    acc = annotator_accuracy(First(), rows, scene_map(world))
    assert 0.35 < acc < 0.65
