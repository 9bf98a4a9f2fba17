"""Atomic file output: every writer goes through a temporary sibling and ``os.replace``.

A stage killed mid-write therefore leaves either the previous file or nothing, never half a file.
Directories are built in a temporary sibling and swapped in whole by :func:`atomic_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` (old contents removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
    return rows


def save_array(path: str | Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            np.save(f, arr, allow_pickle=False)


def load_array(path: str | Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _split_tensors(obj, tensors: dict, prefix: str):
    """JSON skeleton of ``obj`` with every tensor replaced by a reference into ``tensors``."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split_tensors(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_split_tensors(v, tensors, prefix) for v in obj], "tuple": isinstance(obj, tuple)}
    return obj


def _join_tensors(obj, tensors: dict):
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _join_tensors(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, dict) and "__list__" in obj:
        items = [_join_tensors(v, tensors) for v in obj["__list__"]]
        return tuple(items) if obj.get("tuple") else items
    return obj


def save_state(obj, path: str | Path) -> None:
    """Save a nested state dict (optimizer, scheduler) as ``path.safetensors`` + ``path.json``; no pickle."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict = {}
    skeleton = _split_tensors(obj, tensors, "")
    with atomic_path(path.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp))
    write_text(path.with_suffix(".json"), json.dumps(skeleton))


def load_state(path: str | Path):
    """Inverse of :func:`save_state` (int dict keys and tuples survive the round trip)."""
    from safetensors.torch import load_file

    path = Path(path)
    return _join_tensors(
        json.loads(path.with_suffix(".json").read_text()), load_file(str(path.with_suffix(".safetensors")))
    )
