"""A tiny LLaVA-NeXT answers real-format benchmark files; results are written whole or not at all."""

import json

import pytest

from study import io
from study.bench.pope_files import load_pope, score_pope
from study.bench.runner import answer_items, model_answer_fn, with_parser_sensitivity, write_bench_results
from study.model.load import load_model


@pytest.fixture(scope="module")
def llava_next(tmp_path_factory, spec, save_tiny_llava_next):
    return load_model(save_tiny_llava_next(tmp_path_factory.mktemp("bench_llava_next"), spec))


def test_tiny_llava_next_answers_pope_files(llava_next, pope_dirs, tmp_path):
    labels, images = pope_dirs
    items = load_pope(labels, images)
    model, proc = llava_next
    rows = answer_items(
        items, images, model_answer_fn(model, proc, max_new_tokens=4, batch_size=3), batch_size=3, progress=False
    )
    assert [r["item_id"] for r in rows] == [it["item_id"] for it in items]
    assert all(isinstance(r["answer"], str) for r in rows)
    metrics = with_parser_sensitivity(score_pope(rows, n_boot=20), rows)
    assert set(metrics["parser_sensitivity"]) == {"pope_random", "pope_popular", "pope_adversarial"}
    for suite in ("pope_random", "pope_popular", "pope_adversarial"):
        assert 0.0 <= metrics[suite]["accuracy"]["value"] <= 1.0
        assert metrics["parser_sensitivity"][suite]["n"] == sum(r["suite"] == suite for r in rows)
    out = tmp_path / "results" / "pope"
    write_bench_results(out, rows, metrics, {"benchmark": "pope", "n_boot": 20})
    assert io.read_jsonl(out / "predictions.jsonl") == rows
    assert json.loads((out / "metrics.json").read_text())["_meta"]["benchmark"] == "pope"


def test_a_failed_write_leaves_the_previous_results(tmp_path, monkeypatch):
    out = tmp_path / "results"
    write_bench_results(out, [{"item_id": "a", "answer": "yes"}], {"x": 1}, {})
    before = sorted(p.name for p in out.iterdir())

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(io, "write_json", boom)
    with pytest.raises(RuntimeError):
        write_bench_results(out, [{"item_id": "b", "answer": "no"}], {"x": 2}, {})
    assert sorted(p.name for p in out.iterdir()) == before
    assert io.read_jsonl(out / "predictions.jsonl") == [{"item_id": "a", "answer": "yes"}]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no temporary directory left behind
