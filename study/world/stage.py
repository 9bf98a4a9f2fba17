"""The ``world`` stage: build the world directory from validated params and write its metrics."""

from __future__ import annotations

from study import io
from study.config import WorldParams
from study.world.corpus import CorpusParams, build_world
from study.world.scenes import SceneParams
from study.world.spec import load_spec


def scene_params_of(p: WorldParams, **overrides) -> SceneParams:
    """The scene-sampling knobs of the ``world`` section (``overrides`` replace some)."""
    keys = SceneParams.__dataclass_fields__
    return SceneParams(**{**{k: getattr(p, k) for k in keys}, **overrides})


def corpus_params_of(p: WorldParams, **overrides) -> CorpusParams:
    """The SFT-corpus knobs of the ``world`` section (``overrides`` replace some)."""
    keys = CorpusParams.__dataclass_fields__
    return CorpusParams(**{**{k: getattr(p, k) for k in keys}, **overrides})


def run_world(world: dict, seed: int, out_dir: str, metrics_path: str) -> dict:
    p = WorldParams(**world)
    spec = load_spec(p.spec)
    stats = build_world(
        spec,
        out_dir,
        seed=seed,
        sizes={"train": p.n_train, "val": p.n_val, "test": p.n_test, "ood": p.n_ood},
        scene_params=scene_params_of(p),
        corpus_params=corpus_params_of(p),
        faint_alpha=p.faint_alpha,
        noise_std=p.noise_std,
    )
    stats["categories"] = len(spec.categories)
    stats["contexts"] = len(spec.contexts)
    io.write_json(metrics_path, stats)
    return stats
