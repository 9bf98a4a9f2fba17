"""``python -m study.bench`` reads its paths from params and refuses clearly when one is missing."""

import json

import yaml

from study.bench.__main__ import main


def _params(tmp_path, **bench) -> str:
    raw = yaml.safe_load(open("params.yaml"))
    raw["benchmarks"] = {
        **raw["benchmarks"],
        "out": str(tmp_path / "out"),
        "n_boot": 20,
        "batch_size": 4,
        "max_new_tokens": 3,
        **bench,
    }
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def test_runs_pope_and_halbench_from_params(tmp_path, spec, save_tiny_llava_next, pope_dirs, coco_dirs, capsys):
    model_dir = save_tiny_llava_next(tmp_path / "ckpt", spec)
    labels, images = pope_dirs
    coco, coco_images = coco_dirs
    params = _params(
        tmp_path,
        pope={"dir": str(labels), "images": str(images), "prompt_suffix": ""},
        halbench={
            "questions": str(coco / "questions.jsonl"),
            "images": str(coco_images),
            "instances": str(coco / "instances_val2014.json"),
            "captions": "",
        },
    )
    assert main(["--params", params, "--model", str(model_dir)]) == 0
    pope = json.loads((tmp_path / "out" / "pope" / "metrics.json").read_text())
    assert {"pope_random", "pope_popular", "pope_adversarial", "parser_sensitivity", "_meta"} <= set(pope)
    assert pope["_meta"]["n_items"] == 8
    hal = json.loads((tmp_path / "out" / "halbench" / "metrics.json").read_text())
    assert set(hal["halbench"]) == {"chair_i", "chair_s", "recall", "length"} and "parser_sensitivity" not in hal
    assert "pope: 8 items" in capsys.readouterr().out


def test_refuses_without_files_or_model(tmp_path, pope_dirs, capsys):
    assert main(["--params", _params(tmp_path)]) == 2
    assert "not configured: none" in capsys.readouterr().err
    labels, images = pope_dirs
    params = _params(tmp_path, pope={"dir": str(labels), "images": str(images), "prompt_suffix": ""})
    assert main(["--params", params, "--only", "amber"]) == 2
    assert "not configured: amber" in capsys.readouterr().err
    assert main(["--params", params]) == 2
    assert "no checkpoint to evaluate" in capsys.readouterr().err
    assert main(["--params", params, "--model", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    (labels / "coco_pope_random.json").write_text("{oops\n")  # a bad file is caught before any model loads
    assert main(["--params", params, "--model", str(tmp_path)]) == 2
    assert "coco_pope_random.json:1: not valid JSON" in capsys.readouterr().err


def test_benchmark_paths_are_validated_together():
    import pytest

    from study.config import ParamsError, resolve

    raw = yaml.safe_load(open("params.yaml"))
    raw["benchmarks"]["halbench"]["questions"] = "q.jsonl"
    with pytest.raises(
        ParamsError, match=r"`benchmarks\.halbench\.images`: must be set when benchmarks\.halbench\.questions"
    ):
        resolve(raw)
    raw["benchmarks"]["halbench"] = {"questions": "", "images": "", "instances": "", "captions": ""}
    raw["benchmarks"]["batch_size"] = 0
    with pytest.raises(ParamsError, match=r"`benchmarks\.batch_size`"):
        resolve(raw)
