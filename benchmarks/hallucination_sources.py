"""Where an organism's hallucinated objects come from: a misread object or an invented one, in context or not.

Each asserted object mention that the scene does not hold (CHAIR's hallucinated mention,
:mod:`study.eval.chair`) is sorted by the position phrase of its sentence (the world's descriptions give
one per object sentence, :mod:`study.world.phrases`):

    misread     an object of another category sits at the named position (perception failed)
    invented    the named position is empty (nothing there to misread: the language side added it)
    unplaced    the sentence names no position (relation sentences, or a position the grid lacks)

An ``unplaced`` mention is also marked ``echo`` when a placed sentence of the same answer names the same
absent category (a recap list repeating a misread or invented cell, rather than the prior adding an object
of its own). And, crossed with that, by whether its category belongs to the scene's context (``context_share``'s
numerator). For ``misread`` it also records whether the object misread was faint and whether it was
off its context and whether it was small, and the (true shape -> said shape) pairs, most frequent first. A real MLLM's
hallucinations are mostly co-occurring objects; this says which of the two sides of the organism makes
the others.

    python benchmarks/hallucination_sources.py --world artifacts/world \
        --predictions artifacts/eval/organism/val/describe.jsonl
    python benchmarks/hallucination_sources.py --world W --model artifacts/leads/models/NAME --split val

With ``--model`` the greedy descriptions are generated first (the grounding report's settings: the
``describe`` suite of the first ``--n-scenes`` scenes, ``eval.batch_size``, seed ``params.seed``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.eval.mentions import parse_mentions, sentences  # noqa: E402
from study.world.corpus import World  # noqa: E402
from study.world.phrases import position_spans  # noqa: E402
from study.world.scenes import Scene  # noqa: E402
from study.world.spec import WorldSpec  # noqa: E402


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


def _generate(model_dir: Path, world: World, spec: WorldSpec, split: str, n_scenes: int, threads: int) -> list[dict]:
    import torch

    from study.config import load_params
    from study.eval.organism import predict_items
    from study.eval.suites import build_items
    from study.model.load import load_model

    torch.set_num_threads(threads)
    p = load_params(ROOT / "params.yaml")
    model, processor = load_model(model_dir)
    model.eval()
    scenes = world.scenes(split)[:n_scenes]
    items = build_items(spec, scenes, world.scenes("train"), n_pos=p.eval.n_pos, seed=p.seed, suites=("describe",))
    return predict_items(
        model, processor, world, items, max_new_tokens=p.eval.max_new_tokens, batch_size=p.eval.batch_size, seed=p.seed
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", required=True, help="a built world folder (spec.json, scenes/, images/)")
    ap.add_argument("--predictions", help="describe predictions (jsonl with scene_id, answer)")
    ap.add_argument("--model", help="a saved organism: generate the greedy descriptions first")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n-scenes", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the summary here as JSON")
    args = ap.parse_args()
    if bool(args.predictions) == bool(args.model):
        ap.error("give exactly one of --predictions and --model")
    world = World(args.world)
    spec = world.spec()
    if args.model:
        rows = _generate(Path(args.model), world, spec, args.split, args.n_scenes, args.threads)
    else:
        rows = [json.loads(line) for line in open(args.predictions) if line.strip()]
    scenes = {s.scene_id: s for split in {r["scene_id"].split("-")[0] for r in rows} for s in world.scenes(split)}
    records = [rec for r in rows for rec in sources(r["answer"], scenes[r["scene_id"]], spec)]
    out = summarize(records, spec, len(rows))
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        from study.io import write_json

        write_json(args.out, out)


if __name__ == "__main__":
    main()
