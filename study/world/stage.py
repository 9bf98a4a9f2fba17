"""The ``world`` stage: build the world directory from validated params and write its metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from study import io
from study.config import WorldParams
from study.world.corpus import CorpusParams, build_world
from study.world.scenes import SceneParams
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def scene_params_of(p: WorldParams, **overrides) -> SceneParams:
    """The scene-sampling knobs of the ``world`` section (``overrides`` replace some)."""
    keys = SceneParams.__dataclass_fields__
    return SceneParams(**{**{k: getattr(p, k) for k in keys}, **overrides})


def corpus_params_of(p: WorldParams, **overrides) -> CorpusParams:
    """The SFT-corpus knobs of the ``world`` section (``overrides`` replace some)."""
    keys = CorpusParams.__dataclass_fields__
    return CorpusParams(**{**{k: getattr(p, k) for k in keys}, **overrides})


def run_world(ctx: StageContext) -> dict:
    """Build the world under ``paths.out_dir`` from the ``world`` section and the study seed; write its metrics."""
    p, seed, out_dir, metrics_path = ctx.params.world, ctx.params.seed, ctx.paths.out_dir, ctx.paths.metrics_path
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
