"""AMBER (Wang et al., 2023) from its published files: generative CHAIR/Cover/Hal/Cog and discriminative
accuracy/precision/recall/F1.

Files (AMBER's ``data/``) and images::

    query/query_all.json   [{"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."}, ...]
    annotations.json       [{"id": 1, "type": "generative", "truth": [objects], "hallu": [objects]},
                            {"id": 1005, "type": "discriminative-hallucination", "truth": "no"}, ...]
    relation.json          {"object": ["associated word", ...]}   (AMBER's word association)
    safe_words.txt         one word a line: nouns that are never counted as hallucinations
    <image dir>/AMBER_1.jpg ...

Generative (``type == "generative"``). The response's words (:func:`study.bench.files.words`: lower-cased
alphanumeric runs) are each reduced to the first of (itself, minus ``s``, minus ``es``, ``ies`` -> ``y``) that is an AMBER object word (a key or value of ``relation.json``); other words are
ignored. For these nouns N (with repeats), the truth list T and the hallucination-target list H:

    a noun in safe_words.txt      counts in N only;
    else a noun in T' (a truth object or a word associated with one) credits the first such truth entry;
    else it is hallucinated, and if it is in H' (a target or associated word) it credits that target.

    CHAIR = sum #hallucinated / sum |N|      Cover = sum #credited truth entries / sum |T|
    Hal   = share of responses with a hallucinated noun      Cog = sum #credited targets / sum |H|

This is AMBER's rule without its two NLP steps: no spaCy similarity (> 0.8) fallback and no NLTK part-of-
speech filter, so nothing is downloaded. A noun matched only by similarity there is hallucinated here,
and a word used as a verb ("watch") is a noun here: numbers are comparable between runs scored by this
code, not to the official script's to the decimal.

Discriminative (every other ``type``). The answer is parsed by POPE's rule (:mod:`study.bench.parsers`
reports the other parsers); AMBER's positive class is **no**:

    accuracy = #correct / N,  precision = #(answered no and truth no) / #answered no,
    recall = #(answered no and truth no) / #truth no,  F1 = 2PR / (P + R),

overall and per dimension: existence (``discriminative-hallucination``), attribute
(``discriminative-attribute-*``: state, number, action) and relation (``discriminative-relation``).
CIs: bootstrap over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from study.bench.files import (
    BenchmarkFileError,
    check_images,
    read_json,
    require_dir,
    require_fields,
    require_file,
    singular_candidates,
    words,
)
from study.bench.plan import Plan, score_by_plan
from study.eval.bootstrap import ratio
from study.eval.pope import pope_parse

DIMENSIONS = {
    "discriminative-hallucination": "existence",
    "discriminative-attribute-state": "attribute",
    "discriminative-attribute-number": "attribute",
    "discriminative-attribute-action": "attribute",
    "discriminative-relation": "relation",
}


class AmberData:
    """AMBER's annotations, word association and safe words, read and checked once."""

    def __init__(self, data_dir: str | Path):
        d = require_dir(data_dir, "AMBER's annotations.json, relation.json and safe_words.txt")
        ann = read_json(d / "annotations.json", "AMBER's annotation list")
        if not isinstance(ann, list):
            raise BenchmarkFileError(f"{d / 'annotations.json'}: expected a JSON list of annotations")
        self.annotations: dict[int, dict] = {}
        for k, a in enumerate(ann):
            where = f"{d / 'annotations.json'}: entry {k}"
            require_fields(a, ("id", "type", "truth"), where)
            if a["type"] == "generative":
                require_fields(a, ("hallu",), where)
            elif a["type"] not in DIMENSIONS:
                raise BenchmarkFileError(f"{where}: unknown type {a['type']!r}")
            elif a["truth"] not in ("yes", "no"):
                raise BenchmarkFileError(f"{where}: discriminative truth must be 'yes' or 'no', got {a['truth']!r}")
            self.annotations[int(a["id"])] = a
        rel = read_json(d / "relation.json", "AMBER's word association, {object: [words]}")
        if not isinstance(rel, dict):
            raise BenchmarkFileError(f"{d / 'relation.json'}: expected a JSON object {{object: [words]}}")
        self.association: dict[str, list[str]] = {str(k): [str(w) for w in v] for k, v in rel.items()}
        self.vocabulary = set(self.association) | {w for v in self.association.values() for w in v}
        safe = require_file(d / "safe_words.txt", "AMBER's safe words, one a line")
        self.safe_words = {w.strip() for w in safe.read_text(encoding="utf-8").splitlines() if w.strip()}

    def expand(self, word: str) -> set[str]:
        """An object and the words associated with it."""
        return {word, *self.association.get(word, [])}

    def nouns(self, text: str) -> list[str]:
        out = []
        for t in words(text):
            cand = next((c for c in singular_candidates(t) if c in self.vocabulary), None)
            if cand is not None:
                out.append(cand)
        return out


def load_amber(
    data_dir: str | Path, image_dir: str | Path, *, query_file: str = "query/query_all.json", limit: int | None = None
) -> tuple[list[dict], AmberData]:
    """Evaluation items of one AMBER query file, and the checked annotation data that scores them."""
    data = AmberData(data_dir)
    path = Path(data_dir) / query_file
    queries = read_json(path, "AMBER queries, a JSON list of {id, image, query}")
    if not isinstance(queries, list):
        raise BenchmarkFileError(f"{path}: expected a JSON list of queries")
    items, seen = [], set()
    for k, q in enumerate(queries[:limit] if limit is not None else queries):
        where = f"{path}: entry {k}"
        require_fields(q, ("id", "image", "query"), where)
        qid = int(q["id"])
        if qid in seen:
            raise BenchmarkFileError(f"{where}: id {qid} repeats")
        seen.add(qid)
        if qid not in data.annotations:
            raise BenchmarkFileError(f"{where}: id {qid} has no entry in annotations.json")
        a = data.annotations[qid]
        item = {
            "item_id": f"amber:{qid}",
            "amber_id": qid,
            "scene_id": str(q["image"]),
            "image": str(q["image"]),
            "prompt": str(q["query"]),
        }
        if a["type"] == "generative":
            item["suite"] = "amber_generative"
        else:
            item.update(suite="amber_discriminative", label=a["truth"], dimension=DIMENSIONS[a["type"]])
        items.append(item)
    check_images(image_dir, [it["image"] for it in items], "AMBER")
    return items, data


def generative_stats(answer: str, annotation: dict, data: AmberData) -> dict[str, int]:
    """Per-response counts of the generative metrics (module docstring)."""
    truth, hallu = list(annotation["truth"]), list(annotation["hallu"])
    truth_sets, hallu_sets = [data.expand(w) for w in truth], [data.expand(w) for w in hallu]
    credited_t, credited_h = [False] * len(truth), [False] * len(hallu)
    nouns = data.nouns(answer)
    n_hal = 0
    for noun in nouns:
        if noun in data.safe_words:
            continue
        hit = next((i for i, s in enumerate(truth_sets) if noun in s), None)
        if hit is not None:
            credited_t[hit] = True
            continue
        n_hal += 1
        target = next((i for i, s in enumerate(hallu_sets) if noun in s), None)
        if target is not None:
            credited_h[target] = True
    return {
        "responses": 1,
        "nouns": len(nouns),
        "hallucinated": n_hal,
        "any_hallucinated": int(n_hal > 0),
        "truth": len(truth),
        "covered": sum(credited_t),
        "targets": len(hallu),
        "targets_hit": sum(credited_h),
    }


GENERATIVE_METRICS = {
    "chair": lambda s: ratio(s["hallucinated"], s["nouns"]),
    "cover": lambda s: ratio(s["covered"], s["truth"]),
    "hal": lambda s: ratio(s["any_hallucinated"], s["responses"]),
    "cog": lambda s: ratio(s["targets_hit"], s["targets"]),
}


def discriminative_stats(answer: str, truth: str, parse=pope_parse) -> dict[str, int]:
    """Counts of one yes/no answer with AMBER's positive class, "no"."""
    pred = parse(answer)
    return {
        "n": 1,
        "correct": int(pred == truth),
        "answered_no": int(pred == "no"),
        "truth_no": int(truth == "no"),
        "true_no": int(pred == "no" and truth == "no"),
    }


def _f1(s):
    p, r = ratio(s["true_no"], s["answered_no"]), ratio(s["true_no"], s["truth_no"])
    return ratio(2 * p * r, p + r)


DISCRIMINATIVE_METRICS = {
    "accuracy": lambda s: ratio(s["correct"], s["n"]),
    "precision": lambda s: ratio(s["true_no"], s["answered_no"]),
    "recall": lambda s: ratio(s["true_no"], s["truth_no"]),
    "f1": _f1,
}


def amber_plan(rows: Sequence[dict], data: AmberData | None) -> Plan:
    """The generative suite (needs ``data``), the discriminative one and one per dimension present
    (:mod:`study.bench.plan`); an item missing from ``annotations.json`` is an error naming it."""
    plan: Plan = {}
    gen = [i for i, r in enumerate(rows) if r["suite"] == "amber_generative"]
    if gen:
        if not isinstance(data, AmberData):
            raise ValueError("AMBER's generative suite needs AMBER's annotations (AmberData of its data/ folder)")
        for i in gen:
            if rows[i]["amber_id"] not in data.annotations:
                raise BenchmarkFileError(f"AMBER item {rows[i]['item_id']!r} has no entry in annotations.json")
        plan["amber_generative"] = (
            gen,
            lambda r: generative_stats(r["answer"], data.annotations[r["amber_id"]], data),
            GENERATIVE_METRICS,
        )
    disc = [i for i, r in enumerate(rows) if r["suite"] == "amber_discriminative"]
    disc_stats = lambda r: discriminative_stats(r["answer"], r["label"])  # noqa: E731
    if disc:
        plan["amber_discriminative"] = (disc, disc_stats, DISCRIMINATIVE_METRICS)
    for dim in dict.fromkeys(DIMENSIONS.values()):
        sel = [i for i in disc if rows[i]["dimension"] == dim]
        if sel:
            plan[f"amber_{dim}"] = (sel, disc_stats, DISCRIMINATIVE_METRICS)
    return plan


def score_amber(rows: Sequence[dict], data: AmberData, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """``{"amber_generative": {...}, "amber_discriminative": {...}, "amber_<dimension>": {...}}``."""
    return score_by_plan(rows, amber_plan(rows, data), n_boot=n_boot, seed=seed)
