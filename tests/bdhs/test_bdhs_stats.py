"""Fig. 10 analog and exact hallucination content of rejections on hand-made answers."""

import pytest

from study.bdhs import BDHSResult, acceptance_curve, colour_claims, content_summary, content_table, rejection_content
from study.world.scenes import Scene, SceneObject


@pytest.fixture
def kitchen(spec):
    objs = [
        SceneObject(0, "cup", "white", "small", 0, 0, "top left", False),
        SceneObject(1, "plate", "white", "large", 1, 1, "center", False),
    ]
    return Scene("test-000000", "test", "kitchen", objs, [])


def test_acceptance_curve():
    res = [
        BDHSResult("a", 1, 0.5, True, 6, [0.5]),
        BDHSResult("b", 2, 0.9, True, 6, [0.99, 0.9]),
        BDHSResult("c", 3, 0.99, False, 6, [0.99, 0.98, 0.99]),
    ]
    curve = acceptance_curve(res, eps_s=0.97, n_bdhs=3)
    assert curve["different"].round(3).tolist() == [0.333, 0.667, 0.667]
    assert curve["accepted"].round(3).tolist() == [0.333, 0.667, 1.0]


def test_colour_claims(spec):
    text = "there is a small red cup at the left . there is no blue plate . a large green bottle is here ."
    assert colour_claims(text, spec) == {"cup": {"red"}, "bottle": {"green"}}


def test_rejection_content(spec, kitchen):
    chosen = "a small white cup is at the top left . a large white plate is at the center ."
    rejected = "a small red cup is at the top left . a large white fork is at the center . there is a dog ."
    c = rejection_content(chosen, rejected, kitchen, spec)
    assert c["mentions"] == 3 and c["hallucinated"] == 2 and c["new_hallucinated"] == 2
    assert c["in_context"] == 1  # fork is a kitchen object, dog is not
    assert c["common_coloured"] == 1 and c["colour_changed"] == 1  # the cup turned red
    table = content_table([BDHSResult(rejected, 1, 0.8, True, 6, [0.8])], [chosen], [kitchen], spec)
    s = content_summary(table)
    assert s["chair_i"] == pytest.approx(2 / 3) and s["context_share"] == pytest.approx(0.5)
    assert s["colour_change_rate"] == 1.0 and s["chosen_chair_i"] == 0.0
