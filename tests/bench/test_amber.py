"""AMBER from its published files; generative and discriminative metrics hand-computed."""

import json

import pytest

from study.bench.amber import load_amber, score_amber
from study.bench.files import BenchmarkFileError

ANSWERS = {
    # nouns: puppy (-> truth dog), grass (truth), kitten (hallucinated, target cat), car (hallucinated), sky (safe)
    1: "A puppy runs on the grass near a kitten and a car under the sky.",
    # nouns: boats -> boat (-> first "ship" entry), man (truth); nothing hallucinated
    2: "Two boats and a man.",
    3: "No.",  # truth no: correct
    4: "No",  # truth yes: wrong, answered no
    5: "Yes, it is.",  # truth no: wrong
}


def _rows(items):
    return [{**it, "answer": ANSWERS[it["amber_id"]]} for it in items]


def test_items(amber_dirs):
    items, data = load_amber(*amber_dirs)
    assert [it["suite"] for it in items] == ["amber_generative"] * 2 + ["amber_discriminative"] * 3
    assert [it.get("dimension") for it in items[2:]] == ["existence", "attribute", "relation"]
    assert items[2]["label"] == "no" and items[0]["scene_id"] == "AMBER_1.jpg"
    assert data.nouns("Two boats and puppies under the sky") == ["boat", "puppy", "sky"]


def test_generative_metrics(amber_dirs):
    items, data = load_amber(*amber_dirs)
    m = score_amber(_rows(items), data, n_boot=50)["amber_generative"]
    # CHAIR = 2 hallucinated / 7 nouns; Cover = 4 of 6 truth entries; Hal = 1 of 2; Cog = 1 of 3 targets
    assert {k: m[k]["value"] for k in m} == pytest.approx({"chair": 2 / 7, "cover": 4 / 6, "hal": 0.5, "cog": 1 / 3})


def test_discriminative_metrics_positive_class_no(amber_dirs):
    items, data = load_amber(*amber_dirs)
    m = score_amber(_rows(items), data, n_boot=50)
    v = {s: {k: m[s][k]["value"] for k in m[s]} for s in m if s != "amber_generative"}
    # answered no: ids 3, 4; truth no: ids 3, 5; both: id 3
    assert v["amber_discriminative"] == pytest.approx({"accuracy": 1 / 3, "precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert v["amber_existence"] == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert v["amber_attribute"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert v["amber_relation"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_errors_name_what_is_wrong(amber_dirs):
    d, images = amber_dirs
    (d / "query" / "query_all.json").write_text('[{"id": 1, "image": "AMBER_1.jpg"}')
    with pytest.raises(BenchmarkFileError, match=r"query_all\.json:1: not valid JSON"):
        load_amber(d, images)
    (d / "query" / "query_all.json").write_text(json.dumps([{"id": 9, "image": "AMBER_1.jpg", "query": "?"}]))
    with pytest.raises(BenchmarkFileError, match=r"entry 0: id 9 has no entry in annotations\.json"):
        load_amber(d, images)
    (d / "query" / "query_all.json").write_text(json.dumps([{"id": 1, "image": "AMBER_7.jpg", "query": "?"}]))
    with pytest.raises(BenchmarkFileError, match=r"AMBER_7\.jpg: image listed by AMBER"):
        load_amber(d, images)
    ann = json.loads((d / "annotations.json").read_text())
    ann[2]["truth"] = "maybe"
    (d / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(BenchmarkFileError, match=r"annotations\.json: entry 2: discriminative truth"):
        load_amber(d, images)
    (d / "safe_words.txt").unlink()
    ann[2]["truth"] = "no"
    (d / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(BenchmarkFileError, match=r"safe_words\.txt: file not found"):
        load_amber(d, images)
