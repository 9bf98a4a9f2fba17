"""POPE from its published label files and a local COCO val2014 image folder.

Files (POPE's ``output/coco/``), one JSON object a line::

    coco_pope_random.json  coco_pope_popular.json  coco_pope_adversarial.json
    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}

Each line becomes one evaluation item in the study's results layout: ``item_id`` =
``pope_{split}:{question_id}``, ``suite`` = ``pope_{split}``, ``scene_id`` = the image file name (the
bootstrap cluster, as a scene is in the organism), ``image``, ``prompt`` = ``text`` + the configured
suffix, ``label``. Scoring is the organism's POPE scoring (:mod:`study.eval.pope`: POPE's parser,
positive class = yes, accuracy / precision / recall / F1 / yes-ratio) with 95 % CIs from a bootstrap
over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from study.bench.files import BenchmarkFileError, check_images, read_json_lines, require_dir, require_fields
from study.bench.plan import Plan, score_by_plan
from study.eval.pope import POPE_METRICS, SPLIT_TYPES, pope_stats

FILE_PATTERN = "coco_pope_{split}.json"
FIELDS = ("question_id", "image", "text", "label")


def load_pope(
    label_dir: str | Path,
    image_dir: str | Path,
    *,
    splits: Sequence[str] = SPLIT_TYPES,
    limit: int | None = None,
    prompt_suffix: str = "",
) -> list[dict]:
    """Evaluation items of the chosen POPE splits (the first ``limit`` lines of each, if given)."""
    d = require_dir(label_dir, "POPE's coco_pope_{random,popular,adversarial}.json label files")
    items: list[dict] = []
    for split in splits:
        if split not in SPLIT_TYPES:
            raise ValueError(f"POPE split must be one of {SPLIT_TYPES}, got {split!r}")
        path = d / FILE_PATTERN.format(split=split)
        rows = read_json_lines(path, f"POPE's {split} questions, one JSON object a line with {list(FIELDS)}")
        seen: dict = {}
        for n, obj in rows[:limit] if limit is not None else rows:
            where = f"{path}:{n}"
            require_fields(obj, FIELDS, where)
            if obj["label"] not in ("yes", "no"):
                raise BenchmarkFileError(f"{where}: label must be 'yes' or 'no', got {obj['label']!r}")
            if obj["question_id"] in seen:
                raise BenchmarkFileError(
                    f"{where}: question_id {obj['question_id']!r} repeats line {seen[obj['question_id']]}"
                )
            seen[obj["question_id"]] = n
            items.append(
                {
                    "item_id": f"pope_{split}:{obj['question_id']}",
                    "suite": f"pope_{split}",
                    "scene_id": str(obj["image"]),
                    "image": str(obj["image"]),
                    "prompt": str(obj["text"]) + prompt_suffix,
                    "label": obj["label"],
                }
            )
    check_images(image_dir, [it["image"] for it in items], "POPE")
    return items


def pope_item_stats(row: dict) -> dict[str, int]:
    return pope_stats(row["answer"], row["label"])


def pope_plan(rows: Sequence[dict]) -> Plan:
    """One suite per POPE split present (:mod:`study.bench.plan`)."""
    suites = dict.fromkeys(r["suite"] for r in rows)
    return {s: ([i for i, r in enumerate(rows) if r["suite"] == s], pope_item_stats, POPE_METRICS) for s in suites}


def score_pope(rows: Sequence[dict], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """``{suite: {metric: {"value", "ci95"}}}`` per POPE split present, CIs resampling images."""
    return score_by_plan(rows, pope_plan(rows), n_boot=n_boot, seed=seed)
