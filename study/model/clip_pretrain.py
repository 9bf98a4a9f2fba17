"""Pretrain the organism's vision tower contrastively against scene descriptions, as LLaVA's CLIP tower was.

LLaVA does not train its vision encoder from scratch: it takes the image tower of a CLIP model, which was
trained to match images with their captions. This stage is that recipe at the organism's scale. A real
``transformers.CLIPModel`` is built whose vision side *is* the LLaVA's vision tower (same
``CLIPVisionConfig``: hidden size, layers, heads, patch and image size; weights copied in, so the seed's
initialisation is used) and whose text side is a tiny ``CLIPTextModel`` over the world's word-level
tokenizer (hidden = vision hidden, 2 layers, heads = vision heads, intermediate = 2 hidden). Each train image
is paired with a clean ground-truth description of its scene (:func:`study.world.language.describe` with
``noise_rate=0``: no absent object is mentioned), written ``<s> text </s>`` and right-padded.

Objective (CLIP's symmetric InfoNCE). For a batch of N pairs, ``u_i`` is the image embedding (the tower's
post-layernormed CLS state, linearly projected) and ``v_j`` the text embedding (the text transformer's final
state at the ``</s>`` token, linearly projected), both L2-normalised. With the learnable logit scale
``s = exp(t) = 1 / temperature`` (``t`` initialised to ``log(1 / 0.07)``, as in CLIP)

    S_{ij} = s * u_i . v_j,
    L = 1/2 [ -1/N sum_i log softmax_j(S_{ij})[j=i]  -  1/N sum_j log softmax_i(S_{ij})[i=j] ],

i.e. cross-entropy of each image against the N texts of the batch (image -> text) and of each text against
the N images (text -> image), averaged. This is ``CLIPModel(..., return_loss=True).loss``. As in OpenAI's
CLIP training, ``t`` is clipped to ``[0, log 100]`` after every step (the Hugging Face model does not clip
it) and weight decay applies only to matrices (not to biases, LayerNorm gains, the CLS embedding or ``t``;
decaying ``t`` would pull the temperature to 1).

Why it is the faithful analog: the encoder is the same architecture LLaVA uses (``CLIPVisionModel``), trained
by the same loss, from image-text pairs only (no labels, no boxes), and only the image tower survives: after
training its weights are copied back into ``model.model.vision_tower``; the text tower, both projection heads
and the logit scale are discarded. Nothing else of the LLaVA changes. Note that LLaVA reads *patch* states
(``vision_feature_layer``) whereas the loss supervises only the CLS state: the patch states are shaped
indirectly, through the weights they share with the CLS path, exactly as in the real CLIP.

Validation (``val`` split, the first ``n_val`` scenes, their descriptions drawn like epoch 0's):

* ``val_retrieval_top1``: image -> text top-1 accuracy. Scenes are cut into consecutive chunks of
  ``c = min(64, n_val)`` (the remainder of ``n_val / c`` scenes is left out, so every chunk has chance level
  ``1 / c``); inside a chunk, each image ranks the chunk's ``c`` texts and is right when the top text is its
  own description (or an identical string). Reported: the mean accuracy over chunks.
* ``val_presence_auroc``: a per-category logistic probe (:func:`study.eval.grounding.presence_probe`) on the
  trained tower's patch states at the LLaVA's ``vision_feature_layer`` (CLS dropped), mean- and max-pooled
  over patches, fitted on the first <= 1000 train scenes and scored by AUROC on the val scenes; mean over
  categories (per category in ``val_presence_auroc_per_category``). Comparable with the presence objective
  of :mod:`study.model.vision_pretrain`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from transformers import CLIPConfig, CLIPModel

from study.model.vision_pretrain import (
    PROBE_TRAIN,
    VisionPretrainParams,
    _pixels,
    pooled_patch_features,
    presence_labels,
)
from study.world import language
from study.world.corpus import World
from study.world.scenes import SPLITS, Scene
from study.world.spec import WorldSpec

TEXT_LAYERS = 2
RETRIEVAL_CHUNK = 64
SYNONYM_PROB = 0.2  # describe()'s defaults: synonyms and relations are still true statements
RELATION_PROB = 0.5
LOGIT_SCALE_MAX = math.log(100.0)
_STREAM = 7919  # separates the caption rng streams from the corpus' ones


def caption(spec: WorldSpec, scene: Scene, split: str, index: int, seed: int, epoch: int = 0) -> str:
    """A clean (``noise_rate=0``) description of ``scene``, deterministic in (seed, split, epoch, index)."""
    rng = np.random.default_rng([seed, _STREAM, SPLITS.index(split), epoch, index])
    text, inserted = language.describe(
        spec, scene, rng, synonym_prob=SYNONYM_PROB, noise_rate=0.0, relation_prob=RELATION_PROB
    )
    assert inserted is None
    return text


def max_caption_words(spec: WorldSpec, scenes) -> int:
    """An upper bound on the words of any :func:`caption` of ``scenes`` (every template, synonym and position)."""
    n = lambda s: len(s.split())  # noqa: E731
    free = lambda t: n(t) - t.count("{")  # noqa: E731  (each placeholder is one whitespace token)
    names = max(n(w) for c in spec.categories.values() for w in c.names)
    cat = max(n(c) for c in spec.category_names)
    pos = max(n(spec.position_name(r, c)) for r in range(spec.grid) for c in range(spec.grid))
    obj = (
        max(free(t) for t in language.OBJECT_TEMPLATES)
        + max(map(n, spec.sizes))
        + max(map(n, spec.colors))
        + names
        + pos
    )
    intro = max(free(t) for t in language.INTRO_TEMPLATES) + max(map(n, spec.contexts))
    rels = [n(r["relation"]) for s in scenes for r in s.relations]
    rel = free(language.RELATION_TEMPLATE) + 2 * cat + max(rels, default=0)
    return intro + max((len(s.objects) for s in scenes), default=0) * obj + rel


def clip_config(vision_config, tokenizer, max_positions: int) -> CLIPConfig:
    """A ``CLIPConfig`` whose vision side is ``vision_config`` and whose text side is sized like it."""
    v = vision_config.to_dict()
    for k in ("transformers_version", "architectures", "_name_or_path", "id2label", "label2id", "dtype"):
        v.pop(k, None)
    h = v["hidden_size"]
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=h,
        intermediate_size=2 * h,
        projection_dim=h,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=v["num_attention_heads"],
        max_position_embeddings=max_positions,
        hidden_act=v.get("hidden_act", "quick_gelu"),
        layer_norm_eps=v.get("layer_norm_eps", 1e-5),
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if tokenizer.eos_token_id == 2:
        # CLIPTextModel treats eos_token_id == 2 as a legacy config and pools at argmax(input_ids) instead
        raise ValueError(
            "CLIPTextModel pools at the highest token id when eos_token_id == 2; "
            "the world tokenizer's </s> must have another id"
        )
    return CLIPConfig(text_config=text, vision_config=v, projection_dim=h)


def encode_texts(tokenizer, texts: list[str], max_positions: int) -> dict[str, torch.Tensor]:
    """``<s> text </s>``, right-padded: CLIP's text model pools at the first ``</s>``."""
    enc = tokenizer(
        [f"{tokenizer.bos_token} {t} {tokenizer.eos_token}" for t in texts],
        padding=True,
        padding_side="right",
        add_special_tokens=False,
        return_tensors="pt",
    )
    if enc["input_ids"].shape[1] > max_positions:
        raise ValueError(f"a caption has {enc['input_ids'].shape[1]} tokens > max_position_embeddings {max_positions}")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _core(module):
    """A ``CLIPVisionModel``'s transformer: itself in transformers 5, ``.vision_model`` in 4.x."""
    return getattr(module, "vision_model", module)


@torch.no_grad()
def retrieval_top1(clip: CLIPModel, pixels: torch.Tensor, enc: dict, texts: list[str], chunk: int) -> float:
    """Mean over consecutive full chunks of image -> text top-1 accuracy (identical strings count as right)."""
    accs = []
    for start in range(0, len(texts) - chunk + 1, chunk):
        sl = slice(start, start + chunk)
        out = clip(input_ids=enc["input_ids"][sl], attention_mask=enc["attention_mask"][sl], pixel_values=pixels[sl])
        top = out.logits_per_image.argmax(dim=1).tolist()
        accs.append(np.mean([texts[start + j] == texts[start + i] for i, j in enumerate(top)]))
    return float(np.mean(accs))


def pretrain_clip(
    model,
    processor,
    world: World,
    spec: WorldSpec,
    p: VisionPretrainParams,
    seed: int,
    n_val: int = 200,
    *,
    fresh_captions: bool = True,
) -> dict:
    """Train ``model``'s vision tower in place as the image side of a CLIP model; returns metrics.

    Scenes of the train split are shuffled with ``seed`` every epoch and cut into batches of
    ``p.batch_size``; the last partial batch of an epoch is dropped (as in CLIP training: a batch of one has
    no negatives), unless the split is smaller than one batch. With ``fresh_captions`` every epoch draws a
    new description per scene (deterministic in (seed, epoch, index)); otherwise epoch 0's are reused."""
    from study.eval.grounding import presence_probe

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = base.model.vision_tower
    layer = base.config.vision_feature_layer if isinstance(base.config.vision_feature_layer, int) else -1
    tok = processor.tokenizer
    train, val = world.scenes("train"), world.scenes("val")
    n, n_val = len(train), min(n_val, len(val))
    max_pos = max_caption_words(spec, [*train, *val[:n_val]]) + 2  # + <s> and </s>
    device = next(tower.parameters()).device
    was_training = tower.training

    torch.manual_seed(seed)
    clip = CLIPModel(clip_config(base.config.vision_config, tok, max_pos)).to(device)
    _core(clip.vision_model).load_state_dict(_core(tower).state_dict())  # the seed's tower init
    decay = [q for q in clip.parameters() if q.ndim >= 2]
    no_decay = [q for q in clip.parameters() if q.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": p.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=p.learning_rate,
    )
    bs = min(p.batch_size, n)
    steps_per_epoch = n // bs
    total = max(1, int(round(p.epochs * steps_per_epoch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.learning_rate, total_steps=total, pct_start=0.05)
    rng = np.random.default_rng(seed)
    losses, step, epoch, seen, t0 = [], 0, 0, 0, time.perf_counter()
    clip.train()
    while step < total:
        order = rng.permutation(n)
        for start in range(0, steps_per_epoch * bs, bs):
            if step >= total:
                break
            idx = order[start : start + bs]
            texts = [caption(spec, train[i], "train", int(i), seed, epoch if fresh_captions else 0) for i in idx]
            enc = encode_texts(tok, texts, max_pos)
            loss = clip(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                pixel_values=_pixels(processor, world, "train", idx).to(device),
                return_loss=True,
            ).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)
            losses.append(loss.item())
            seen += len(idx)
            step += 1
        epoch += 1
    seconds = time.perf_counter() - t0

    clip.eval()
    val_texts = [caption(spec, val[i], "val", i, seed) for i in range(n_val)]
    val_pixels = _pixels(processor, world, "val", np.arange(n_val)).to(device)
    enc = {k: v.to(device) for k, v in encode_texts(tok, val_texts, max_pos).items()}
    chunk = min(RETRIEVAL_CHUNK, n_val)
    top1 = retrieval_top1(clip, val_pixels, enc, val_texts, chunk)
    logit_scale = float(clip.logit_scale.detach().exp())

    _core(tower).load_state_dict(_core(clip.vision_model).state_dict())  # only the image tower survives
    del clip
    tower.eval()
    n_probe = min(PROBE_TRAIN, n)
    x_tr = pooled_patch_features(tower, processor, world, "train", n_probe, p.batch_size, layer)
    x_va = pooled_patch_features(tower, processor, world, "val", n_val, p.batch_size, layer)
    probe = presence_probe(
        x_tr, presence_labels(spec, train[:n_probe]), x_va, presence_labels(spec, val[:n_val]), spec.category_names
    )
    tower.train(was_training)
    return {
        "steps": total,
        "seconds": seconds,
        "images_per_s": seen / max(seconds, 1e-9),
        "loss_first": float(np.mean(losses[:10])),
        "loss_last": float(np.mean(losses[-10:])),
        "logit_scale": logit_scale,
        "val_retrieval_top1": top1,
        "val_retrieval_chunk": chunk,
        "val_retrieval_chance": 1.0 / chunk,
        "val_presence_auroc": probe["mean_auroc"],
        "val_presence_auroc_per_category": {c: float(a) for c, a in probe["per_category"].items()},
    }
