"""Object-HalBench-style CHAIR on COCO annotations; metrics hand-computed."""

import pytest

from study.bench.files import BenchmarkFileError
from study.bench.halbench import CocoLexicon, ground_truth, load_halbench, score_halbench

ANSWERS = {
    "a.jpg": "A man and his puppy sit next to a hot dog.",  # person, dog, hot dog (hallucinated)
    "b.jpg": "A kitten on a couch.",
}  # cat (from the captions), couch


def test_lexicon_matches_longest_phrase_and_plurals():
    lex = CocoLexicon()
    assert len(lex.categories) == 80
    assert lex.mentions("Two men ride bikes past a hot dog stand and a dog; teddy bears on sofas; knives.") == [
        "person",
        "bicycle",
        "hot dog",
        "dog",
        "teddy bear",
        "couch",
        "knife",
    ]
    assert lex.mentions("buses and ladies") == ["bus", "person"]


def test_ground_truth_adds_caption_objects(coco_dirs):
    d, _ = coco_dirs
    gt, ids = ground_truth(d / "instances_val2014.json", d / "captions_val2014.json")
    assert gt == {"a.jpg": {"dog", "person"}, "b.jpg": {"couch", "cat"}} and ids == {"a.jpg": 1, "b.jpg": 2}
    assert ground_truth(d / "instances_val2014.json")[0]["b.jpg"] == {"couch"}


def test_chair_metrics(coco_dirs):
    d, images = coco_dirs
    items = load_halbench(d / "questions.jsonl", images)
    assert [it["item_id"] for it in items] == ["halbench:10", "halbench:11"]
    rows = [{**it, "answer": ANSWERS[it["image"]]} for it in items]
    gt, _ = ground_truth(d / "instances_val2014.json", d / "captions_val2014.json")
    m = score_halbench(rows, gt, n_boot=50)["halbench"]
    # 1 of 5 mentions hallucinated, 1 of 2 answers; 4 of 4 GT objects named; 11 and 5 words
    assert {k: m[k]["value"] for k in m} == pytest.approx(
        {"chair_i": 0.2, "chair_s": 0.5, "recall": 1.0, "length": 8.0}
    )
    gt_no_caps, _ = ground_truth(d / "instances_val2014.json")
    m = score_halbench(rows, gt_no_caps, n_boot=50)["halbench"]
    assert m["chair_i"]["value"] == pytest.approx(0.4) and m["chair_s"]["value"] == 1.0


def test_errors(coco_dirs):
    d, images = coco_dirs
    (d / "questions.jsonl").write_text('{"question_id": 10, "image": "a.jpg", "text": "x"}\nnot json\n')
    with pytest.raises(BenchmarkFileError, match=r"questions\.jsonl:2: not valid JSON"):
        load_halbench(d / "questions.jsonl", images)
    with pytest.raises(BenchmarkFileError, match=r"image 'z\.jpg' has no entry in the COCO instances file"):
        score_halbench([{"image": "z.jpg", "scene_id": "z.jpg", "answer": "a dog"}], {"a.jpg": {"dog"}})
    (d / "instances_val2014.json").write_text(
        '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "unicorn"}]}'
    )
    with pytest.raises(BenchmarkFileError, match=r"categories not in coco_objects\.txt: \['unicorn'\]"):
        ground_truth(d / "instances_val2014.json")
