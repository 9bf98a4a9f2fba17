"""Reference-guided pieces: sentence split, token cuts, the yes/no flip, prefixes and joining."""

from collections import Counter

import numpy as np
import pytest

from study.bdhs.guided import GuidedPlan, assistant_prefixes, chosen_sentences, cut_sentence, flip_yes_no, join, plan


def test_sentences_and_no_terminator():
    assert chosen_sentences("a cup . a dog is here .") == ["a cup .", "a dog is here ."]
    assert chosen_sentences("a cup is at the left") == ["a cup is at the left"]
    p = plan("a cup is at the left", np.random.default_rng(0))
    assert len(p.sentences) == 1 and len(assistant_prefixes(p)) == 1


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_chosen_names_the_row(empty):
    with pytest.raises(ValueError, match="row 7"):
        plan(empty, np.random.default_rng(0), row=7)


def test_cut_is_uniform_token_prefix_and_regenerates_last_token():
    s = "there is a small red cup at the left ."
    toks = s.split()
    rng = np.random.default_rng(0)
    lens = Counter()
    for _ in range(5000):
        kept = cut_sentence(s, rng)
        assert toks[: len(kept.split())] == kept.split()
        lens[len(kept.split())] += 1
    assert set(lens) == set(range(len(toks)))  # 0 .. n-1: never the whole sentence
    expected = 5000 / len(toks)
    assert all(abs(c - expected) < 0.25 * expected for c in lens.values())


def test_yes_no_flip_probability_and_forms():
    rng = np.random.default_rng(0)
    flips = [flip_yes_no("yes , there is a cup .", rng) for _ in range(4000)]
    assert all(is_yn for _, is_yn in flips)
    share = np.mean([s.startswith("no ,") for s, _ in flips])
    assert abs(share - 0.5) < 0.04
    seen = {flip_yes_no(s, rng)[0] for s in ["Yes , it is ."] * 50}
    assert seen == {"Yes , it is .", "No , it is ."}
    seen = {flip_yes_no(s, rng)[0] for s in ["  No , it is not ."] * 50}
    assert seen == {"  No , it is not .", "  Yes , it is not ."}
    for s in ["the sign says yes .", "not a cup .", "nothing here ."]:
        assert all(flip_yes_no(s, rng) == (s, False) for _ in range(20))


def test_yes_no_answer_word_is_always_kept():
    rng = np.random.default_rng(1)
    kept = [cut_sentence("no , there is no cup .", rng) for _ in range(500)]
    assert all(k.split()[0] in ("yes", "no") for k in kept)
    assert {k.split()[0] for k in kept} == {"yes", "no"}
    assert max(len(k.split()) for k in kept) == 6  # n - 1 tokens at most
    assert cut_sentence("yes", rng) in ("yes", "no")  # a one-token answer keeps its (flipped) word


def test_prefixes_and_join_on_hand_made_answer():
    p = GuidedPlan(
        ("this is a park scene .", "a dog is at the top .", "the dog is left of the tree ."),
        ("this is a", "", "the dog is left"),
    )
    assert assistant_prefixes(p) == [
        "this is a",
        "this is a park scene .",
        "this is a park scene . a dog is at the top . the dog is left",
    ]
    out = join(p, ["kitchen scene .", "a cup is at the top .", "of the bench ."])
    assert out == "this is a kitchen scene . a cup is at the top . the dog is left of the bench ."
    assert join(p, ["", "", ""]) == "this is a the dog is left"
    with pytest.raises(ValueError):
        join(p, ["x ."])
