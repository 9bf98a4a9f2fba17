import pytest

from study.eval.bootstrap import stack_stats
from study.eval.typed_qa import TYPED_METRICS, grade, parse_count, typed_questions, typed_stats


@pytest.mark.parametrize(
    "answer, result",
    [
        ("the cup is white .", (True, False)),
        ("the mug is white .", (True, False)),
        ("the cup is red .", (False, True)),  # wrong colour
        ("the cup is white and red .", (False, True)),  # more than the true colour
        ("there is no cup in the image .", (False, True)),  # false denial of a present object
        ("i do not know .", (False, False)),  # unparseable
    ],
)
def test_attribute_grading(spec, answer, result):
    assert grade("attribute", answer, "white", "cup", spec) == result


@pytest.mark.parametrize(
    "answer, parsed, result",
    [
        ("there are two cups .", 2, (True, False)),
        ("there is one cup .", 1, (False, True)),
        ("there are no cups .", 0, (False, True)),
        ("there are 2 cups .", 2, (True, False)),
        ("two .", None, (False, False)),
    ],
)
def test_count_grading(spec, answer, parsed, result):
    assert parse_count(answer) == parsed
    assert grade("count", answer, 2, "cup", spec) == result


def test_relation_grading(spec):
    assert grade("relation", "no , the cup is not left of the dog .", "no", "cup", spec) == (True, False)
    assert grade("relation", "yes , the cup is left of the dog .", "no", "cup", spec) == (False, True)
    assert grade("relation", "", "yes", "cup", spec) == (False, False)


def test_adversarial_grading(spec):
    assert grade("adversarial", "there is no fork in the image .", "absent", "fork", spec) == (True, False)
    assert grade("adversarial", "there are no forks .", "absent", "fork", spec) == (True, False)
    assert grade("adversarial", "the fork is yellow .", "absent", "fork", spec) == (False, True)
    assert grade("adversarial", "there is no cup .", "absent", "fork", spec) == (False, False)
    assert grade("adversarial", "", "absent", "fork", spec) == (False, False)


def test_metrics_hand_computed(spec):
    rows = [
        ("attribute", "the cup is white .", "white", "cup"),  # correct
        ("attribute", "the cup is red .", "white", "cup"),  # hallucination
        ("count", "there is one cup .", 1, "cup"),  # correct
        ("adversarial", "the fork is yellow .", "absent", "fork"),  # hallucination
        ("relation", "", "yes", "cup"),
    ]  # unparseable
    stats = stack_stats([typed_stats(*r, spec) for r in rows])
    m = {k: fn({s: v.sum() for s, v in stats.items()}) for k, fn in TYPED_METRICS.items()}
    assert m == pytest.approx(
        {
            "attribute_acc": 0.5,
            "count_acc": 1.0,
            "relation_acc": 0.0,
            "adversarial_acc": 0.0,
            "accuracy": 2 / 5,
            "hallucination_rate": 2 / 5,
            "unparseable_rate": 1 / 5,
        }
    )


def test_questions_follow_the_scene(spec, make_scene):
    scene = make_scene(
        [("cup", "red", "small", 0, 0), ("cup", "white", "small", 0, 2), ("plate", "blue", "large", 1, 1)]
    )
    qs = {q["qtype"]: q for q in typed_questions(spec, scene, seed=0)}
    assert qs["attribute"]["object"] == "plate" and qs["attribute"]["expected"] == "blue"
    assert qs["count"]["expected"] == scene.count(qs["count"]["object"])
    assert "relation" not in qs  # only one category is unique
    assert qs["adversarial"]["object"] in {"fork", "bottle"} and qs["adversarial"]["prompt"].startswith("what color")
