"""World specification: categories, colours, sizes and contexts, read from ``data/world_spec.yaml``.

The spec is the study's input. It is validated on load so a typo fails with the offending key named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

SHAPES = (
    "circle",
    "ring",
    "vbar",
    "tee",
    "square",
    "hbar",
    "triangle",
    "cross",
    "inv_triangle",
    "frame",
    "diamond",
    "plus",
    "ell",
    "hourglass",
    "halfdisk",
    "bowtie",
)
POSITIONS_3x3 = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)


@dataclass(frozen=True)
class Category:
    name: str
    shape: str
    synonyms: tuple[str, ...]
    plural: dict[str, str]
    color: str

    @property
    def names(self) -> tuple[str, ...]:
        """Every singular word that refers to this category (canonical name first)."""
        return (self.name, *self.synonyms)


@dataclass(frozen=True)
class Context:
    name: str
    background: tuple[int, int, int]
    objects: dict[str, float]  # core category -> probability of appearing


@dataclass(frozen=True)
class WorldSpec:
    image_size: int
    grid: int
    colors: dict[str, tuple[int, int, int]]
    sizes: dict[str, float]
    categories: dict[str, Category]
    contexts: dict[str, Context]
    source: str = field(default="", compare=False)

    @property
    def category_names(self) -> list[str]:
        return list(self.categories)

    def context_of(self, category: str) -> str | None:
        """The context whose core set holds ``category`` (None if it belongs to none)."""
        for ctx in self.contexts.values():
            if category in ctx.objects:
                return ctx.name
        return None

    def position_name(self, row: int, col: int) -> str:
        if self.grid == 3:
            return POSITIONS_3x3[row][col]
        return f"row {row} col {col}"

    def word_to_category(self) -> dict[str, str]:
        """Map of every singular and plural object word to its category (the mention lexicon)."""
        out: dict[str, str] = {}
        for cat in self.categories.values():
            for w in cat.names:
                out[w] = cat.name
            for w in cat.plural.values():
                out[w] = cat.name
        return out


def _err(key: str, msg: str) -> ValueError:
    return ValueError(f"world spec: `{key}` {msg}")


def _rgb(key: str, value) -> tuple[int, int, int]:
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    ):
        raise _err(key, f"must be a list of 3 integers in [0, 255], got {value!r}")
    return tuple(value)  # type: ignore[return-value]


def _mapping(d: dict, key: str, prefix: str = "") -> dict:
    v = d.get(key) or {}
    if not isinstance(v, dict):
        raise _err(f"{prefix}.{key}" if prefix else key, f"must be a mapping, got {v!r}")
    return dict(v)


def parse_spec(raw: dict, source: str = "") -> WorldSpec:
    """Validate a raw spec mapping and build a :class:`WorldSpec`."""
    if not isinstance(raw, dict):
        raise ValueError("world spec: top level must be a mapping")
    allowed = {"version", "image_size", "grid", "colors", "sizes", "categories", "contexts"}
    unknown = set(raw) - allowed
    if unknown:
        raise _err(sorted(unknown)[0], f"is not a known key (allowed: {sorted(allowed)})")
    image_size = raw.get("image_size")
    if not isinstance(image_size, int) or not 16 <= image_size <= 1024:
        raise _err("image_size", f"must be an integer in [16, 1024], got {image_size!r}")
    grid = raw.get("grid")
    if grid != 3:
        raise _err("grid", f"must be 3 (positions are named on a 3x3 layout), got {grid!r}")
    colors = {k: _rgb(f"colors.{k}", v) for k, v in _mapping(raw, "colors").items()}
    if len(colors) < 2:
        raise _err("colors", "needs at least 2 colours")
    sizes = _mapping(raw, "sizes")
    for k, v in sizes.items():
        if not isinstance(v, (int, float)) or not 0.1 <= v <= 1.0:
            raise _err(f"sizes.{k}", f"must be a number in [0.1, 1.0], got {v!r}")
    if len(sizes) < 2:
        raise _err("sizes", "needs at least 2 sizes")
    cats: dict[str, Category] = {}
    for name, c in _mapping(raw, "categories").items():
        key = f"categories.{name}"
        if not isinstance(c, dict):
            raise _err(key, f"must be a mapping (shape, color, synonyms, plural), got {c!r}")
        if c.get("shape") not in SHAPES:
            raise _err(f"{key}.shape", f"must be one of {list(SHAPES)}, got {c.get('shape')!r}")
        if c.get("color") not in colors:
            raise _err(f"{key}.color", f"must be one of {sorted(colors)}, got {c.get('color')!r}")
        syn = tuple(c.get("synonyms") or ())
        plural = dict(c.get("plural") or {})
        for w in (name, *syn):
            if w not in plural:
                raise _err(f"{key}.plural", f"needs a plural for {w!r}")
        cats[name] = Category(name, c["shape"], syn, plural, c["color"])
    if len(cats) < 12:
        raise _err("categories", f"needs at least 12 categories, got {len(cats)}")
    shapes = [c.shape for c in cats.values()]
    if len(set(shapes)) != len(shapes):
        raise _err("categories", "every category needs its own shape")
    words = [w for c in cats.values() for w in (*c.names, *c.plural.values())]
    dup = {w for w in words if words.count(w) > 1}
    if dup:
        raise _err("categories", f"object words must be unique across categories: {sorted(dup)}")
    ctxs: dict[str, Context] = {}
    for name, c in _mapping(raw, "contexts").items():
        key = f"contexts.{name}"
        if not isinstance(c, dict):
            raise _err(key, f"must be a mapping (background, objects), got {c!r}")
        objs = _mapping(c, "objects", key)
        for o, p in objs.items():
            if o not in cats:
                raise _err(f"{key}.objects.{o}", "is not a category")
            if not isinstance(p, (int, float)) or not 0 < p <= 1:
                raise _err(f"{key}.objects.{o}", f"must be a probability in (0, 1], got {p!r}")
        ctxs[name] = Context(name, _rgb(f"{key}.background", c.get("background")), objs)
    if len(ctxs) < 2:
        raise _err("contexts", "needs at least 2 contexts")
    return WorldSpec(image_size, grid, colors, dict(sizes), cats, ctxs, source=source)


class SpecError(ValueError):
    """An invalid world spec file; the message names the file (and the line, or the key)."""


def load_spec(path: str | Path) -> WorldSpec:
    """Read and validate the spec file; any problem is a :class:`SpecError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"world spec not found at {path} (run `dvc pull data.dvc` to fetch the study's inputs)")
    try:
        with path.open() as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    try:
        return parse_spec(raw, source=str(path))
    except ValueError as e:
        raise SpecError(f"{path}: {e}") from None
