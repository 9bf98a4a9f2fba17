"""The preference-dataset schema: one row per (prompt, image, chosen, rejected) with provenance.

Columns (all required; ``rejected_2`` may be the empty string):

    prompt      str  the user question, in world text (lower case, tokens separated by one space)
    chosen      str  the preferred assistant answer (non-empty)
    rejected    str  the dispreferred answer (non-empty, != chosen)
    scene_id    str  the scene the prompt is about; the image is ``World.image(scene_id)``, attached only
                     when the rows are turned into a TRL dataset (:func:`to_trl`)
    recipe      str  the recipe that built the row (a key of :data:`study.prefs.RECIPES`)
    seed        int  the recipe's seed
    source_ids  str  JSON object saying what produced ``chosen`` and ``rejected`` (model/checkpoint,
                     sample index, corruption edits, annotator scores, ...)
    rejected_2  str  a second rejected answer for Avg-DPO (digest Eq. 5), "" when absent; when present
                     it must differ from ``chosen``

Validation (:func:`validate_rows`, run by every recipe, by :func:`save_prefs` and :func:`load_prefs`)
raises :class:`PrefSchemaError` naming the row index and the column: a missing column, a value of the
wrong type, an empty ``prompt``/``chosen``/``rejected``, ``chosen == rejected`` (or ``rejected_2 ==
chosen``), a ``source_ids`` that is not a JSON object, or (when a world is given) a ``scene_id`` that is
not a scene of that world. Unknown columns are refused too, so a typo cannot pass silently.

Files are parquet (pyarrow), written atomically through :func:`study.io.atomic_path`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from study import io
from study.world.scenes import SPLITS

COLUMNS = ("prompt", "chosen", "rejected", "scene_id", "recipe", "seed", "source_ids", "rejected_2")
TEXT_COLUMNS = ("prompt", "chosen", "rejected", "scene_id", "recipe", "source_ids", "rejected_2")


class PrefSchemaError(ValueError):
    """A preference row breaks the schema; the message names the row index and the column."""

    def __init__(self, row: int, column: str, msg: str):
        super().__init__(f"preference data: row {row}, column {column!r}: {msg}")
        self.row, self.column = row, column


def make_row(*, prompt: str, chosen: str, rejected: str, scene_id: str, recipe: str, seed: int,
             source_ids: dict | str, rejected_2: str = "") -> dict:
    """One schema row; ``source_ids`` may be a dict (serialised as sorted JSON)."""
    if not isinstance(source_ids, str):
        source_ids = json.dumps(source_ids, sort_keys=True, default=_json_default)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "scene_id": scene_id, "recipe": recipe,
            "seed": int(seed), "source_ids": source_ids, "rejected_2": rejected_2 or ""}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # numpy arrays, torch tensors
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _as_records(rows) -> list[dict]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        return rows.to_dict(orient="records")
    if hasattr(rows, "to_list") and hasattr(rows, "column_names"):  # datasets.Dataset
        return rows.to_list()
    return [dict(r) for r in rows]


def scene_exists(world, scene_id: str) -> bool:
    """``scene_id`` is ``{split}-{index:06d}`` of a scene stored in ``world``."""
    try:
        split, idx = scene_id.rsplit("-", 1)
        i = int(idx)
    except (AttributeError, ValueError):
        return False
    if split not in SPLITS or i < 0:
        return False
    try:
        scenes = world.scenes(split)
    except FileNotFoundError:
        return False
    return i < len(scenes) and scenes[i].scene_id == scene_id


def validate_rows(rows: Iterable[dict] | Any, world=None, scene_ids: set[str] | None = None) -> list[dict]:
    """Checked, normalised copies of ``rows`` (``rejected_2`` None -> "", ``seed`` -> int).

    ``world`` (a :class:`study.world.corpus.World`) or ``scene_ids`` enables the scene-id check.
    """
    out = []
    for i, r in enumerate(_as_records(rows)):
        for col in r:
            if col not in COLUMNS:
                raise PrefSchemaError(i, col, f"is not a column of the schema {list(COLUMNS)}")
        r = dict(r)
        if r.get("rejected_2", None) is None or (isinstance(r.get("rejected_2"), float) and np.isnan(r["rejected_2"])):
            r["rejected_2"] = ""
        for col in COLUMNS:
            if col not in r:
                raise PrefSchemaError(i, col, "is missing")
        for col in TEXT_COLUMNS:
            if not isinstance(r[col], str):
                raise PrefSchemaError(i, col, f"must be a string, got {type(r[col]).__name__}")
        seed = r["seed"]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise PrefSchemaError(i, "seed", f"must be an integer, got {seed!r}")
        r["seed"] = int(seed)
        for col in ("prompt", "chosen", "rejected", "recipe", "scene_id"):
            if not r[col].strip():
                raise PrefSchemaError(i, col, "is empty")
        if r["chosen"].strip() == r["rejected"].strip():
            raise PrefSchemaError(i, "rejected", "equals chosen (a preference pair needs two different answers)")
        if r["rejected_2"].strip() and r["rejected_2"].strip() == r["chosen"].strip():
            raise PrefSchemaError(i, "rejected_2", "equals chosen")
        try:
            src = json.loads(r["source_ids"])
        except json.JSONDecodeError as e:
            raise PrefSchemaError(i, "source_ids", f"is not valid JSON ({e.msg})") from None
        if not isinstance(src, dict):
            raise PrefSchemaError(i, "source_ids", "must be a JSON object")
        if scene_ids is not None and r["scene_id"] not in scene_ids:
            raise PrefSchemaError(i, "scene_id", f"unknown scene {r['scene_id']!r}")
        if world is not None and not scene_exists(world, r["scene_id"]):
            raise PrefSchemaError(i, "scene_id", f"unknown scene {r['scene_id']!r} (not in world {world.root})")
        out.append({c: r[c] for c in COLUMNS})
    return out


def save_prefs(rows, path: str | Path, world=None) -> Path:
    """Validate and write ``rows`` as parquet at ``path`` (atomically); returns the path."""
    import pandas as pd

    rows = validate_rows(rows, world)
    df = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"seed": "int64"})
    path = Path(path)
    with io.atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    return path


def load_prefs(path: str | Path, world=None) -> list[dict]:
    """Read a parquet preference file and validate it (scene ids too when ``world`` is given)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference file not found: {path}")
    df = pd.read_parquet(path, engine="pyarrow")
    for col in COLUMNS:
        if col not in df.columns:
            raise PrefSchemaError(0, col, f"is missing from {path}")
    return validate_rows(df, world)


def assistant_turn(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def to_trl(ds_rows, world, *, with_rejected_2: bool = False, keep_ids: bool = False):
    """A ``datasets.Dataset`` in TRL's conversational vision preference format.

    Each example: ``prompt = [user turn with an image part and the text]`` (:func:`study.world.corpus.
    user_turn`), ``chosen`` / ``rejected`` = ``[assistant turn]``, ``images = [PIL.Image]`` of the scene.
    ``with_rejected_2`` adds ``rejected_2`` as an assistant turn (every row must then have one);
    ``keep_ids`` keeps ``scene_id`` and ``source_ids`` columns. Images are stored in the dataset
    (``datasets.Image`` feature), so the dataset does not depend on the world directory afterwards.
    """
    from datasets import Dataset

    from study.world.corpus import user_turn

    rows = validate_rows(ds_rows, world)
    data: dict[str, list] = {
        "prompt": [[user_turn(r["prompt"])] for r in rows],
        "chosen": [assistant_turn(r["chosen"]) for r in rows],
        "rejected": [assistant_turn(r["rejected"]) for r in rows],
        "images": [[world.image(r["scene_id"])] for r in rows],
    }
    if with_rejected_2:
        for i, r in enumerate(rows):
            if not r["rejected_2"].strip():
                raise PrefSchemaError(i, "rejected_2", "is empty but with_rejected_2=True")
        data["rejected_2"] = [assistant_turn(r["rejected_2"]) for r in rows]
    if keep_ids:
        data["scene_id"] = [r["scene_id"] for r in rows]
        data["source_ids"] = [r["source_ids"] for r in rows]
    return Dataset.from_dict(data)
