"""Answer-parser sensitivity of yes/no benchmarks (POPE, AMBER's discriminative part).

A yes/no accuracy depends on how free text is turned into "yes"/"no". Three rules, applied to the same
raw answers:

    pope        POPE's own rule (:func:`study.eval.pope.pope_parse`): "no" iff the text before the first
                ``.`` holds the token ``no`` or ``not``; anything else, the empty answer included, is "yes".
    exact       the whole answer, lower-cased, stripped of white space and of one trailing ``.``/``!``,
                is exactly ``yes`` or ``no``; anything else is unparsed.
    first_word  the first word (:func:`study.bench.files.words`) is ``yes`` or ``no``; else unparsed.

An unparsed answer counts as wrong and as not "yes". Per parser, positive class = yes:

    accuracy  = #correct / N,   yes_ratio = #parsed "yes" / N,   unparsed = #unparsed / N,
    f1        = 2 TP / (2 TP + FP + FN)   (an unparsed answer to a "yes" item is a false negative).

A suite is *parser-sensitive* when the accuracies of the parsers differ by more than
``threshold`` (one point, 0.01, by default): its accuracy is then a property of the parser as much as
of the model, and the table says so.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from study.bench.files import words
from study.eval.bootstrap import ratio
from study.eval.pope import pope_parse

Parser = Callable[[str], "str | None"]


def exact_parse(answer: str) -> str | None:
    text = answer.strip().lower()
    if text[-1:] in (".", "!"):
        text = text[:-1].strip()
    return text if text in ("yes", "no") else None


def first_word_parse(answer: str) -> str | None:
    toks = words(answer)
    return toks[0] if toks and toks[0] in ("yes", "no") else None


PARSERS: dict[str, Parser] = {"pope": pope_parse, "exact": exact_parse, "first_word": first_word_parse}
DISAGREE_THRESHOLD = 0.01


def parse_stats(answer: str, label: str, parser: Parser) -> dict[str, int]:
    """Counts of one yes/no item under one parser (positive class = yes)."""
    if label not in ("yes", "no"):
        raise ValueError(f"label must be 'yes' or 'no', got {label!r}")
    pred = parser(answer)
    return {
        "n": 1,
        "correct": int(pred == label),
        "pred_yes": int(pred == "yes"),
        "unparsed": int(pred is None),
        "tp": int(pred == "yes" and label == "yes"),
        "fp": int(pred == "yes" and label == "no"),
        "fn": int(pred != "yes" and label == "yes"),
    }


PARSE_METRICS = {
    "accuracy": lambda s: ratio(s["correct"], s["n"]),
    "f1": lambda s: ratio(2 * s["tp"], 2 * s["tp"] + s["fp"] + s["fn"]),
    "yes_ratio": lambda s: ratio(s["pred_yes"], s["n"]),
    "unparsed": lambda s: ratio(s["unparsed"], s["n"]),
}


def parser_table(
    answers: Sequence[str],
    labels: Sequence[str],
    *,
    parsers: Mapping[str, Parser] = PARSERS,
    threshold: float = DISAGREE_THRESHOLD,
) -> dict:
    """``{"parsers": {name: {metric: value}}, "accuracy_gap", "sensitive"}`` for one suite's answers."""
    if len(answers) != len(labels):
        raise ValueError(f"{len(answers)} answers for {len(labels)} labels")
    table = {}
    for name, parser in parsers.items():
        sums: dict[str, int] = {}
        for a, y in zip(answers, labels):
            for k, v in parse_stats(a, y, parser).items():
                sums[k] = sums.get(k, 0) + v
        table[name] = {m: float(fn(sums)) if sums else 0.0 for m, fn in PARSE_METRICS.items()}
    accs = [t["accuracy"] for t in table.values()]
    gap = max(accs) - min(accs) if accs else 0.0
    return {
        "parsers": table,
        "accuracy_gap": gap,
        "sensitive": gap > threshold,
        "threshold": threshold,
        "n": len(answers),
    }


def sensitivity_by_suite(
    rows: Sequence[dict], *, label_field: str = "label", threshold: float = DISAGREE_THRESHOLD
) -> dict[str, dict]:
    """:func:`parser_table` for every suite of prediction rows that carry a yes/no ``label_field``."""
    out: dict[str, dict] = {}
    for suite in dict.fromkeys(r["suite"] for r in rows if r.get(label_field) in ("yes", "no")):
        sel = [r for r in rows if r["suite"] == suite and r.get(label_field) in ("yes", "no")]
        out[suite] = parser_table([r["answer"] for r in sel], [r[label_field] for r in sel], threshold=threshold)
    return out
