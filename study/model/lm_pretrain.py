"""Pretrain the organism's language model on text before it sees an image, as LLaVA's LLM was.

A real LLaVA starts from a pretrained LLM (Vicuna): before any image, it already has a language prior over
scenes (what a kitchen usually holds: the prior that makes it hallucinate) and in-context reading (answer a
question about a passage by finding what the passage says). Instruction tuning then only has to make image
tokens readable by those circuits. The organism's LM is built from scratch, so without this stage SFT must
invent reading and grounding at once, and whether the yes/no-from-the-image circuit appears at all depends
on the seed. This stage gives the LM what Vicuna brings, on the world's own language and text only.

Corpus (:func:`text_rows`, drawn with the knobs the world's SFT corpus was written with): for each train scene, its *passage* is a clean description of the scene
(:func:`study.world.language.describe` without caption noise: every object, no absent one), written where
the image goes in the chat template (``USER: <passage> <question> ASSISTANT: <answer>``):

* read-and-describe: the question is a description prompt, the answer another draw of the scene's
  description, with the SFT corpus's caption noise (``caption_noise_rate``);
* read-and-answer: ``qa_per_scene`` short questions and ``exist_per_scene`` balanced existence questions,
  drawn as the SFT corpus draws them (:func:`study.world.corpus.qa_item`, :func:`~study.world.corpus.existence_item`);
* the language prior: a description prompt answered with a (noisy) description of the scene: what a model
  says when it cannot see. Its passage is ``prior_passage``'s: ``none``, no passage at all (the prior over
  every scene), or ``context``, only the scene's context sentence (``this is a kitchen scene .``; a
  background and no object, as under BDHS's masking): ``p(description | context)``, the co-occurrence
  prior a real LLM brings (what a kitchen usually holds), which fills in objects the passage does not name.

Objective: completion-only next-token cross-entropy, ``L = -1/|y| sum_t log p(y_t | x, y_<t)``, with TRL's
``SFTTrainer`` on text (the tokenizer as processing class). No image goes in, so only the language model and
its head receive gradients. Validation (:func:`reading_accuracy`): on ``val`` scenes' passages, balanced
existence questions answered by the sign of ``log P(yes) - log P(no)`` at the first answer token (accuracy
and AUROC): whether in-context reading formed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from trl import SFTTrainer

from study.world import language
from study.world.corpus import CorpusParams, World, existence_item, qa_item
from study.world.scenes import SPLITS, Scene
from study.world.spec import WorldSpec


@dataclass(frozen=True)
class LMPretrainParams:
    epochs: float
    learning_rate: float
    batch_size: int
    weight_decay: float
    warmup_ratio: float
    lr_scheduler: str
    prior_passage: str


PRIOR_PASSAGES = ("none", "context")


def passage(spec: WorldSpec, scene: Scene, rng: np.random.Generator, p: CorpusParams) -> str:
    """A clean description of ``scene`` (every object, no absent one): the text stand-in for its image."""
    return language.describe(
        spec,
        scene,
        rng,
        synonym_prob=p.synonym_prob,
        noise_rate=0.0,
        relation_prob=p.relation_prob,
        position_first_prob=p.position_first_prob,
        summary_prob=p.summary_prob,
        summary_place=p.summary_place,
        list_off_context=p.list_off_context,
    )[0]


def text_rows(
    spec: WorldSpec, scenes: list[Scene], p: CorpusParams, seed: int, prior_passage: str = "none"
) -> list[dict]:
    """The text corpus (module docstring), drawn with the SFT corpus's knobs ``p``:
    ``{"scene_id", "kind", "prompt", "answer"}`` rows, in scene order. ``prior_passage`` only adds the
    context sentence to the prior rows' prompts (its own random stream: every other row is unchanged)."""
    if prior_passage not in PRIOR_PASSAGES:
        raise ValueError(f"lm.prior_passage must be one of {PRIOR_PASSAGES}, got {prior_passage!r}")
    rows = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, 611953, SPLITS.index(scene.split), i])
        text = passage(spec, scene, rng, p)

        def describe() -> str:
            return language.describe(
                spec,
                scene,
                rng,
                synonym_prob=p.synonym_prob,
                noise_rate=p.caption_noise_rate,
                relation_prob=p.relation_prob,
                position_first_prob=p.position_first_prob,
                summary_prob=p.summary_prob,
                summary_place=p.summary_place,
                list_off_context=p.list_off_context,
            )[0]

        ask = language.DESCRIBE_PROMPTS[int(rng.integers(len(language.DESCRIBE_PROMPTS)))]
        rows.append(
            {"scene_id": scene.scene_id, "kind": "read_describe", "prompt": f"{text} {ask}", "answer": describe()}
        )
        for _ in range(p.qa_per_scene):
            kind, q, a = qa_item(spec, scene, rng, cooccur_prob=p.exist_cooccur_prob)
            rows.append({"scene_id": scene.scene_id, "kind": f"read_{kind}", "prompt": f"{text} {q}", "answer": a})
        for _ in range(p.exist_per_scene):
            q, a = existence_item(spec, scene, rng, cooccur_prob=p.exist_cooccur_prob)
            rows.append({"scene_id": scene.scene_id, "kind": "read_exist", "prompt": f"{text} {q}", "answer": a})
        ask = language.DESCRIBE_PROMPTS[int(rng.integers(len(language.DESCRIBE_PROMPTS)))]
        if prior_passage == "context":
            intro_rng = np.random.default_rng([seed, 611961, SPLITS.index(scene.split), i])
            intro = language.INTRO_TEMPLATES[int(intro_rng.integers(len(language.INTRO_TEMPLATES)))]
            ask = f"{intro.format(ctx=scene.context)} {ask}"
        rows.append({"scene_id": scene.scene_id, "kind": "prior_describe", "prompt": ask, "answer": describe()})
    return rows


def text_dataset(rows: list[dict]) -> Dataset:
    """Rows as TRL conversational prompt-completion examples (string contents: no image part)."""
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": r["prompt"]}] for r in rows],
            "completion": [[{"role": "assistant", "content": r["answer"]}] for r in rows],
        }
    )


@torch.no_grad()
def reading_accuracy(
    model, tokenizer, spec: WorldSpec, scenes: list[Scene], p: CorpusParams, seed: int, batch_size: int = 64
) -> dict:
    """Balanced existence questions about each scene's passage: accuracy of the sign of the first answer
    token's ``log P(yes) - log P(no)``, and its AUROC."""
    from study.eval.grounding import auroc

    prompts, labels = [], []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, 611957, i])
        q, a = existence_item(spec, scene, rng, cooccur_prob=p.exist_cooccur_prob)
        text = passage(spec, scene, rng, p)
        prompts.append(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{text} {q}"}], tokenize=False, add_generation_prompt=True
            )
        )
        labels.append(a.startswith("yes"))
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    was_training = model.training
    model.eval()
    margins = []
    for s in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[s : s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        logp = model(**enc).logits[:, -1].float().log_softmax(-1)  # left padding: the last position is the prompt's end
        margins += (logp[:, yes] - logp[:, no]).tolist()
    model.train(was_training)
    m, y = np.array(margins), np.array(labels, dtype=float)
    return {
        "reading_accuracy": float(np.mean((m > 0) == (y > 0))),
        "reading_auroc": float(auroc(m, y)),
        "reading_items": len(y),
    }


def pretrain_language(
    model,
    processor,
    world: World,
    spec: WorldSpec,
    p: LMPretrainParams,
    seed: int,
    work_dir: str | Path,
    n_val: int = 200,
) -> dict:
    """Train ``model``'s language model in place on the text corpus; returns metrics (loss, reading accuracy)."""
    from study.model.sft import SFTParams, run_metrics, sft_config

    tokenizer, corpus = processor.tokenizer, world.corpus_params()
    rows = text_rows(spec, world.scenes("train"), corpus, seed, p.prior_passage)
    val_scenes = world.scenes("val")[:n_val]
    before = reading_accuracy(model, tokenizer, spec, val_scenes, corpus, seed)
    sp = SFTParams(  # the SFT schedule of this stage's own knobs; the last three are SFT-only, not read here
        epochs=p.epochs,
        learning_rate=p.learning_rate,
        batch_size=p.batch_size,
        weight_decay=p.weight_decay,
        warmup_ratio=p.warmup_ratio,
        lr_scheduler=p.lr_scheduler,
        val_rows=0,
        pool_fractions=(),
        freeze_vision=False,
    )
    args = sft_config(sp, work_dir, seed, len(rows), eval_strategy="no", dataset_kwargs={})
    trainer = SFTTrainer(model=model, args=args, train_dataset=text_dataset(rows), processing_class=tokenizer)
    result = trainer.train()
    after = reading_accuracy(model, tokenizer, spec, val_scenes, corpus, seed)
    if Path(work_dir).exists():
        shutil.rmtree(work_dir)
    return {
        "train_rows": len(rows),
        **run_metrics(result),
        **{f"{k}_before": v for k, v in before.items() if k != "reading_items"},
        **after,
    }
