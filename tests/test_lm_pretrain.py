"""Text-only language-model pretraining and projector alignment (tiny world, tiny organism)."""

import json

import pytest
import torch

from study.config import load_section
from study.model.build import build_model
from study.model.lm_pretrain import LMPretrainParams, pretrain_language, reading_accuracy, text_rows
from study.model.processor import build_processor
from study.model.projector_align import ProjectorAlignParams, align_projector
from study.model.stage import model_params_of
from study.world.language import split_sentences, vocabulary
from study.world.stage import corpus_params_of

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)
SCHEDULE = {"weight_decay": 0.0, "warmup_ratio": 0.05, "lr_scheduler": "cosine"}
LP = LMPretrainParams(epochs=2, learning_rate=3e-3, batch_size=16, prior_passage="none", **SCHEDULE)
CP = corpus_params_of(
    load_section("world"),
    qa_per_scene=1,
    exist_per_scene=1,
    caption_noise_rate=0.2,
    synonym_prob=0.0,
    relation_prob=0.0,
)


@pytest.fixture(scope="module")
def world(pretrain_world):
    return pretrain_world


def _tiny(spec):
    proc = build_processor(vocabulary(spec), 48, 6)
    return build_model(proc, 48, TINY, seed=0), proc


def test_text_rows_put_the_clean_passage_where_the_image_goes(world, spec):
    scenes = world.scenes("train")[:20]
    rows = text_rows(spec, scenes, CP, seed=0)
    assert len(rows) == 20 * (1 + CP.qa_per_scene + CP.exist_per_scene + 1)
    for r in rows:
        scene = scenes[int(r["scene_id"].rsplit("-", 1)[1])]
        if r["kind"] == "prior_describe":  # the language prior: no passage at all
            assert not any(c in r["prompt"].split() for c in spec.category_names)
            continue
        # every object of the scene is named in its passage (synonym_prob = 0) and no absent category is
        passage = " ".join(split_sentences(r["prompt"])[:-1])  # the last sentence is the question
        named = set(passage.split()) & set(spec.category_names)
        assert named == set(scene.categories), r
    assert text_rows(spec, scenes, CP, seed=0) == rows  # same seed, same corpus
    assert text_rows(spec, scenes, CP, seed=1) != rows


def test_context_prior_passage_names_only_the_context_and_leaves_every_other_row(world, spec):
    scenes = world.scenes("train")[:20]
    bare = text_rows(spec, scenes, CP, seed=0)
    ctx = text_rows(spec, scenes, CP, seed=0, prior_passage="context")
    assert len(ctx) == len(bare)
    changed = [(a, b) for a, b in zip(bare, ctx, strict=True) if a != b]
    assert changed and all(b["kind"] == "prior_describe" for _, b in changed)
    assert len(changed) == len(scenes)  # every prior row, nothing else
    for a, b in changed:
        scene = scenes[int(b["scene_id"].rsplit("-", 1)[1])]
        assert b["answer"] == a["answer"]  # the same description: only the passage is new
        assert b["prompt"].endswith(a["prompt"]) and f"{scene.context} scene ." in b["prompt"]
        assert not any(c in b["prompt"].split() for c in spec.category_names)  # a background, no object
    with pytest.raises(ValueError, match="lm.prior_passage"):
        text_rows(spec, scenes, CP, seed=0, prior_passage="objects")


class _Reader(torch.nn.Module):
    """A hand-made reader: its yes-no margin is +1 when the question's object (the last category token of
    the prompt) also occurs earlier, in the passage, else -1; ``blind`` always says "yes"."""

    def __init__(self, tokenizer, spec, blind=False):
        super().__init__()
        self.cats = {tokenizer.convert_tokens_to_ids(c) for c in spec.category_names}
        self.yes, self.no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
        self.vocab, self.blind = len(tokenizer), blind

    def forward(self, input_ids, attention_mask=None, **kw):
        from types import SimpleNamespace

        logits = torch.zeros(*input_ids.shape, self.vocab)
        for i, ids in enumerate(input_ids.tolist()):
            obj = [t for t in ids if t in self.cats][-1]
            m = 1.0 if self.blind or ids.count(obj) > 1 else -1.0
            logits[i, -1, self.yes], logits[i, -1, self.no] = m, -m
        return SimpleNamespace(logits=logits)


def test_reading_accuracy_is_the_sign_of_the_yes_no_margin(world, spec):
    proc = build_processor(vocabulary(spec), 48, 6)
    scenes = world.scenes("val")[:32]
    exact = reading_accuracy(_Reader(proc.tokenizer, spec), proc.tokenizer, spec, scenes, CP, seed=0)
    assert exact["reading_items"] == 32 and exact["reading_accuracy"] == 1.0 and exact["reading_auroc"] == 1.0
    blind = reading_accuracy(_Reader(proc.tokenizer, spec, blind=True), proc.tokenizer, spec, scenes, CP, seed=0)
    assert blind["reading_auroc"] == 0.5 and 0.2 < blind["reading_accuracy"] < 0.8  # = the share of "yes" items


def test_language_pretraining_moves_only_the_language_model_and_lowers_the_loss(world, spec, tmp_path):
    torch.set_num_threads(1)
    model, proc = _tiny(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = pretrain_language(model, proc, world, spec, LP, seed=0, work_dir=tmp_path / "work", n_val=16)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("model.language_model.", "lm_head.")) for k in moved)
    c = world.corpus_params()  # the world's own corpus knobs
    assert (
        m["train_rows"] == 96 * (2 + c.qa_per_scene + c.exist_per_scene) and m["train_loss"] < 4.5
    )  # ~ln(vocab) at init
    assert not (tmp_path / "work").exists()
    json.dumps(m)


def test_projector_alignment_moves_only_the_projector(world, spec, tmp_path):
    torch.set_num_threads(1)
    model, proc = _tiny(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = align_projector(
        model,
        proc,
        world,
        ProjectorAlignParams(epochs=1, learning_rate=3e-3, batch_size=16, **SCHEDULE),
        seed=0,
        work_dir=tmp_path / "work",
    )
    moved = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith("model.multi_modal_projector.") for k in moved)
    assert m["trainable_params"] == sum(q.numel() for q in model.model.multi_modal_projector.parameters())
    assert all(q.requires_grad for q in model.parameters())  # SFT decides what it freezes
    assert m["train_rows"] == 96


def test_same_seed_same_language_model(world, spec, tmp_path):
    torch.set_num_threads(1)
    p = LMPretrainParams(**{**LP.__dict__, "epochs": 0.5})
    (a, proc), (b, _) = _tiny(spec), _tiny(spec)
    ma = pretrain_language(a, proc, world, spec, p, seed=3, work_dir=tmp_path / "a", n_val=8)
    mb = pretrain_language(b, proc, world, spec, p, seed=3, work_dir=tmp_path / "b", n_val=8)
    assert ma["train_loss"] == mb["train_loss"]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
