"""Where an organism's hallucinated objects come from (:mod:`study.eval.sources`), for any saved predictions
or model; the ``organism`` stage reports the same for each SFT seed in ``metrics/organism.json: sources``.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.eval.sources import describe_sources  # noqa: E402
from study.world.corpus import World  # noqa: E402
from study.world.spec import WorldSpec  # noqa: E402


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
    out = describe_sources(rows, scenes, spec)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        from study.io import write_json

        write_json(args.out, out)


if __name__ == "__main__":
    main()
