"""Which comparison columns can measure hallucination at all: the image-sensitivity test (the columns rule).

A column of the comparison (:data:`study.report.comparison.COLUMNS`) decides a finding only if the SFT
model's value on it depends on the image. The test, stated before its results were seen: with
``M(SFT)`` the column's metric on the SFT model's evaluation and ``M(SFT_blind)`` the same metric on the
SFT model's answers to the same items with every image token masked (``predictions_blind.jsonl`` of the
``evaluate`` stage, :func:`study.eval.stage.blind_predictions`), the column is **measurable** iff the paired
scene-bootstrap difference ``M(SFT) - M(SFT_blind)`` (:func:`study.eval.paired.paired_difference`) has a 95 %
interval that excludes 0 *on the side where the image helps* (higher accuracy / recall / helpfulness,
lower CHAIR / hallucination rate).

Why: a column whose outcome the SFT model reaches as well without its image (e.g. typed-QA items whose
answer a yes-bias forces: "no" relation items and absent-colour items) measures answer biases, not
grounding, and a difference between aligned models on it is a shift of those biases. Such a column is
reported, but its comparisons are *not measurable* (:func:`study.report.findings.paired_compare`).
"""

from __future__ import annotations

from pathlib import Path

from study import io
from study.eval.paired import paired_difference, verdict
from study.report.comparison import COLUMNS


def image_sensitivity(
    with_image: list[dict], blind: list[dict], scenes, spec, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict]:
    """``{column: {"delta", "ci95", "n_items", "measurable"}}``: the paired difference with image - blind of
    each column and the test's outcome (module docstring)."""
    out = {}
    for column, suite, metric, hib in COLUMNS:
        if not any(r["suite"] == suite for r in with_image):
            continue
        d = paired_difference([with_image], [blind], scenes, spec, suite, metric, n_boot=n_boot, seed=seed)
        out[column] = {**d, "measurable": verdict(d, hib) == "better"}
    return out


def sft_image_sensitivity(eval_dir: str | Path, spec, *, n_boot: int = 1000, seed: int = 0) -> dict[str, dict] | None:
    """:func:`image_sensitivity` of ``<eval_dir>/sft`` (its predictions, blind predictions and scenes), or None
    when the SFT evaluation has no blind predictions (then every column is treated as measurable)."""
    from study.eval.stage import BLIND_FILE

    d = Path(eval_dir) / "sft"
    if not (d / BLIND_FILE).is_file():
        return None
    return image_sensitivity(
        io.read_jsonl(d / "predictions.jsonl"),
        io.read_jsonl(d / BLIND_FILE),
        io.read_jsonl(d / "scenes.jsonl"),
        spec,
        n_boot=n_boot,
        seed=seed,
    )
