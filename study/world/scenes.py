"""Scene graphs: which objects a scene holds, with attributes, grid positions and pairwise relations.

Sampling (in-distribution splits ``train``/``val``/``test``): draw a context c uniformly; each core
category o of c appears with probability p_c(o) (and a second instance with ``duplicate_prob``); with
``off_context_prob`` one category from another context joins. The ``ood`` split keeps the context
backgrounds but draws categories uniformly, so its co-occurrence statistics differ from train.

Every scene is drawn from its own generator seeded by (seed, split, index): the first n scenes of a
split do not depend on how many are drawn, and the same seed gives the same world.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from study.world.phrases import RELATIONS  # noqa: F401  (re-exported: the relations a scene graph holds)
from study.world.spec import WorldSpec

SPLITS = ("train", "val", "test", "ood")


@dataclass(frozen=True)
class SceneParams:
    """Knobs of scene sampling (validated in :mod:`study.config`)."""

    max_objects: int
    duplicate_prob: float
    off_context_prob: float
    typical_color_prob: float
    faint_prob: float


@dataclass
class SceneObject:
    id: int
    category: str
    color: str
    size: str
    row: int
    col: int
    position: str
    faint: bool


@dataclass
class Scene:
    scene_id: str
    split: str
    context: str
    objects: list[SceneObject]
    relations: list[dict] = field(default_factory=list)

    @property
    def categories(self) -> set[str]:
        return {o.category for o in self.objects}

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.objects)

    def to_dict(self) -> dict:
        return {
            "scene_id": self.scene_id,
            "split": self.split,
            "context": self.context,
            "objects": [asdict(o) for o in self.objects],
            "relations": list(self.relations),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            d["scene_id"],
            d["split"],
            d["context"],
            [SceneObject(**o) for o in d["objects"]],
            list(d.get("relations", [])),
        )


def relations_of(objects: list[SceneObject]) -> list[dict]:
    """All pairwise spatial relations implied by grid cells (subject/object are object ids)."""
    rels = []
    for a in objects:
        for b in objects:
            if a.id == b.id:
                continue
            if a.col < b.col:
                rels.append({"subject": a.id, "relation": "left of", "object": b.id})
            if a.col > b.col:
                rels.append({"subject": a.id, "relation": "right of", "object": b.id})
            if a.row < b.row:
                rels.append({"subject": a.id, "relation": "above", "object": b.id})
            if a.row > b.row:
                rels.append({"subject": a.id, "relation": "below", "object": b.id})
    return rels


def _scene_rng(seed: int, split: str, index: int, stream: tuple[int, ...] = ()) -> np.random.Generator:
    return np.random.default_rng([seed, *stream, SPLITS.index(split), index])


def sample_scene(
    spec: WorldSpec,
    params: SceneParams,
    seed: int,
    split: str,
    index: int,
    *,
    uniform: bool | None = None,
    stream: tuple[int, ...] = (),
) -> Scene:
    """Scene ``index`` of ``split``. ``uniform`` (default: ``split == "ood"``) draws categories uniformly
    instead of from the context; a non-empty ``stream`` gives a generator disjoint from the world's own
    (seed, split, index) streams (another scene collection over the same spec, e.g. the vision tower's
    pretraining scenes, :mod:`study.world.uniform`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = _scene_rng(seed, split, index, stream)
    ctx_names = list(spec.contexts)
    ctx = spec.contexts[ctx_names[rng.integers(len(ctx_names))]]
    cats_all = spec.category_names
    chosen: list[str] = []
    draw_uniform = split == "ood" if uniform is None else uniform
    if draw_uniform:
        n = int(rng.integers(1, params.max_objects + 1))
        chosen = [cats_all[i] for i in rng.choice(len(cats_all), size=min(n, len(cats_all)), replace=False)]
    else:
        for cat, p in ctx.objects.items():
            if rng.random() < p:
                chosen.append(cat)
                if rng.random() < params.duplicate_prob:
                    chosen.append(cat)
        if rng.random() < params.off_context_prob:
            others = [c for c in cats_all if c not in ctx.objects]
            chosen.append(others[rng.integers(len(others))])
        if not chosen:
            core = list(ctx.objects)
            chosen.append(core[rng.integers(len(core))])
        rng.shuffle(chosen)
        chosen = chosen[: params.max_objects]
    n_cells = spec.grid * spec.grid
    cells = rng.choice(n_cells, size=len(chosen), replace=False)
    color_names, size_names = list(spec.colors), list(spec.sizes)
    objects = []
    for i, (cat, cell) in enumerate(sorted(zip(chosen, cells), key=lambda t: int(t[1]))):
        typical = spec.categories[cat].color
        color = typical if rng.random() < params.typical_color_prob else color_names[rng.integers(len(color_names))]
        size = size_names[rng.integers(len(size_names))]
        row, col = divmod(int(cell), spec.grid)
        faint = bool(rng.random() < params.faint_prob)
        objects.append(SceneObject(i, cat, color, size, row, col, spec.position_name(row, col), faint))
    return Scene(f"{split}-{index:06d}", split, ctx.name, objects, relations_of(objects))


def generate_split(spec: WorldSpec, params: SceneParams, seed: int, split: str, n: int) -> list[Scene]:
    return [sample_scene(spec, params, seed, split, i) for i in range(n)]


def cooccurrence(scenes: list[Scene], categories: list[str]) -> np.ndarray:
    """Matrix C[i, j] = P(category j present | category i present) over ``scenes`` (diag = 1)."""
    idx = {c: i for i, c in enumerate(categories)}
    pres = np.zeros((len(scenes), len(categories)), dtype=np.float64)
    for s, sc in enumerate(scenes):
        for c in sc.categories:
            pres[s, idx[c]] = 1.0
    joint = pres.T @ pres
    n_i = np.maximum(pres.sum(0), 1.0)
    return joint / n_i[:, None]
