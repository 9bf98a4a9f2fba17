"""Tiny benchmark files in the published formats, written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image


def write_images(d: Path, names, size=(40, 30)) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
        Image.new("RGB", size, (40 * k % 255, 90, 160)).save(d / n)
    return d


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


POPE_ROWS = {  # per split: (question_id, image, object, label)
    "random": [
        (1, "COCO_val2014_000000000001.jpg", "cat", "yes"),
        (2, "COCO_val2014_000000000001.jpg", "dog", "no"),
        (3, "COCO_val2014_000000000002.jpg", "car", "yes"),
        (4, "COCO_val2014_000000000002.jpg", "bus", "no"),
    ],
    "popular": [
        (1, "COCO_val2014_000000000001.jpg", "cat", "yes"),
        (2, "COCO_val2014_000000000002.jpg", "person", "no"),
    ],
    "adversarial": [
        (1, "COCO_val2014_000000000001.jpg", "cat", "yes"),
        (2, "COCO_val2014_000000000002.jpg", "road", "no"),
    ],
}


@pytest.fixture
def pope_dirs(tmp_path):
    labels = tmp_path / "pope"
    for split, rows in POPE_ROWS.items():
        write_jsonl(
            labels / f"coco_pope_{split}.json",
            [
                {"question_id": q, "image": im, "text": f"Is there a {o} in the image?", "label": y}
                for q, im, o, y in rows
            ],
        )
    images = write_images(tmp_path / "val2014", sorted({r[1] for rows in POPE_ROWS.values() for r in rows}))
    return labels, images


AMBER_ANNOTATIONS = [
    {"id": 1, "type": "generative", "truth": ["dog", "grass", "tree"], "hallu": ["cat", "ball"]},
    {"id": 2, "type": "generative", "truth": ["man", "ship", "ship"], "hallu": ["bird"]},
    {"id": 3, "type": "discriminative-hallucination", "truth": "no"},
    {"id": 4, "type": "discriminative-attribute-state", "truth": "yes"},
    {"id": 5, "type": "discriminative-relation", "truth": "no"},
]
AMBER_RELATION = {
    "dog": ["puppy"],
    "grass": [],
    "tree": [],
    "cat": ["kitten"],
    "ball": [],
    "man": ["person", "men"],
    "ship": ["boat"],
    "bird": [],
    "car": [],
    "sky": [],
}
AMBER_QUERIES = [
    {"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."},
    {"id": 2, "image": "AMBER_2.jpg", "query": "Describe this image."},
    {"id": 3, "image": "AMBER_1.jpg", "query": "Is there a cat in this image?"},
    {"id": 4, "image": "AMBER_1.jpg", "query": "Is the dog running in this image?"},
    {"id": 5, "image": "AMBER_2.jpg", "query": "Is the man on the ship in this image?"},
]


@pytest.fixture
def amber_dirs(tmp_path):
    d = tmp_path / "amber" / "data"
    (d / "query").mkdir(parents=True)
    (d / "annotations.json").write_text(json.dumps(AMBER_ANNOTATIONS, indent=4))
    (d / "relation.json").write_text(json.dumps(AMBER_RELATION))
    (d / "safe_words.txt").write_text("sky\n")
    (d / "query" / "query_all.json").write_text(json.dumps(AMBER_QUERIES, indent=4))
    images = write_images(tmp_path / "amber" / "image", ["AMBER_1.jpg", "AMBER_2.jpg"])
    return d, images


@pytest.fixture
def coco_dirs(tmp_path):
    d = tmp_path / "coco"
    d.mkdir()
    inst = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [
            {"id": 1, "name": "dog"},
            {"id": 2, "name": "person"},
            {"id": 3, "name": "couch"},
            {"id": 4, "name": "cat"},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 1},
            {"image_id": 1, "category_id": 2},
            {"image_id": 1, "category_id": 2},
            {"image_id": 2, "category_id": 3},
        ],
    }
    (d / "instances_val2014.json").write_text(json.dumps(inst))
    (d / "captions_val2014.json").write_text(
        json.dumps({"annotations": [{"image_id": 2, "caption": "A cat sleeps on a sofa."}]})
    )
    write_jsonl(
        d / "questions.jsonl",
        [
            {"question_id": 10, "image": "a.jpg", "text": "Describe the image in detail."},
            {"question_id": 11, "image": "b.jpg", "text": "Describe the image in detail."},
        ],
    )
    images = write_images(d / "images", ["a.jpg", "b.jpg"])
    return d, images
