"""The ``world`` stage: build the world directory from validated params and write its metrics."""

from __future__ import annotations

from study import io
from study.config import WorldParams
from study.world.corpus import CorpusParams, build_world
from study.world.scenes import SceneParams
from study.world.spec import load_spec


def run_world(world: dict, seed: int, out_dir: str, metrics_path: str) -> dict:
    p = WorldParams(**world)
    spec = load_spec(p.spec)
    stats = build_world(
        spec,
        out_dir,
        seed=seed,
        sizes={"train": p.n_train, "val": p.n_val, "test": p.n_test, "ood": p.n_ood},
        scene_params=SceneParams(
            p.max_objects, p.duplicate_prob, p.off_context_prob, p.typical_color_prob, p.faint_prob
        ),
        corpus_params=CorpusParams(
            qa_per_scene=p.qa_per_scene,
            exist_per_scene=p.exist_per_scene,
            caption_noise_rate=p.caption_noise_rate,
            synonym_prob=p.synonym_prob,
            relation_prob=p.relation_prob,
            position_first_prob=p.position_first_prob,
        ),
        faint_alpha=p.faint_alpha,
        noise_std=p.noise_std,
    )
    stats["categories"] = len(spec.categories)
    stats["contexts"] = len(spec.contexts)
    io.write_json(metrics_path, stats)
    return stats
