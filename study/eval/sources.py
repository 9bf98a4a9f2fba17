"""Where an organism's hallucinated objects come from: a misread object, an invented one, or an unplaced one.

Each asserted object mention that the scene does not hold (CHAIR's hallucinated mention,
:mod:`study.eval.chair`) is sorted by the position phrase of its sentence (the world's descriptions give
one per object sentence, :mod:`study.world.phrases`):

    misread     an object of another category sits at the named position (perception failed)
    invented    the named position is empty (nothing there to misread: the language side added it)
    unplaced    the sentence names no position (the closing list, relation sentences, or a position the
                grid lacks)

An ``unplaced`` mention is also marked ``echo`` when a placed sentence of the same answer names the same
absent category (a recap list repeating a misread or invented cell, rather than the prior adding an object
of its own). Each is crossed with whether its category belongs to the scene's context, so

    context_share = #(hallucinated mentions in context) / #(hallucinated mentions)

is the validity gate's number, split by where it comes from. For ``misread`` it also records whether the
object misread was faint, small or off its context, and the (true shape -> said shape) pairs, most frequent
first. A real MLLM's hallucinations are mostly co-occurring objects; this says which side of the organism
makes the others.
"""

from __future__ import annotations

from collections import Counter

from study.eval.mentions import parse_mentions, sentences
from study.world.phrases import position_spans
from study.world.scenes import Scene
from study.world.spec import WorldSpec


def sources(answer: str, scene: Scene, spec: WorldSpec) -> list[dict]:
    """One record per hallucinated mention of ``answer`` (module docstring)."""
    at = {o.position: o for o in scene.objects}
    sents = sentences(answer)
    spans_of = [position_spans(toks, spec) for toks in sents]
    mentions = parse_mentions(answer, spec)
    placed = {m.category for m in mentions if not m.negated and spans_of[m.sentence]}  # what an echo repeats
    out = []
    for m in mentions:
        if m.negated or m.category in scene.categories:
            continue
        toks, spans = sents[m.sentence], spans_of[m.sentence]
        rec = {"category": m.category, "in_context": spec.context_of(m.category) == scene.context}
        if not spans:
            rec.update(kind="unplaced", echo=m.category in placed)
        else:
            a, b = spans[0]
            obj = at.get(" ".join(toks[a:b]))
            if obj is None:
                rec["kind"] = "invented"
            else:
                rec.update(
                    kind="misread",
                    true_category=obj.category,
                    faint=obj.faint,
                    small=obj.size == "small",
                    true_off_context=spec.context_of(obj.category) != scene.context,
                )
        out.append(rec)
    return out


def summarize(records: list[dict], spec: WorldSpec, n_answers: int) -> dict:
    shape = {c: spec.categories[c].shape for c in spec.category_names}
    kinds = Counter(r["kind"] for r in records)
    cross = Counter((r["kind"], "in_context" if r["in_context"] else "off_context") for r in records)
    mis = [r for r in records if r["kind"] == "misread"]
    n = len(records)
    return {
        "answers": n_answers,
        "hallucinated": n,
        "context_share": sum(r["in_context"] for r in records) / n if n else None,
        "by_kind": {
            k: {"n": kinds[k], "share": kinds[k] / n if n else None} for k in ("misread", "invented", "unplaced")
        },
        "by_kind_and_context": {f"{k}/{c}": v for (k, c), v in sorted(cross.items())},
        "unplaced_echo": {
            c: sum(r["kind"] == "unplaced" and r["echo"] and r["in_context"] == (c == "in_context") for r in records)
            for c in ("in_context", "off_context")
        },
        "misread": {
            "n": len(mis),
            "of_faint": sum(r["faint"] for r in mis),
            "of_small": sum(r["small"] for r in mis),
            "of_off_context": sum(r["true_off_context"] for r in mis),
            "pairs": [
                {"true": f"{t} ({shape[t]})", "said": f"{s} ({shape[s]})", "n": k}
                for (t, s), k in Counter((r["true_category"], r["category"]) for r in mis).most_common(12)
            ],
        },
    }


def describe_sources(rows: list[dict], scenes: dict[str, Scene], spec: WorldSpec) -> dict:
    """:func:`summarize` of every hallucinated mention of the ``describe`` predictions ``rows``
    (``{"scene_id", "answer"}``), ``scenes`` by id."""
    records = [rec for r in rows for rec in sources(r["answer"], scenes[r["scene_id"]], spec)]
    return summarize(records, spec, len(rows))
