"""The ``sft`` stage: build (or load) the base model, train it with TRL's SFTTrainer, save it."""
from __future__ import annotations

from study import io
from study.config import ModelSection, SFTSection
from study.model.build import ModelParams, build_model, n_parameters
from study.model.load import load_model
from study.model.processor import build_processor
from study.model.sft import SFTParams, train_sft
from study.world.corpus import World
from study.world.language import vocabulary
from study.world.spec import load_spec


def base_model(model: ModelSection, spec, seed: int):
    """The starting point: a local LLaVA checkpoint if ``model.base_path`` is set, else a fresh organism."""
    if model.base_path:
        return load_model(model.base_path)
    fields = ModelParams.__dataclass_fields__
    mp = ModelParams(**{k: v for k, v in model.model_dump().items() if k in fields})
    processor = build_processor(vocabulary(spec), spec.image_size, mp.patch_size)
    return build_model(processor, spec.image_size, mp, seed), processor


def run_sft(model: dict, sft: dict, seed: int, world_spec: str, world_dir: str, out_dir: str, live_dir: str,
            metrics_path: str, pool_dir: str | None = None) -> dict:
    mp, sp = ModelSection(**model), SFTSection(**sft)
    spec = load_spec(world_spec)
    net, processor = base_model(mp, spec, seed)
    net.train()
    sft_params = SFTParams(**{**sp.model_dump(), "pool_fractions": tuple(sp.pool_fractions)})
    metrics = train_sft(net, processor, World(world_dir), sft_params, out_dir, live_dir, seed, pool_dir=pool_dir)
    metrics["parameters"] = n_parameters(net)
    io.write_json(metrics_path, metrics)
    return metrics
