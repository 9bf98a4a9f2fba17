import pytest

from study.eval.bootstrap import stack_stats
from study.eval.chair import CHAIR_METRICS, chair_stats


def corpus_metrics(texts, scene, spec):
    stats = stack_stats([chair_stats(t, scene, spec) for t in texts])
    sums = {k: v.sum() for k, v in stats.items()}
    return {name: fn(sums) for name, fn in CHAIR_METRICS.items()}


@pytest.fixture
def kitchen(make_scene):
    return make_scene([("cup", "white", "small", 0, 0), ("plate", "white", "large", 1, 1)])


def test_per_answer_counts(kitchen, spec):
    s = chair_stats("there is a mug . there is a dog . there are two dogs .", kitchen, spec)
    assert s == {
        "answers": 1,
        "mentions": 3,
        "hallucinated": 2,
        "hallucinating": 1,
        "hallucinated_in_context": 0,
        "gt_covered": 1,
        "gt": 2,
        "gt_covered_in_context": 1,
        "gt_in_context": 2,
    }


def test_corpus_chair_hand_computed(kitchen, spec):
    texts = [
        "there is a cup . there is a dog .",  # 2 mentions, 1 hallucinated (dog: park)
        "",  # empty: 0 mentions, not hallucinating
        "there is a fork . there are two forks .",  # only hallucinations: 2/2 (fork: kitchen)
        "this is a kitchen scene .",  # no objects mentioned
        "a mug . a plate . a cup .",
    ]  # 3 correct mentions, covers 2/2
    m = corpus_metrics(texts, kitchen, spec)
    assert m["chair_i"] == pytest.approx(3 / 7)
    assert m["chair_s"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(3 / 10)
    assert m["context_share"] == pytest.approx(2 / 3)


def test_recall_split_by_context_hand_computed(make_scene, spec):
    # a kitchen scene with two kitchen objects (cup, plate) and two park objects (dog, ball)
    scene = make_scene(
        [
            ("cup", "white", "small", 0, 0),
            ("plate", "white", "large", 1, 1),
            ("dog", "brown", "large", 2, 2),
            ("ball", "red", "small", 0, 2),
        ]
    )
    texts = [
        "there is a cup . there is a dog .",  # in context 1/2, off context 1/2
        "there is a plate and a cup .",  # in context 2/2, off context 0/2
        "there is a fork .",  # a hallucination covers nothing
    ]
    m = corpus_metrics(texts, scene, spec)
    assert m["recall_in_context"] == pytest.approx(3 / 6)
    assert m["recall_off_context"] == pytest.approx(1 / 6)
    assert m["recall"] == pytest.approx(4 / 12)  # the two splits recombine into recall


def test_negated_mentions_are_not_hallucinations(kitchen, spec):
    m = corpus_metrics(["there is a cup and a plate . there is no dog ."], kitchen, spec)
    assert (m["chair_i"], m["chair_s"], m["recall"]) == (0.0, 0.0, 1.0)


def test_corpus_without_mentions_is_defined_as_zero(kitchen, spec):
    m = corpus_metrics(["", "this is a kitchen scene ."], kitchen, spec)
    assert m == {
        "chair_i": 0.0,
        "chair_s": 0.0,
        "recall": 0.0,
        "context_share": 0.0,
        "recall_in_context": 0.0,
        "recall_off_context": 0.0,
    }
