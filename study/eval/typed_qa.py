"""MMHal-spirit typed questions, built from scene graphs and graded exactly (no judge model).

Per scene at most one question of each type (a type is skipped when the scene cannot support it):

    attribute    "what color is the X ?"  X = a category with exactly one instance; expected = its colour.
    count        "how many Xs are there ?"  X = a present category; expected = its count.
    relation     "is the A REL the B ?"  a true relation of two unique objects, inverted with p = 1/2;
                 expected = "yes" / "no" (``relation_holds``).
    adversarial  "what color is the X ?"  X = a core category of the scene's context that is absent,
                 drawn with probability proportional to p_context(X); expected = "absent".

Grading of answer a (tokens and negation as in :mod:`study.eval.mentions`):

    attribute    colours C = colour words in a. Correct iff set(C) == {expected}. If C is empty and a
                 denies X ("there is no X") the answer is a (false) denial; with neither it is unparseable.
    count        k = the answered count (:func:`study.world.phrases.answered_count`: the first number word
                 after "there is" / "there are", ``no`` = 0, ``a``/``an`` = 1, digits). Correct iff
                 k == expected; no such k: unparseable.
    relation     POPE parser (:func:`study.eval.pope.pope_parse`); correct iff it equals expected. An
                 empty answer is unparseable here (POPE would read it as "yes").
    adversarial  correct iff a denies X; else if a names any colour it attributes a colour to an absent
                 object; with neither it is unparseable.

Hallucination = a parsed answer that asserts something false: a wrong colour set, a denial of a present
object, a wrong count, a wrong yes/no, or a colour for an absent object. Unparseable answers are
incorrect but not hallucinations. Metrics: ``{type}_acc`` = correct / asked for each type,
``accuracy`` = all correct / all asked, ``hallucination_rate`` = hallucinations / all asked,
``unparseable_rate`` = unparseable / all asked.
"""

from __future__ import annotations

from study.eval.bootstrap import ratio
from study.eval.mentions import denied_categories, tokenize
from study.eval.pope import pope_parse, scene_rng
from study.world import language
from study.world.phrases import INVERSE, answered_count
from study.world.scenes import Scene
from study.world.spec import WorldSpec

QTYPES = ("attribute", "count", "relation", "adversarial")


def typed_questions(spec: WorldSpec, scene: Scene, seed: int = 0) -> list[dict]:
    """``[{"qtype", "object", "expected", "prompt"}]`` for the scene (relation items add ``relation``)."""
    rng = scene_rng(seed, scene.scene_id, 2)
    out = []
    uniq = sorted(o.category for o in language.unique_objects(scene))
    if uniq:
        cat = uniq[int(rng.integers(len(uniq)))]
        color = next(o.color for o in scene.objects if o.category == cat)
        out.append({"qtype": "attribute", "object": cat, "expected": color, "prompt": language.color_qa(scene, cat)[0]})
    present = sorted(scene.categories)
    cat = present[int(rng.integers(len(present)))]
    out.append(
        {
            "qtype": "count",
            "object": cat,
            "expected": scene.count(cat),
            "prompt": language.count_qa(spec, scene, cat)[0],
        }
    )
    fact = language.relation_fact(scene, rng)
    if fact is not None:
        if rng.random() < 0.5:
            fact = {**fact, "rel": INVERSE[fact["rel"]]}
        holds = language.relation_holds(scene, fact["a"], fact["rel"], fact["b"])
        out.append(
            {
                "qtype": "relation",
                "object": fact["a"],
                "expected": "yes" if holds else "no",
                "relation": [fact["a"], fact["rel"], fact["b"]],
                "prompt": language.relation_qa(scene, fact["a"], fact["rel"], fact["b"])[0],
            }
        )
    ctx = spec.contexts[scene.context].objects
    absent = [c for c in ctx if c not in scene.categories]
    if absent:
        w = [ctx[c] for c in absent]
        cat = absent[int(rng.choice(len(absent), p=[x / sum(w) for x in w]))]
        out.append(
            {"qtype": "adversarial", "object": cat, "expected": "absent", "prompt": language.color_qa(scene, cat)[0]}
        )
    return out


def parse_colors(answer: str, spec: WorldSpec) -> set[str]:
    return {t for t in tokenize(answer) if t in spec.colors}


def parse_count(answer: str) -> int | None:
    """The count an answer gives (:func:`study.world.phrases.answered_count`), or None."""
    return answered_count(tokenize(answer))


def grade(qtype: str, answer: str, expected, obj: str, spec: WorldSpec) -> tuple[bool, bool]:
    """``(correct, hallucination)`` of one answer; unparseable = (False, False)."""
    if qtype == "attribute":
        colors = parse_colors(answer, spec)
        if colors:
            return colors == {expected}, colors != {expected}
        denied = obj in denied_categories(answer, spec)
        return False, denied
    if qtype == "count":
        k = parse_count(answer)
        return (False, False) if k is None else (k == int(expected), k != int(expected))
    if qtype == "relation":
        if not tokenize(answer):
            return False, False
        ok = pope_parse(answer) == expected
        return ok, not ok
    if qtype == "adversarial":
        if obj in denied_categories(answer, spec):
            return True, False
        return False, bool(parse_colors(answer, spec))
    raise ValueError(f"qtype must be one of {QTYPES}, got {qtype!r}")


def typed_stats(qtype: str, answer: str, expected, obj: str, spec: WorldSpec) -> dict[str, int]:
    correct, halluc = grade(qtype, answer, expected, obj, spec)
    stats = {f"{t}_{k}": 0 for t in QTYPES for k in ("n", "correct")}
    stats.update(
        {
            f"{qtype}_n": 1,
            f"{qtype}_correct": int(correct),
            "n": 1,
            "correct": int(correct),
            "hallucinated": int(halluc),
            "unparseable": int(not correct and not halluc),
        }
    )
    return stats


TYPED_METRICS = {
    **{f"{t}_acc": (lambda s, t=t: ratio(s[f"{t}_correct"], s[f"{t}_n"])) for t in QTYPES},
    "accuracy": lambda s: ratio(s["correct"], s["n"]),
    "hallucination_rate": lambda s: ratio(s["hallucinated"], s["n"]),
    "unparseable_rate": lambda s: ratio(s["unparseable"], s["n"]),
}
