"""Pretrain the organism's vision tower on what is where: per-patch object, colour and size labels.

A real CLIP tower's *patch* states encode which object is at that place and what it looks like, and LLaVA
reads exactly those patch states. The two objectives of the other modules shape them only indirectly
(``clip``: the loss sees the CLS state; its batches can be told apart by colours and layout alone) or
without place (``presence``: max over patches, blind to colour, size and position), and a tower trained
either way on the world's own scenes encodes the background more than the glyphs
(``paper/organism_v2.md``). This objective supervises every patch state directly, the organism's fast
stand-in for CLIP's local features (a tiny dense detector, no boxes beyond the world's grid).

Targets. The image is a ``grid x grid`` layout of cells (the world's, 3x3); patch ``k`` (of the tower's
``(S / P)^2``, S = image size, P = patch size) belongs to the cell holding its centre. For each patch:
``c_k`` = the category of the object in that cell, or "none"; ``a_k`` = its colour (or none); ``z_k`` = its
size (or none). With linear heads on the tower's state ``h_k`` at the LLaVA's ``vision_feature_layer``:

    L = 1/K sum_k [ CE(W_c h_k, c_k) + CE(W_a h_k, a_k) + CE(W_z h_k, z_k) ],

cross-entropy over ``|categories| + 1``, ``|colours| + 1`` and ``|sizes| + 1`` classes. The heads are
discarded after training; only the tower's weights move on. Validation: per-category presence AUROC of
``max_k softmax(W_c h_k)[c]`` on the source's ``val`` scenes (``val_presence_auroc``, comparable with the
other objectives) and the patch-level category accuracy on object-holding patches (``val_patch_accuracy``),
split by the object's rendering (``val_patch_accuracy_faint`` over the patches of faint objects, blended toward the
background with ``world.faint_alpha``; ``val_patch_accuracy_clear`` over the rest; ``None`` where the val scenes hold
none): a tower that reads every faint glyph leaves the language prior nothing to decide.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from study.model.vision_pretrain import VisionPretrainParams, _pixels, patch_states, presence_labels, train_tower_loop
from study.world.spec import WorldSpec


def patch_cells(image_size: int, patch_size: int, grid: int) -> np.ndarray:
    """``cell[k]`` = row * grid + col of the grid cell holding patch ``k``'s centre (row-major patches)."""
    n = image_size // patch_size
    centres = (np.arange(n) + 0.5) * patch_size
    idx = np.minimum((centres * grid / image_size).astype(int), grid - 1)
    return (idx[:, None] * grid + idx[None, :]).reshape(-1)


def dense_targets(spec: WorldSpec, scenes, cells: np.ndarray) -> dict[str, torch.Tensor]:
    """``{"category", "color", "size"}``: (N, K) class indices per patch; the last class of each is "none"."""
    cats, colors, sizes = spec.category_names, list(spec.colors), list(spec.sizes)
    n_cells = spec.grid * spec.grid
    out = {k: np.empty((len(scenes), len(cells)), dtype=np.int64) for k in ("category", "color", "size")}
    for i, s in enumerate(scenes):
        cat = np.full(n_cells, len(cats))
        col = np.full(n_cells, len(colors))
        siz = np.full(n_cells, len(sizes))
        for o in s.objects:
            c = o.row * spec.grid + o.col
            cat[c], col[c], siz[c] = cats.index(o.category), colors.index(o.color), sizes.index(o.size)
        out["category"][i], out["color"][i], out["size"][i] = cat[cells], col[cells], siz[cells]
    return {k: torch.from_numpy(v) for k, v in out.items()}


def faint_patches(spec: WorldSpec, scenes, cells: np.ndarray) -> np.ndarray:
    """(N, K) bool: patch ``k`` of scene ``i`` lies in the cell of a *faint* object."""
    out = np.zeros((len(scenes), len(cells)), dtype=bool)
    for i, s in enumerate(scenes):
        faint = np.zeros(spec.grid * spec.grid, dtype=bool)
        for o in s.objects:
            faint[o.row * spec.grid + o.col] = o.faint
        out[i] = faint[cells]
    return out


class DenseHeads(nn.Module):
    """Linear per-patch heads: category, colour, size (each with a "none" class)."""

    def __init__(self, hidden: int, spec: WorldSpec):
        super().__init__()
        self.category = nn.Linear(hidden, len(spec.category_names) + 1)
        self.color = nn.Linear(hidden, len(spec.colors) + 1)
        self.size = nn.Linear(hidden, len(spec.sizes) + 1)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"category": self.category(h), "color": self.color(h), "size": self.size(h)}


def dense_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(nn.functional.cross_entropy(logits[k].flatten(0, 1), targets[k].flatten()) for k in logits)


def pretrain_dense(
    model, processor, source, spec: WorldSpec, p: VisionPretrainParams, seed: int, n_val: int = 200
) -> dict:
    """Train ``model``'s vision tower in place on per-patch labels of ``source``'s train scenes (a World or
    :class:`study.world.uniform.UniformScenes`); returns metrics. Scenes are shuffled with ``seed`` every
    epoch; the last partial batch is kept."""
    from study.eval.grounding import auroc

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = base.model.vision_tower
    layer = base.config.vision_feature_layer if isinstance(base.config.vision_feature_layer, int) else -1
    vc = base.config.vision_config
    cells = patch_cells(vc.image_size, vc.patch_size, spec.grid)
    torch.manual_seed(seed)
    heads = DenseHeads(tower.config.hidden_size, spec)
    train = source.scenes("train")
    targets = dense_targets(spec, train, cells)
    was_training = tower.training

    def loss_of(idx):
        logits = heads(patch_states(tower, _pixels(processor, source, "train", idx), layer))
        return dense_loss(logits, {k: v[idx] for k, v in targets.items()})

    run = train_tower_loop(tower, list(heads.parameters()), loss_of, len(train), p, seed)

    tower.eval()
    val = source.scenes("val")
    n_val = min(n_val, len(val))
    vt = dense_targets(spec, val[:n_val], cells)["category"]
    vf = torch.from_numpy(faint_patches(spec, val[:n_val], cells))
    probs, hits, kinds = [], [], []
    with torch.no_grad():
        for start in range(0, n_val, p.batch_size):
            idx = np.arange(start, min(n_val, start + p.batch_size))
            lc = heads(patch_states(tower, _pixels(processor, source, "val", idx), layer))["category"]
            probs.append(lc.softmax(-1)[..., :-1].amax(1).numpy())
            t = vt[idx]
            obj = t < len(spec.category_names)
            hits.append((lc.argmax(-1)[obj] == t[obj]).numpy())
            kinds.append(vf[idx][obj].numpy())
    z, y = np.concatenate(probs), presence_labels(spec, val[:n_val])
    per = {c: auroc(z[:, j], y[:, j]) for j, c in enumerate(spec.category_names) if 0 < y[:, j].sum() < n_val}
    hits, kinds = np.concatenate(hits), np.concatenate(kinds)
    rate = lambda m: float(hits[m].mean()) if m.any() else None
    tower.train(was_training)
    return {
        **run,
        "val_presence_auroc": float(np.mean(list(per.values()))),
        "val_presence_auroc_per_category": per,
        "val_patch_accuracy": float(hits.mean()) if hits.size else 0.0,
        "val_patch_accuracy_faint": rate(kinds),
        "val_patch_accuracy_clear": rate(~kinds),
    }
