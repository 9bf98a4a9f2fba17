"""study.eval.sources: each hallucinated mention is sorted by what sits at the cell it names."""

import numpy as np
import pytest

from study.config import load_section
from study.world.scenes import generate_split
from study.world.stage import scene_params_of


@pytest.fixture(scope="module")
def tool():
    from study.eval import sources

    return sources


def _scene_and_absent(spec):
    scenes = generate_split(spec, scene_params_of(load_section("world")), 0, "train", 50)
    scene = next(s for s in scenes if len(s.objects) >= 2)
    taken = {o.position for o in scene.objects}
    empty = next(
        spec.position_name(r, c)
        for r in range(spec.grid)
        for c in range(spec.grid)
        if spec.position_name(r, c) not in taken
    )
    ctx = spec.contexts[scene.context].objects
    absent_in = next(c for c in ctx if c not in scene.categories)
    absent_off = next(c for c in spec.category_names if c not in ctx and c not in scene.categories)
    return scene, empty, absent_in, absent_off


def test_misread_invented_unplaced_and_echo(tool, spec):
    scene, empty, absent_in, absent_off = _scene_and_absent(spec)
    obj = scene.objects[0]
    answer = (
        f"there is a large red {absent_off} at the {obj.position} . "  # misread: another object is there
        f"there is a small blue {absent_in} at the {empty} . "  # invented: the cell is empty
        f"there is a {absent_off} , a {absent_in} , a {obj.category} ."  # a list: two echoes, one true
    )
    recs = tool.sources(answer, scene, spec)
    kinds = [(r["category"], r["kind"]) for r in recs]
    assert kinds == [
        (absent_off, "misread"),
        (absent_in, "invented"),
        (absent_off, "unplaced"),
        (absent_in, "unplaced"),
    ]
    assert recs[0]["true_category"] == obj.category and recs[0]["in_context"] is False
    assert recs[1]["in_context"] is True
    assert all(r["echo"] for r in recs[2:])
    alone = tool.sources(f"there is a {absent_in} .", scene, spec)
    assert [(r["kind"], r["echo"]) for r in alone] == [("unplaced", False)]  # the prior added it on its own
    out = tool.summarize(recs + alone, spec, 2)
    assert out["hallucinated"] == 5 and out["unplaced_echo"] == {"in_context": 1, "off_context": 1}
    assert out["context_share"] == pytest.approx(3 / 5)
    assert np.isclose(out["by_kind"]["unplaced"]["share"], 3 / 5)


def test_describe_sources_summarizes_every_answer_of_the_rows(tool, spec):
    scene, empty, absent_in, absent_off = _scene_and_absent(spec)
    rows = [
        {"scene_id": scene.scene_id, "answer": f"there is a small blue {absent_in} at the {empty} ."},
        {"scene_id": scene.scene_id, "answer": f"there is a {absent_off} ."},
        {"scene_id": scene.scene_id, "answer": f"there is a {scene.objects[0].category} ."},
    ]
    out = tool.describe_sources(rows, {scene.scene_id: scene}, spec)
    assert out["answers"] == 3 and out["hallucinated"] == 2
    assert out["by_kind_and_context"] == {"invented/in_context": 1, "unplaced/off_context": 1}
    assert out["context_share"] == pytest.approx(0.5)
