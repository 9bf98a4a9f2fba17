"""Pretrain the organism's vision tower before any instruction data, as LLaVA's CLIP tower is.

A real LLaVA starts from a CLIP encoder that already separates objects; the organism's tower is built
from scratch, and trained only through the language loss it learns the cheapest cue, the background
(context), which predicts most objects. This stage gives the tower object evidence first.

Objective ``presence`` (multi-label object detection without boxes). With ``h_{i,k}`` the tower's
last-layer state of image ``i`` at patch ``k`` (the features the projector receives) and a linear head
``s_{i,k,c} = w_c . h_{i,k} + b_c``, the image-level logit of category ``c`` is the max over patches
(multiple-instance pooling: one patch holding the glyph suffices) and the loss is binary cross-entropy
against presence ``y_{i,c}``:

    z_{i,c} = max_k s_{i,k,c},    L = -1/(N C) sum_{i,c} [y log sigma(z) + (1 - y) log(1 - sigma(z))].

The head is discarded after training; only the tower's weights move on to SFT. Validation: mean
per-category AUROC of ``z`` on the ``val`` split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from study.world.corpus import World
from study.world.spec import WorldSpec

PROBE_TRAIN = 1000  # scenes a tower's presence probe is fitted on


@dataclass(frozen=True)
class VisionPretrainParams:
    epochs: float
    learning_rate: float
    batch_size: int
    weight_decay: float


class PresenceHead(nn.Module):
    """Per-patch category logits, max-pooled over patches."""

    def __init__(self, hidden: int, n_categories: int):
        super().__init__()
        self.proj = nn.Linear(hidden, n_categories)

    def forward(self, patch_states: torch.Tensor) -> torch.Tensor:
        return self.proj(patch_states).amax(dim=1)


def patch_states(
    vision_tower, pixel_values: torch.Tensor, feature_layer: int = -1, drop_cls: bool = True
) -> torch.Tensor:
    """The tower's hidden states at ``feature_layer`` (what LLaVA's projector reads), CLS dropped."""
    out = vision_tower(pixel_values, output_hidden_states=True)
    h = out.hidden_states[feature_layer]
    return h[:, 1:] if drop_cls else h


def _pixels(processor, world: World, split: str, idx: np.ndarray) -> torch.Tensor:
    imgs = [world.image(f"{split}-{i}") for i in idx]
    return processor.image_processor(images=imgs, return_tensors="pt")["pixel_values"]


def presence_labels(spec: WorldSpec, scenes) -> np.ndarray:
    """``y[i, c] = 1`` iff category ``c`` (spec order) is in ``scenes[i]``: the targets of the presence
    objective and of the presence probes."""
    cats = spec.category_names
    return np.array([[c in s.categories for c in cats] for s in scenes], dtype=float)


def _labels(spec: WorldSpec, scenes, idx) -> torch.Tensor:
    return torch.from_numpy(presence_labels(spec, [scenes[i] for i in idx])).float()


@torch.no_grad()
def presence_logits(
    vision_tower,
    head: PresenceHead,
    processor,
    world: World,
    split: str,
    n: int,
    batch_size: int,
    feature_layer: int = -1,
) -> np.ndarray:
    vision_tower.eval()
    out = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        out.append(head(patch_states(vision_tower, _pixels(processor, world, split, idx), feature_layer)).numpy())
    return np.concatenate(out)


def train_tower_loop(tower, head_params: list, loss_of, n: int, p: VisionPretrainParams, seed: int) -> dict:
    """The supervised pretraining loop shared by the per-patch objectives (``presence``, ``dense``): AdamW on
    the tower's and the head's parameters, a one-cycle LR (5 % warm-up) over ``round(epochs * ceil(n / batch))``
    steps; every epoch shuffles the ``n`` scene indices with ``seed`` and keeps the last partial batch;
    ``loss_of(idx)`` is the batch loss. Leaves the tower in train mode. Returns ``steps``, ``seconds``,
    ``images_per_s`` and the mean loss of the first and last 10 steps."""
    opt = torch.optim.AdamW(
        list(tower.parameters()) + list(head_params), lr=p.learning_rate, weight_decay=p.weight_decay
    )
    steps_per_epoch = (n + p.batch_size - 1) // p.batch_size
    total = max(1, int(round(p.epochs * steps_per_epoch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.learning_rate, total_steps=total, pct_start=0.05)
    rng = np.random.default_rng(seed)
    losses, step, t0 = [], 0, time.perf_counter()
    tower.train()
    while step < total:
        order = rng.permutation(n)
        for start in range(0, n, p.batch_size):
            if step >= total:
                break
            loss = loss_of(order[start : start + p.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
    seconds = time.perf_counter() - t0
    return {
        "steps": total,
        "seconds": seconds,
        "images_per_s": total * p.batch_size / max(seconds, 1e-9),
        "loss_first": float(np.mean(losses[:10])),
        "loss_last": float(np.mean(losses[-10:])),
    }


def pretrain_vision(
    model, processor, world: World, spec: WorldSpec, p: VisionPretrainParams, seed: int, n_val: int = 200
) -> dict:
    """Train ``model``'s vision tower in place on object presence; returns metrics (losses, val AUROC).

    Scenes of the train split are shuffled with ``seed`` every epoch; the last partial batch is kept."""
    from study.eval.grounding import auroc

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = base.model.vision_tower
    layer = base.config.vision_feature_layer if isinstance(base.config.vision_feature_layer, int) else -1
    torch.manual_seed(seed)
    head = PresenceHead(tower.config.hidden_size, len(spec.category_names))
    train = world.scenes("train")

    def loss_of(idx):
        logits = head(patch_states(tower, _pixels(processor, world, "train", idx), layer))
        return nn.functional.binary_cross_entropy_with_logits(logits, _labels(spec, train, idx))

    run = train_tower_loop(tower, list(head.parameters()), loss_of, len(train), p, seed)
    val = world.scenes("val")
    n_val = min(n_val, len(val))
    z = presence_logits(tower, head, processor, world, "val", n_val, p.batch_size, layer)
    y = _labels(spec, val, range(n_val)).numpy()
    per = {c: auroc(z[:, j], y[:, j]) for j, c in enumerate(spec.category_names) if 0 < y[:, j].sum() < n_val}
    tower.train()
    return {**run, "val_presence_auroc": float(np.mean(list(per.values()))), "val_presence_auroc_per_category": per}


@torch.no_grad()
def pooled_patch_features(
    tower, processor, world: World, split: str, n: int, batch_size: int, feature_layer: int = -1
) -> np.ndarray:
    """Mean- and max-pooled patch states (CLS dropped) of the first ``n`` scenes of ``split``: (n, 2 hidden)."""
    out = []
    for start in range(0, n, batch_size):
        h = patch_states(
            tower, _pixels(processor, world, split, np.arange(start, min(n, start + batch_size))), feature_layer
        )
        out.append(torch.cat([h.mean(1), h.amax(1)], dim=1).float().cpu().numpy())
    return np.concatenate(out)


def tower_presence_report(model, processor, source, world: World, spec: WorldSpec, batch_size: int) -> dict:
    """Does the tower see objects, or their context? A per-category logistic presence probe
    (:func:`study.eval.grounding.presence_probe`) on the tower's pooled patch states
    (:func:`pooled_patch_features`), fitted on the first <= ``PROBE_TRAIN`` scenes the tower was pretrained
    on (``source``: the world, or :class:`study.world.uniform.UniformScenes`), scored by mean per-category
    AUROC on the world's ``val`` split (in distribution) and ``ood`` split (categories drawn independently
    of the context: a tower that encodes the background more than the glyphs falls towards 0.5 there)."""
    from study.eval.grounding import presence_probe

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = base.model.vision_tower
    layer = base.config.vision_feature_layer if isinstance(base.config.vision_feature_layer, int) else -1
    was_training = tower.training
    tower.eval()
    fit = source.scenes("train")[:PROBE_TRAIN]
    x_fit = pooled_patch_features(tower, processor, source, "train", len(fit), batch_size, layer)
    out = {"fit_scenes": len(fit)}
    for split in ("val", "ood"):
        scenes = world.scenes(split)
        if not scenes:
            continue
        x = pooled_patch_features(tower, processor, world, split, len(scenes), batch_size, layer)
        out[f"{split}_auroc"] = presence_probe(
            x_fit, presence_labels(spec, fit), x, presence_labels(spec, scenes), spec.category_names
        )["mean_auroc"]
    tower.train(was_training)
    return out
