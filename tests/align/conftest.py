"""Fixtures of the alignment tests: a tiny random LLaVA (64 image tokens), a tiny built world,
hand-made preference rows and stand-ins for the parallel packages' annotators and sentence encoder."""

import numpy as np
import pytest
import torch

from study.config import load_section
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.stage import model_params_of
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def processor(spec):
    return build_processor(vocabulary(spec), 48, 6)


@pytest.fixture(scope="session")
def make_model(processor):
    """``make_model()`` -> a fresh tiny random LLaVA (same weights every call, seed 0)."""
    return lambda: build_model(processor, 48, TINY, seed=0)


@pytest.fixture(scope="session")
def world(make_world):
    return make_world("world", train=16, val=4, test=4, ood=4)


def _swap_object(text: str, spec) -> str:
    """The same description with its first object word replaced by another category's name."""
    words = text.split()
    names = sorted(spec.category_names)
    lexicon = spec.word_to_category()
    for i, wd in enumerate(words):
        if wd in lexicon:
            words[i] = next(n for n in names if n != lexicon[wd] and n not in words)
            return " ".join(words)
    return text + " there is a " + names[0] + " ."


@pytest.fixture(scope="session")
def rows(world, spec):
    """Hand-made preference rows (schema of study.prefs): chosen = the ground-truth description,
    rejected = the same with one object word swapped, rejected_2 = a generic wrong answer."""
    out = []
    for r in world.corpus("train"):
        if r["kind"] != "describe":
            continue
        chosen = r["messages"][1]["content"][0]["text"]
        out.append(
            {
                "prompt": r["messages"][0]["content"][1]["text"],
                "chosen": chosen,
                "rejected": _swap_object(chosen, spec),
                "rejected_2": "the image shows a red cup .",
                "scene_id": r["scene_id"],
                "recipe": "handmade",
                "seed": 0,
                "source_ids": "{}",
            }
        )
    return out


class GoodWordsAnnotator:
    """Deterministic stand-in judge: score = share of an answer's words in a fixed half of the vocabulary."""

    def __init__(self, processor):
        vocab = sorted(processor.tokenizer.get_vocab())
        self.good = set(vocab[::2])

    def score(self, scene, prompt, answer):
        t = answer.split()
        return sum(w in self.good for w in t) / max(len(t), 1)

    def prefer(self, scene, prompt, a, b):
        return 0 if self.score(scene, prompt, a) >= self.score(scene, prompt, b) else 1


@pytest.fixture(scope="session")
def good_words(processor):
    return GoodWordsAnnotator(processor)


class BowEncoder:
    """Stand-in sentence encoder (interface of study.bdhs.similarity): hashed bag of words, unit norm."""

    def embed(self, texts):
        v = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                v[i, sum(map(ord, w)) % 64] += 1
        n = np.linalg.norm(v, axis=1, keepdims=True)
        n[n == 0] = 1
        return v / n

    def similarity(self, rejected, chosen):
        a = self.embed(list(rejected))
        b = chosen if isinstance(chosen, np.ndarray) else self.embed(list(chosen))
        return (a * b).sum(-1)


@pytest.fixture(scope="session")
def encoder():
    return BowEncoder()


FAST = dict(  # small, fast settings for the tiny model (high LR so a few steps move it)
    lora=False,
    learning_rate=1e-2,
    projector_lr=1e-2,
    epochs=2,
    batch_size=4,
    logging_steps=1,
    warmup_ratio=0.0,
    lr_scheduler="constant",
    max_new_tokens=8,
    round_size=8,
    gen_batch_size=64,
    reward_norm_prompts=4,
    ppo_minibatch=4,
    save_steps=1000,
    lora_r=8,
    lora_alpha=16,
)


def fast_params(method: str, **kw):
    """``method``'s config from params.yaml with the :data:`FAST` knobs it reads, then ``kw``."""
    from study.align import methods
    from study.config import align_params

    reads = methods.get(method).reads
    return align_params(method, **{**{k: v for k, v in FAST.items() if k in reads}, **kw})


@pytest.fixture(scope="session")
def fast():
    """``fast(method, **overrides)`` -> ``method``'s config for quick runs on the tiny model."""
    return fast_params
