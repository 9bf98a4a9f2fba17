"""Two rejected answers per prompt (Table 6): join on (scene_id, prompt, chosen), matched ablation arms."""

import json

import pytest

from study.prefs.schema import PrefSchemaError, make_row
from study.prefs.union import matched_pair, second_rejected


def _row(scene, chosen, rejected, recipe, rejected_2=""):
    return make_row(
        prompt="describe the image in detail .",
        chosen=chosen,
        rejected=rejected,
        scene_id=scene,
        recipe=recipe,
        seed=0,
        source_ids={"r": recipe},
        rejected_2=rejected_2,
    )


POVID = [
    _row("s1", "a cup .", "a cup and a fork .", "povid", "a cup , a cup ."),
    _row("s2", "a dog .", "a cat .", "povid", ""),  # no own 2nd rejection
    _row("s3", "a car .", "a bus .", "povid", "a car car ."),
]  # no BDHS partner
BDHS = [
    _row("s1", "a cup .", "a cup and a plate .", "bdhs"),
    _row("s2", "a dog .", "a dog and a bone .", "bdhs"),
    _row("s9", "a tree .", "a bush .", "bdhs"),
]


def test_second_rejected_joins_on_scene_prompt_and_chosen():
    rows = second_rejected(POVID, BDHS, "povid_bdhs")
    assert [r["scene_id"] for r in rows] == ["s1", "s2"]
    assert rows[0]["rejected"] == "a cup and a fork ." and rows[0]["rejected_2"] == "a cup and a plate ."
    assert all(r["recipe"] == "povid_bdhs" for r in rows)
    src = json.loads(rows[0]["source_ids"])
    assert src["rejected"] == "povid" and src["rejected_2"] == "bdhs" and src["secondary"] == {"r": "bdhs"}


def test_matched_pair_arms_share_rows_and_first_rejection():
    own, union = matched_pair(POVID, BDHS, "povid_distortion", "povid_bdhs")
    assert [r["scene_id"] for r in own] == [r["scene_id"] for r in union] == ["s1"]
    assert own[0]["rejected"] == union[0]["rejected"] and own[0]["chosen"] == union[0]["chosen"]
    assert own[0]["rejected_2"] == "a cup , a cup ." and union[0]["rejected_2"] == "a cup and a plate ."
    assert own[0]["recipe"] == "povid_distortion"


def test_a_partner_equal_to_chosen_is_skipped():
    bad = [_row("s1", "a cup .", "x .", "bdhs")]
    bad[0]["rejected"] = "a cup ."
    assert second_rejected(POVID, bad, "u") == []
    broken = [dict(POVID[0], chosen="")]
    with pytest.raises(PrefSchemaError):
        second_rejected(broken, [dict(BDHS[0], chosen="")], "u")
