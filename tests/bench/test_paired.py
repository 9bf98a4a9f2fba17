"""Paired comparison of two results directories of one real benchmark; deltas hand-computed.

Results directories are written the way ``python -m study.bench`` writes them (items read from label
files the tests write, answers set by hand instead of by a model, scored by the benchmark's scorer,
:func:`study.bench.runner.write_bench_results`).
"""

import json

import pytest
import yaml
from PIL import Image

from study.bench.amber import load_amber, score_amber
from study.bench.compare import main
from study.bench.halbench import ground_truth, load_halbench, score_halbench
from study.bench.paired import HIGHER_IS_BETTER, Results, compare_results, paired_table
from study.bench.pope_files import load_pope, score_pope
from study.bench.runner import write_bench_results
from study.eval.pope import POPE_METRICS


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_images(d, names):
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (8, 8), (90, 90, 160)).save(d / n)
    return d


# POPE adversarial split of 3 images x 3 questions: (question_id, image, label)
ADV = [(q, f"COCO_val2014_00000000000{1 + (q - 1) // 3}.jpg", "yes" if q % 3 != 0 else "no") for q in range(1, 10)]
N = len(ADV)
B_WRONG = {1, 2, 4, 9}  # B gets these wrong (two on image 1, one each on images 2 and 3); A gets none wrong
K = len(B_WRONG)


def _answer(label: str, correct: bool) -> str:
    said_yes = (label == "yes") == correct
    return "Yes, there is." if said_yes else "No, there is not."


@pytest.fixture
def pope_items(tmp_path):
    labels = tmp_path / "pope_labels"
    write_jsonl(
        labels / "coco_pope_adversarial.json",
        [{"question_id": q, "image": im, "text": f"Is there a thing {q}?", "label": y} for q, im, y in ADV],
    )
    images = write_images(tmp_path / "val2014", sorted({im for _, im, _ in ADV}))
    return load_pope(labels, images, splits=["adversarial"])


def write_pope(out, items, wrong=(), drop=()):
    """A POPE results directory: every item answered correctly except the question ids in ``wrong``."""
    rows = [
        {**it, "answer": _answer(it["label"], int(it["item_id"].split(":")[1]) not in wrong)}
        for it in items
        if int(it["item_id"].split(":")[1]) not in drop
    ]
    write_bench_results(out, rows, score_pope(rows, n_boot=20), {"benchmark": "pope", "n_items": len(rows)})
    return out


def test_identical_results_give_zero_deltas_not_resolved(pope_items, tmp_path):
    a = write_pope(tmp_path / "a" / "pope", pope_items, wrong=B_WRONG)
    b = write_pope(tmp_path / "b" / "pope", pope_items, wrong=B_WRONG)
    res = compare_results([Results(a)], [Results(b)], n_boot=200, seed=3)
    table = res["suites"]["pope_adversarial"]
    assert set(table) == set(POPE_METRICS)
    stored = json.loads((a / "metrics.json").read_text())["pope_adversarial"]
    for m, row in table.items():
        assert row["a"] == row["b"] == stored[m]["value"]
        assert row["delta"] == 0.0 and row["ci95"] == [0.0, 0.0]
        assert row["verdict"] == ("n/a" if m == "yes_ratio" else "not resolved")
    assert table["accuracy"]["n_items"] == N and table["accuracy"]["n_images"] == 3


def test_k_more_correct_answers_is_delta_k_over_n_and_better(pope_items, tmp_path):
    a = write_pope(tmp_path / "a", pope_items)
    b = write_pope(tmp_path / "b", pope_items, wrong=B_WRONG)
    table = compare_results([Results(a)], [Results(b)], n_boot=500, seed=0)["suites"]["pope_adversarial"]
    acc = table["accuracy"]
    assert acc["a"] == 1.0 and acc["b"] == pytest.approx((N - K) / N)
    assert acc["delta"] == pytest.approx(K / N)
    # A is right more often on every image, so every replicate's delta is > 0
    lo, hi = acc["ci95"]
    assert 0.0 < lo <= K / N <= hi and acc["verdict"] == "better"
    # B: of the 6 "yes" items it says "no" to 1, 2, 4 (FN = 3, TP = 3); of the 3 "no" items it says "yes" to 9
    assert table["recall"]["delta"] == pytest.approx(1 - 3 / 6)
    assert table["precision"]["delta"] == pytest.approx(1 - 3 / 4)
    assert table["yes_ratio"]["delta"] == pytest.approx(6 / 9 - 4 / 9) and table["yes_ratio"]["verdict"] == "n/a"
    swapped = compare_results([Results(b)], [Results(a)], n_boot=500, seed=0)["suites"]["pope_adversarial"]
    assert swapped["accuracy"]["delta"] == pytest.approx(-K / N) and swapped["accuracy"]["verdict"] == "worse"
    assert swapped["accuracy"]["ci95"] == pytest.approx([-hi, -lo])  # same image draws on both orders


def test_the_items_of_one_image_move_together(pope_items, tmp_path):
    one_image = [it for it in pope_items if it["image"] == ADV[0][1]]  # questions 1-3
    a = write_pope(tmp_path / "a", one_image)
    b = write_pope(tmp_path / "b", one_image, wrong=B_WRONG)  # wrong on 1 and 2
    acc = compare_results([Results(a)], [Results(b)], n_boot=200)["suites"]["pope_adversarial"]["accuracy"]
    # one image: every replicate draws it 1 time, so the interval is the point (an item bootstrap would spread)
    assert acc["delta"] == pytest.approx(2 / 3) and acc["ci95"] == pytest.approx([2 / 3, 2 / 3])
    assert acc["n_images"] == 1 and acc["verdict"] == "better"


def test_a_side_with_several_seeds_is_their_mean(pope_items, tmp_path):
    a0 = Results(write_pope(tmp_path / "a0", pope_items))
    a1 = Results(write_pope(tmp_path / "a1", pope_items, wrong=B_WRONG))
    b = Results(write_pope(tmp_path / "b", pope_items, wrong=B_WRONG))
    acc = compare_results([a0, a1], [b], n_boot=200)["suites"]["pope_adversarial"]["accuracy"]
    assert acc["a_runs"] == [1.0, pytest.approx((N - K) / N)]
    assert acc["delta"] == pytest.approx(K / N / 2) and acc["verdict"] == "better"


def _halbench_dir(out, items, answers, gt):
    rows = [{**it, "answer": answers[it["image"]]} for it in items]
    write_bench_results(out, rows, score_halbench(rows, gt, n_boot=20), {"benchmark": "halbench"})
    return out


def test_fewer_hallucinated_objects_is_better_although_chair_falls(coco_dirs, tmp_path):
    d, images = coco_dirs
    items = load_halbench(d / "questions.jsonl", images)
    gt, _ = ground_truth(d / "instances_val2014.json", d / "captions_val2014.json")  # a: dog, person; b: couch, cat
    a = _halbench_dir(tmp_path / "a", items, {"a.jpg": "A man and his dog.", "b.jpg": "A cat on a couch."}, gt)
    b = _halbench_dir(
        tmp_path / "b", items, {"a.jpg": "A man, a dog and a car.", "b.jpg": "A cat on a couch with a bird."}, gt
    )
    t = compare_results([Results(a)], [Results(b)], gt, n_boot=300)["suites"]["halbench"]
    assert HIGHER_IS_BETTER["chair_i"] is False and HIGHER_IS_BETTER["chair_s"] is False
    # B hallucinates car and bird: CHAIR_i 2 of 6 mentions, CHAIR_s 2 of 2 answers; A none
    assert t["chair_i"]["delta"] == pytest.approx(-2 / 6) and t["chair_i"]["ci95"][1] < 0
    assert t["chair_i"]["verdict"] == "better"
    assert t["chair_s"]["delta"] == -1.0 and t["chair_s"]["verdict"] == "better"
    assert t["recall"]["delta"] == 0.0 and t["recall"]["verdict"] == "not resolved"  # both name all 4 objects
    assert t["length"]["verdict"] == "n/a"
    # scored against other ground truth than the results were: refused, naming the metrics file. Without the
    # captions b.jpg holds only a couch, so A's cat is hallucinated: 1 of A's 4 mentions
    gt_no_caps, _ = ground_truth(d / "instances_val2014.json")
    with pytest.raises(
        ValueError, match=rf"a/metrics\.json: halbench chair_i is 0\.0 but its predictions score {1 / 4} here"
    ):
        compare_results([Results(a)], [Results(b)], gt_no_caps, n_boot=20)


def test_amber_suites_are_the_scorers(amber_dirs, tmp_path):
    items, data = load_amber(*amber_dirs)
    answers = {1: "A puppy on the grass near a kitten.", 2: "A man on a ship.", 3: "No.", 4: "Yes.", 5: "No."}
    worse = {**answers, 1: "A puppy, a kitten and a car on the grass.", 5: "Yes."}
    dirs = []
    for name, ans in (("a", answers), ("b", worse)):
        rows = [{**it, "answer": ans[it["amber_id"]]} for it in items]
        write_bench_results(tmp_path / name, rows, score_amber(rows, data, n_boot=20), {"benchmark": "amber"})
        dirs.append(Results(tmp_path / name))
    t = compare_results(dirs[:1], dirs[1:], data, n_boot=100)["suites"]
    assert list(t) == [
        "amber_generative",
        "amber_discriminative",
        "amber_existence",
        "amber_attribute",
        "amber_relation",
    ]
    # nouns A: puppy (dog), grass, kitten (hallucinated) | man, ship; B adds car: 2 of 4 nouns on image 1
    assert t["amber_generative"]["chair"]["a"] == pytest.approx(1 / 5)
    assert t["amber_generative"]["chair"]["b"] == pytest.approx(2 / 6)
    assert t["amber_relation"]["accuracy"]["delta"] == 1.0  # id 5 (truth no): A says no, B says yes
    assert t["amber_existence"]["accuracy"]["delta"] == 0.0
    with pytest.raises(ValueError, match="needs AMBER's annotations"):
        compare_results(dirs[:1], dirs[1:], None, n_boot=10)


def test_unmatched_items_and_other_benchmarks_are_refused(pope_items, tmp_path, coco_dirs):
    a = Results(write_pope(tmp_path / "a", pope_items))
    b = Results(write_pope(tmp_path / "b", pope_items, drop={5}))
    with pytest.raises(ValueError, match=r"item 'pope_adversarial:5' of A run 0 is missing from B run 0"):
        compare_results([a], [b], n_boot=10)
    with pytest.raises(ValueError, match=r"item 'pope_adversarial:5' of B run 0 is missing from A run 0"):
        compare_results([b], [a], n_boot=10)
    relabelled = [dict(r) for r in a.rows]
    relabelled[2]["label"] = "yes"
    with pytest.raises(ValueError, match=r"item 'pope_adversarial:3': label is 'yes' in B run 0 but 'no' in A run 0"):
        paired_table([a.rows], [relabelled], "pope", n_boot=10)
    d, images = coco_dirs
    items = load_halbench(d / "questions.jsonl", images)
    gt, _ = ground_truth(d / "instances_val2014.json")
    hal = Results(_halbench_dir(tmp_path / "hal", items, {"a.jpg": "A dog.", "b.jpg": "A couch."}, gt))
    with pytest.raises(ValueError, match=r"hal holds halbench results but .*a holds pope"):
        compare_results([a], [hal], gt, n_boot=10)


def _params(tmp_path, coco_dirs) -> str:
    d, images = coco_dirs
    raw = yaml.safe_load(open("params.yaml"))
    raw["benchmarks"]["halbench"] = {
        "questions": str(d / "questions.jsonl"),
        "images": str(images),
        "instances": str(d / "instances_val2014.json"),
        "captions": str(d / "captions_val2014.json"),
    }
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def test_cli_prints_the_table_writes_json_and_refuses_bad_input(pope_items, coco_dirs, tmp_path, capsys):
    a = write_pope(tmp_path / "a" / "pope", pope_items)
    b = write_pope(tmp_path / "b" / "pope", pope_items, wrong=B_WRONG)
    out = tmp_path / "cmp" / "pope.json"
    assert main([str(a), str(b), "--n-boot", "200", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| suite | metric | A | B | Delta | 95 % CI | verdict |" in printed
    saved = json.loads(out.read_text())
    acc = saved["suites"]["pope_adversarial"]["accuracy"]
    assert acc["delta"] == pytest.approx(K / N) and saved["n_boot"] == 200 and saved["benchmark"] == "pope"
    lo, hi = acc["ci95"]
    row = (
        f"| pope_adversarial | accuracy | 1.0000 | {(N - K) / N:.4f} | {K / N:+.4f} | [{lo:+.4f}, {hi:+.4f}] | better |"
    )
    assert row in printed.splitlines()
    # two seeds of A, one identical to B: half the delta
    assert main([str(a), str(b), "--more-a", str(b), "--n-boot", "50", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["suites"]["pope_adversarial"]["accuracy"]["delta"] == pytest.approx(K / N / 2)
    capsys.readouterr()

    def refused(argv, *needles):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for needle in needles:
            assert needle in err, err

    refused([str(tmp_path / "nowhere"), str(b)], f"{tmp_path / 'nowhere'}: results directory not found")
    (tmp_path / "empty").mkdir()
    refused([str(a), str(tmp_path / "empty")], f"{tmp_path / 'empty' / 'predictions.jsonl'}: file not found")
    d, images = coco_dirs
    gt, _ = ground_truth(d / "instances_val2014.json", d / "captions_val2014.json")
    items = load_halbench(d / "questions.jsonl", images)
    hal_a = _halbench_dir(tmp_path / "hal_a", items, {"a.jpg": "A dog.", "b.jpg": "A cat."}, gt)
    hal_b = _halbench_dir(tmp_path / "hal_b", items, {"a.jpg": "A dog and a car.", "b.jpg": "A cat."}, gt)
    refused([str(a), str(hal_b)], str(hal_b), "halbench", "pope")
    # Object-HalBench rescoring reads COCO's files from --params
    refused([str(hal_a), str(hal_b), "--params", str(tmp_path / "no.yaml")], "params file not found")
    assert main([str(hal_a), str(hal_b), "--params", _params(tmp_path, coco_dirs), "--n-boot", "50"]) == 0
    assert "| halbench | chair_i | 0.0000 | 0.3333 | -0.3333 |" in capsys.readouterr().out
