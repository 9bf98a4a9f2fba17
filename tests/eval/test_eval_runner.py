import json

import pytest

from study.eval import SUITES, build_items, run_predictions, score, score_files, write_results
from study.io import read_jsonl, write_jsonl
from study.world.scenes import SceneParams, generate_split


@pytest.fixture(scope="module")
def world(spec):
    return generate_split(spec, SceneParams(), 0, "train", 200), generate_split(spec, SceneParams(), 0, "test", 20)


@pytest.fixture(scope="module")
def items(spec, world):
    return build_items(spec, world[1], world[0], n_pos=3, seed=0)


def test_items_are_complete_and_stable(spec, world, items):
    assert {it["suite"] for it in items} == set(SUITES)
    assert len({it["item_id"] for it in items}) == len(items)
    assert build_items(spec, world[1], world[0], n_pos=3, seed=0) == items
    for it in items:
        assert {"item_id", "suite", "scene_id", "prompt"} <= set(it)
        if it["suite"].startswith("pope_"):
            assert it["label"] in ("yes", "no") and "object" in it
        if it["suite"] == "typed_qa":
            assert {"qtype", "object", "expected"} <= set(it)
    assert {it["qtype"] for it in items if it["suite"] == "typed_qa"} == {"attribute", "count", "relation", "adversarial"}


def test_oracle_scores_perfectly(spec, world, items, oracle_answer_fn):
    preds = run_predictions(items, oracle_answer_fn(world[1]), batch_size=7, progress=False)
    assert [p["item_id"] for p in preds] == [it["item_id"] for it in items]
    m = score(preds, world[1], spec, n_boot=200, seed=0)
    for t in ("random", "popular", "adversarial"):
        assert m[f"pope_{t}"]["accuracy"] == {"value": 1.0, "ci95": [1.0, 1.0]}
        assert m[f"pope_{t}"]["yes_ratio"]["value"] == 0.5
    d = m["describe"]
    assert (d["chair_i"]["value"], d["chair_s"]["value"], d["recall"]["value"]) == (0.0, 0.0, 1.0)
    assert d["helpfulness"]["value"] == 1.0 and d["length"]["value"] > 10
    q = m["typed_qa"]
    assert q["accuracy"]["value"] == 1.0 and q["hallucination_rate"]["value"] == 0.0
    assert all(q[f"{t}_acc"]["value"] == 1.0 for t in ("attribute", "count", "relation", "adversarial"))
    assert m["_meta"]["n_scenes"]["describe"] == 20 and m["_meta"]["n_items"]["describe"] == 20


def test_always_yes_model(spec, world, items):
    preds = run_predictions(items, lambda ids, ps: ["yes , there is a cup ."] * len(ps), progress=False)
    m = score(preds, world[1], spec, n_boot=200, seed=0)
    for t in ("random", "popular", "adversarial"):
        assert m[f"pope_{t}"]["yes_ratio"]["value"] == 1.0
        assert m[f"pope_{t}"]["accuracy"]["value"] == 0.5
        assert m[f"pope_{t}"]["recall"]["value"] == 1.0
    # "cup" asserted in every description: hallucinated wherever the scene has no cup
    no_cup = sum("cup" not in s.categories for s in world[1]) / 20
    assert m["describe"]["chair_s"]["value"] == pytest.approx(no_cup)
    assert m["describe"]["chair_i"]["value"] == pytest.approx(no_cup)


def test_results_roundtrip_recomputes_metrics(spec, world, items, tmp_path, oracle_answer_fn):
    preds = run_predictions(items, oracle_answer_fn(world[1]), progress=False)
    metrics = score(preds, [s.to_dict() for s in world[1]], spec, n_boot=100, seed=3)
    write_results(tmp_path / "res", preds, metrics)
    write_jsonl(tmp_path / "scenes" / "test.jsonl", (s.to_dict() for s in world[1]))
    assert read_jsonl(tmp_path / "res" / "predictions.jsonl") == preds
    again = score_files(tmp_path / "res" / "predictions.jsonl", tmp_path / "scenes" / "test.jsonl", spec,
                        n_boot=100, seed=3)
    assert again == json.loads((tmp_path / "res" / "metrics.json").read_text())


def test_run_predictions_checks_answer_count(items):
    with pytest.raises(ValueError, match="answers for"):
        run_predictions(items[:4], lambda ids, ps: ["yes"], batch_size=4, progress=False)


def test_score_rejects_unknown_suite_and_missing_scene(spec, world, items):
    with pytest.raises(ValueError, match="unknown suites"):
        score([{**items[0], "suite": "bogus", "answer": ""}], world[1], spec, n_boot=10)
    with pytest.raises(KeyError, match="not in the scenes"):
        score([{**items[0], "answer": ""}], world[1][1:], spec, n_boot=10)
