from study.eval.helpfulness import HELPFULNESS_METRICS, helpfulness_stats, position_phrases


def test_position_phrases_longest_match_and_relations(spec):
    assert position_phrases("at the top left .".split(), spec) == {"top left"}
    assert position_phrases("the cup is left of the dog .".split(), spec) == set()
    assert position_phrases("at the left .".split(), spec) == {"left"}


def test_facts_hand_computed(spec, make_scene):
    scene = make_scene([("cup", "white", "small", 0, 0), ("dog", "orange", "large", 1, 1)], context="park")
    text = "there is a small white mug at the top left . the dog is left of the cup ."
    s = helpfulness_stats(text, scene, spec)
    assert s == {"answers": 1, "facts": 8, "facts_stated": 5, "tokens": 19}  # cup 4/4, dog 1/4 (category)
    s = helpfulness_stats("there is no dog . there is a red cup at the center .", scene, spec)
    assert s["facts_stated"] == 1  # cup category only: wrong colour, no size, wrong position; dog denied
    assert helpfulness_stats("", scene, spec)["facts_stated"] == 0


def test_metrics_are_micro(spec):
    sums = {"answers": 2, "facts": 12, "facts_stated": 3, "tokens": 30}
    assert HELPFULNESS_METRICS["helpfulness"](sums) == 0.25
    assert HELPFULNESS_METRICS["length"](sums) == 15.0
