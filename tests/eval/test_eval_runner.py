import json
from collections import Counter

import pytest

from study.config import load_section
from study.eval import SUITES, build_items, run_predictions, score, score_files, write_results
from study.eval.runner import PredictionsError, implied_counts
from study.io import read_jsonl, write_jsonl
from study.world.scenes import generate_split
from study.world.stage import scene_params_of


@pytest.fixture(scope="module")
def world(spec):
    return generate_split(spec, scene_params_of(load_section("world")), 0, "train", 200), generate_split(
        spec, scene_params_of(load_section("world")), 0, "test", 20
    )


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
    assert {it["qtype"] for it in items if it["suite"] == "typed_qa"} == {
        "attribute",
        "count",
        "relation",
        "adversarial",
    }


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
    again = score_files(
        tmp_path / "res" / "predictions.jsonl", tmp_path / "scenes" / "test.jsonl", spec, n_boot=100, seed=3
    )
    assert again == json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert "partial" not in again


def test_run_predictions_checks_answer_count(items):
    with pytest.raises(ValueError, match="answers for"):
        run_predictions(items[:4], lambda ids, ps: ["yes"], batch_size=4, progress=False)


def test_score_rejects_unknown_suite_and_missing_scene(spec, world, items):
    with pytest.raises(ValueError, match="unknown suites"):
        score([{**items[0], "suite": "bogus", "answer": ""}], world[1], spec, n_boot=10)
    with pytest.raises(KeyError, match="not in the scenes"):
        score([{**items[0], "answer": ""}], world[1][1:], spec, n_boot=10)


# ---- score_files checks the rows against the items the scenes imply ----

CUT = 30  # rows kept by a cut file: the 20 descriptions and the first 10 pope_random items


@pytest.fixture(scope="module")
def preds(world, items, oracle_answer_fn):
    return run_predictions(items, oracle_answer_fn(world[1]), progress=False)


def _files(tmp_path, world, rows=None, text=None):
    """(predictions path, scenes path) holding ``rows`` (or the raw ``text``) and the test scenes."""
    write_jsonl(tmp_path / "scenes.jsonl", (s.to_dict() for s in world[1]))
    if text is None:
        write_jsonl(tmp_path / "predictions.jsonl", rows)
    else:
        (tmp_path / "predictions.jsonl").write_text(text)
    return tmp_path / "predictions.jsonl", tmp_path / "scenes.jsonl"


def _cut(tmp_path, world, preds):
    write_jsonl(tmp_path / "full.jsonl", preds)
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    return _files(tmp_path, world, text="".join(lines[:CUT]))


def _group(row):
    return f"{row['suite']}:{row['scene_id']}"


def test_implied_counts_do_not_depend_on_train_scenes_or_item_seed(spec, world):
    built = build_items(spec, world[1], world[0][:40], n_pos=3, seed=5)
    assert Counter(map(_group, built)) == implied_counts(spec, world[1], n_pos=3)


def test_score_files_rejects_a_file_cut_at_a_line_break(spec, world, preds, tmp_path):
    p, s = _cut(tmp_path, world, preds)
    with pytest.raises(PredictionsError) as e:
        score_files(p, s, spec, n_boot=10)
    msg, g = str(e.value), _group(preds[CUT])
    got, implied = sum(_group(r) == g for r in preds[:CUT]), sum(_group(r) == g for r in preds)
    assert msg.startswith(f"{p}: {len(preds) - CUT} missing item(s) of the {len(preds)} the scenes imply")
    assert f"{g} (got {got}, implied {implied})" in msg and "more)" in msg


def test_score_files_rejects_an_empty_file(spec, world, tmp_path):
    p, s = _files(tmp_path, world, text="")
    with pytest.raises(PredictionsError, match="no predictions"):
        score_files(p, s, spec, n_boot=10)


def test_score_files_rejects_a_duplicated_row(spec, world, preds, tmp_path):
    p, s = _files(tmp_path, world, preds + [preds[5]])
    with pytest.raises(PredictionsError) as e:
        score_files(p, s, spec, n_boot=10)
    assert str(e.value) == f"{p}: 1 duplicate item(s): {preds[5]['item_id']} (rows 6, {len(preds) + 1})"


@pytest.mark.parametrize(
    "suite, field, value, why",
    [
        ("describe", "answer", None, "`answer` must be a string, got null"),
        ("typed_qa", "answer", 3, "`answer` must be a string, got a number"),
        ("pope_popular", "label", None, "no `label` (or null)"),
    ],
)
def test_score_files_names_a_malformed_row(spec, world, preds, tmp_path, suite, field, value, why):
    i = next(k for k, r in enumerate(preds) if r["suite"] == suite) + 4
    rows = [dict(r) for r in preds]
    rows[i][field] = value
    p, s = _files(tmp_path, world, rows)
    with pytest.raises(PredictionsError) as e:  # not AttributeError
        score_files(p, s, spec, n_boot=10)
    assert str(e.value) == f"{p}: 1 malformed row(s): row {i + 1} ({rows[i]['item_id']}): {why}"


@pytest.mark.parametrize("kind", ["unknown scene", "unknown POPE object"])
def test_score_files_rejects_an_extra_item(spec, world, preds, tmp_path, kind):
    if kind == "unknown scene":
        extra = {**preds[0], "item_id": "describe:test-999999", "scene_id": "test-999999"}
        named = "describe:test-999999 (got 1, implied 0; row"
    else:
        r = next(r for r in preds if r["suite"] == "pope_random")
        extra = {**r, "item_id": f"{_group(r)}:zebra", "object": "zebra", "label": "no"}
        n = sum(_group(x) == _group(r) for x in preds)
        named = f"{_group(r)} (got {n + 1}, implied {n}; rows"
    p, s = _files(tmp_path, world, preds + [extra])
    with pytest.raises(PredictionsError) as e:
        score_files(p, s, spec, n_boot=10)
    assert str(e.value).startswith(f"{p}: 1 extra item(s), not implied by the scenes (n_pos=3): {named}")
    assert str(e.value).endswith(f"{len(preds) + 1})")


def test_score_files_allow_partial_scores_a_cut_file_and_says_so(spec, world, preds, tmp_path):
    p, s = _cut(tmp_path, world, preds)
    m = score_files(p, s, spec, n_boot=10, allow_partial=True)
    assert m["partial"] == {"expected": len(preds), "scored": CUT, "missing": len(preds) - CUT}
    assert m["_meta"]["n_items"] == {"describe": 20, "pope_random": CUT - 20}
    assert {k: v for k, v in m.items() if k != "partial"} == score(preds[:CUT], world[1], spec, n_boot=10)
    complete = score_files(*_files(tmp_path, world, preds), spec, n_boot=10, allow_partial=True)
    assert complete["partial"] == {"expected": len(preds), "scored": len(preds), "missing": 0}
    p, s = _files(tmp_path, world, preds[:CUT] + [preds[0]])
    with pytest.raises(PredictionsError, match="duplicate item"):  # partial, but never duplicated
        score_files(p, s, spec, n_boot=10, allow_partial=True)
