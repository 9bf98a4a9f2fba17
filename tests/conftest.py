import os
from pathlib import Path

import pytest

from study.config import load_section
from study.world.stage import corpus_params_of, scene_params_of

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _chdir_root():
    """Tests address project files (data/world_spec.yaml, params.yaml) relative to the repo root."""
    old = os.getcwd()
    os.chdir(ROOT)
    if not (ROOT / "data" / "world_spec.yaml").is_file():
        pytest.exit("data/world_spec.yaml is missing: run `dvc pull data.dvc` first (see README)", returncode=2)
    yield
    os.chdir(old)


def load_script(relpath: str):
    """A script of the project (``scripts/``, ``benchmarks/``) imported as a module, by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def script_module():
    """``script_module("benchmarks/gpu_check.py")`` -> the script imported as a module."""
    return load_script


@pytest.fixture(scope="session")
def spec():
    """The study's world spec (``data/world_spec.yaml``)."""
    from study.world.spec import load_spec

    return load_spec(ROOT / "data" / "world_spec.yaml")


@pytest.fixture(scope="session")
def make_world(tmp_path_factory, spec):
    """``make_world(name, train=, val=, test=, ood=)`` -> a built World of that many scenes per split (seed 0,
    default scene, corpus and rendering knobs) in a fresh temporary directory."""
    from study.world.corpus import World, build_world

    def make(name: str, *, train: int, val: int, test: int, ood: int):
        d = tmp_path_factory.mktemp(name) / "w"
        build_world(
            spec,
            d,
            seed=0,
            sizes={"train": train, "val": val, "test": test, "ood": ood},
            scene_params=scene_params_of(load_section("world")),
            corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
            faint_alpha=0.3,
            noise_std=6.0,
        )
        return World(d)

    return make


@pytest.fixture(scope="session")
def pretrain_world(make_world):
    """A tiny built world for the vision-tower pretraining tests: 96 train and 32 val scenes."""
    return make_world("pretrain_world", train=96, val=32, test=4, ood=4)


@pytest.fixture
def make_scene(spec):
    """``make_scene([(category, color, size, row, col), ...], context)`` -> Scene with relations."""
    from study.world.scenes import Scene, SceneObject, relations_of

    def make(objs, context="kitchen", scene_id="test-000000"):
        objects = [
            SceneObject(i, c, col, size, r, cc, spec.position_name(r, cc), False)
            for i, (c, col, size, r, cc) in enumerate(objs)
        ]
        return Scene(scene_id, "test", context, objects, relations_of(objects))

    return make


_PINPOINTS = [[32, 64], [64, 32], [64, 64]]


@pytest.fixture(scope="session")
def save_tiny_llava_next():
    """``save(dir, spec, text_layers=1, seed=0)``: a tiny random LLaVA-NeXT checkpoint (anyres tiling,
    image_newline; 32x32 base tiles, patch 8) with its processor, saved offline with safetensors."""
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    from study.model.processor import CHAT_TEMPLATE, build_tokenizer
    from study.world.language import vocabulary

    def save(d, spec, text_layers: int = 1, seed: int = 0) -> Path:
        tok = build_tokenizer(vocabulary(spec))
        ip = LlavaNextImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=_PINPOINTS
        )
        proc = LlavaNextProcessor(
            image_processor=ip,
            tokenizer=tok,
            patch_size=8,
            vision_feature_select_strategy="default",
            chat_template=CHAT_TEMPLATE,
            num_additional_image_tokens=1,
        )
        text = dict(
            model_type="llama",
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        vision = dict(
            model_type="clip_vision_model",
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            projection_dim=16,
        )
        cfg = LlavaNextConfig(
            text_config=text,
            vision_config=vision,
            image_token_index=tok.convert_tokens_to_ids("<image>"),
            image_grid_pinpoints=_PINPOINTS,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
        torch.manual_seed(seed)
        LlavaNextForConditionalGeneration(cfg).save_pretrained(d)
        proc.save_pretrained(d)
        return Path(d)

    return save
