"""POPE read from its label files, scored with POPE's parser; metrics hand-computed."""

import json

import pytest

from study.bench.files import BenchmarkFileError
from study.bench.pope_files import load_pope, score_pope


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


RANDOM_ANSWERS = ["Yes.", "No, there is not.", "no", "Yes, there is a bus."]


def test_items_follow_the_files(pope_dirs):
    items = load_pope(*pope_dirs, prompt_suffix=" Answer yes or no.")
    assert [it["item_id"] for it in items[:4]] == [f"pope_random:{q}" for q in (1, 2, 3, 4)]
    assert {it["suite"] for it in items} == {"pope_random", "pope_popular", "pope_adversarial"}
    assert items[1]["prompt"] == "Is there a dog in the image? Answer yes or no."
    assert items[1]["scene_id"] == items[1]["image"] == "COCO_val2014_000000000001.jpg"
    assert [it["label"] for it in items[:4]] == ["yes", "no", "yes", "no"]
    assert len(load_pope(*pope_dirs, splits=["popular"], limit=1)) == 1


def test_metrics_are_popes(pope_dirs):
    items = load_pope(*pope_dirs, splits=["random"])
    rows = [{**it, "answer": a} for it, a in zip(items, RANDOM_ANSWERS)]
    m = score_pope(rows, n_boot=50)["pope_random"]
    # parsed yes, no, no, yes against labels yes, no, yes, no: TP=1, TN=1, FN=1, FP=1
    assert {k: m[k]["value"] for k in m} == {
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "yes_ratio": 0.5,
    }
    lo, hi = m["accuracy"]["ci95"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_malformed_line_names_file_and_line(pope_dirs):
    labels, images = pope_dirs
    path = labels / "coco_pope_popular.json"
    path.write_text(path.read_text().splitlines()[0] + '\n{"question_id": 2, "image": \n')
    with pytest.raises(BenchmarkFileError, match=r"coco_pope_popular\.json:2: not valid JSON"):
        load_pope(labels, images)


def test_bad_label_and_repeated_id_name_the_line(pope_dirs):
    labels, images = pope_dirs
    row = {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a cat?", "label": "Yes"}
    write_jsonl(labels / "coco_pope_random.json", [row])
    with pytest.raises(BenchmarkFileError, match=r"coco_pope_random\.json:1: label must be 'yes' or 'no'"):
        load_pope(labels, images)
    write_jsonl(labels / "coco_pope_random.json", [{**row, "label": "yes"}, {**row, "label": "no"}])
    with pytest.raises(BenchmarkFileError, match=r"coco_pope_random\.json:2: question_id 1 repeats line 1"):
        load_pope(labels, images)


def test_missing_image_file_and_dir_are_named(pope_dirs, tmp_path):
    labels, images = pope_dirs
    (images / "COCO_val2014_000000000002.jpg").unlink()
    with pytest.raises(BenchmarkFileError, match=r"COCO_val2014_000000000002\.jpg: image listed by POPE"):
        load_pope(labels, images)
    with pytest.raises(BenchmarkFileError, match=r"nowhere: directory not found; it should hold POPE's"):
        load_pope(tmp_path / "nowhere", images)
    (labels / "coco_pope_adversarial.json").unlink()
    with pytest.raises(BenchmarkFileError, match=r"coco_pope_adversarial\.json: file not found"):
        load_pope(labels, images)
