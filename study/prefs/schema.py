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
    rejected_2  str  a second rejected answer for Avg-DPO (the paper's Eq. 5), "" when absent; when present
                     it must differ from ``chosen``

Validation (:func:`validate_rows`, run by every recipe, by :func:`save_prefs` and :func:`load_prefs`)
raises :class:`PrefSchemaError` naming the row index and the column: a missing column, a value of the
wrong type, an empty ``prompt``/``chosen``/``rejected``, ``chosen == rejected`` (or ``rejected_2 ==
chosen``), a ``source_ids`` that is not a JSON object, a ``scene_id`` of the test split (held out for
evaluation: preference data never uses it) or (when a world is given) a ``scene_id`` that is not a scene
of that world. Unknown columns are refused too, so a typo cannot pass silently. Errors of a file
(:func:`load_prefs`) name the file too. :func:`check_scene_ids` checks only the scene ids of rows (any
dataset with a ``scene_id`` column, e.g. the prompt-only rows of online methods) against a world.

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


# splits preference data must never use: the test split is held out for evaluation (leakage otherwise)
HELD_OUT_SPLITS = ("test", "ood")  # evaluation-only splits: the study's test and the organism's ood gates


class PrefSchemaError(ValueError):
    """A preference row breaks the schema; the message names the row index and the column (and the file,
    ``source``, when the rows came from one)."""

    def __init__(self, row: int, column: str, msg: str, source: str | Path | None = None):
        where = f"preference data {source}" if source is not None else "preference data"
        super().__init__(f"{where}: row {row}, column {column!r}: {msg}")
        self.row, self.column, self.source = row, column, source


def make_row(
    *,
    prompt: str,
    chosen: str,
    rejected: str,
    scene_id: str,
    recipe: str,
    seed: int,
    source_ids: dict | str,
    rejected_2: str = "",
) -> dict:
    """One schema row; ``source_ids`` may be a dict (serialised as sorted JSON)."""
    if not isinstance(source_ids, str):
        source_ids = json.dumps(source_ids, sort_keys=True, default=_json_default)
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "scene_id": scene_id,
        "recipe": recipe,
        "seed": int(seed),
        "source_ids": source_ids,
        "rejected_2": rejected_2 or "",
    }


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


def scene_split(scene_id: str) -> str | None:
    """The split of a ``{split}-{index:06d}`` scene id (None when it has no ``-``)."""
    split, sep, _ = scene_id.rpartition("-")
    return split if sep else None


def _scene_problem(scene_id: Any, world=None, scene_ids: set[str] | None = None) -> str | None:
    """Why ``scene_id`` cannot be used by preference data (None when it can)."""
    if not isinstance(scene_id, str) or not scene_id.strip():
        return f"must be a non-empty string, got {scene_id!r}"
    split = scene_split(scene_id)
    if split in HELD_OUT_SPLITS:
        return (
            f"{scene_id!r} is a scene of the {split} split, which is held out for evaluation: preference data "
            f"must not use it (allowed splits: {[s for s in SPLITS if s not in HELD_OUT_SPLITS]})"
        )
    if scene_ids is not None and scene_id not in scene_ids:
        return f"unknown scene {scene_id!r}"
    if world is not None and not scene_exists(world, scene_id):
        return f"unknown scene {scene_id!r} (not in world {world.root})"
    return None


def check_scene_ids(rows, world, source: str | Path | None = None) -> None:
    """Raise :class:`PrefSchemaError` naming ``source`` (the file the rows came from), the row and the
    column unless every row's ``scene_id`` is a scene of ``world`` outside the test split.

    ``rows``: preference or prompt rows (list of dicts, pandas) or a ``datasets.Dataset``; a dataset without
    a ``scene_id`` column (a ready TRL vision dataset, images attached) has nothing to check. Call it before
    training, where today an unknown id fails as a bare ``IndexError`` when its image is first loaded.
    """
    if hasattr(rows, "column_names") and hasattr(rows, "num_rows"):  # datasets.Dataset: read one column only
        if "scene_id" not in rows.column_names:
            return
        ids = list(rows["scene_id"])
    elif hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # pandas
        if "scene_id" not in rows.columns:
            raise PrefSchemaError(0, "scene_id", "is missing", source)
        ids = rows["scene_id"].tolist()
    else:
        ids = []
        for i, r in enumerate(rows):
            if "scene_id" not in r:
                raise PrefSchemaError(i, "scene_id", "is missing", source)
            ids.append(r["scene_id"])
    for i, sid in enumerate(ids):
        problem = _scene_problem(sid, world)
        if problem:
            raise PrefSchemaError(i, "scene_id", problem, source)


def validate_rows(
    rows: Iterable[dict] | Any, world=None, scene_ids: set[str] | None = None, source: str | Path | None = None
) -> list[dict]:
    """Checked, normalised copies of ``rows`` (``rejected_2`` None -> "", ``seed`` -> int).

    A ``scene_id`` of the test split is always refused; ``world`` (a :class:`study.world.corpus.World`) or
    ``scene_ids`` also checks that the scene exists. ``source`` (a file) is named in the errors.
    """

    def error(row: int, column: str, msg: str) -> PrefSchemaError:
        return PrefSchemaError(row, column, msg, source)

    out = []
    for i, r in enumerate(_as_records(rows)):
        for col in r:
            if col not in COLUMNS:
                raise error(i, col, f"is not a column of the schema {list(COLUMNS)}")
        r = dict(r)
        if r.get("rejected_2", None) is None or (isinstance(r.get("rejected_2"), float) and np.isnan(r["rejected_2"])):
            r["rejected_2"] = ""
        for col in COLUMNS:
            if col not in r:
                raise error(i, col, "is missing")
        for col in TEXT_COLUMNS:
            if not isinstance(r[col], str):
                raise error(i, col, f"must be a string, got {type(r[col]).__name__}")
        seed = r["seed"]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise error(i, "seed", f"must be an integer, got {seed!r}")
        r["seed"] = int(seed)
        for col in ("prompt", "chosen", "rejected", "recipe", "scene_id"):
            if not r[col].strip():
                raise error(i, col, "is empty")
        if r["chosen"].strip() == r["rejected"].strip():
            raise error(i, "rejected", "equals chosen (a preference pair needs two different answers)")
        if r["rejected_2"].strip() and r["rejected_2"].strip() == r["chosen"].strip():
            raise error(i, "rejected_2", "equals chosen")
        try:
            src = json.loads(r["source_ids"])
        except json.JSONDecodeError as e:
            raise error(i, "source_ids", f"is not valid JSON ({e.msg})") from None
        if not isinstance(src, dict):
            raise error(i, "source_ids", "must be a JSON object")
        problem = _scene_problem(r["scene_id"], world, scene_ids)
        if problem:
            raise error(i, "scene_id", problem)
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
    """Read a parquet preference file and validate it (that its scenes exist too when ``world`` is given);
    errors name the file and the row."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference file not found: {path}")
    df = pd.read_parquet(path, engine="pyarrow")
    for col in COLUMNS:
        if col not in df.columns:
            raise PrefSchemaError(0, col, f"is missing from {path}", path)
    return validate_rows(df, world, source=path)


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
