"""Reading benchmark files: every error names the file, the line or the image.

A benchmark is a handful of JSON files and an image folder that a person downloaded by hand. The
readers here turn the three ways that goes wrong into one exception type, :class:`BenchmarkFileError`,
whose message says which file, which line (1-based) or which image, and what should be there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric runs of free text (real answers carry ``;``, quotes, hyphens, brackets)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def singular_candidates(word: str) -> list[str]:
    """``word`` and its regular-plural reductions, in the order to try: itself, minus ``s``, minus ``es``,
    ``ies`` -> ``y`` (the matcher keeps the first that is in its vocabulary)."""
    out = [word]
    if word.endswith("s"):
        out.append(word[:-1])
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    return out


class BenchmarkFileError(ValueError):
    """A benchmark file or image that is missing or malformed (the message names it)."""


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path if it is a file, else an error naming it and ``what`` it should hold."""
    p = Path(path)
    if not p.is_file():
        raise BenchmarkFileError(f"{p}: file not found; it should hold {what}")
    return p


def require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not str(path) or not p.is_dir():
        raise BenchmarkFileError(f"{p}: directory not found; it should hold {what}")
    return p


def read_json_lines(path: str | Path, what: str) -> list[tuple[int, dict]]:
    """``[(line number, object)]`` of a file with one JSON object per line (blank lines skipped)."""
    p = require_file(path, what)
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkFileError(f"{p}:{n}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(obj, dict):
                raise BenchmarkFileError(f"{p}:{n}: expected a JSON object, got {type(obj).__name__}")
            out.append((n, obj))
    return out


def read_json(path: str | Path, what: str):
    """The JSON document in ``path``; a syntax error names the file, line and column."""
    p = require_file(path, what)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BenchmarkFileError(f"{p}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None


def require_fields(obj: dict, fields: Iterable[str], where: str) -> None:
    missing = [k for k in fields if k not in obj]
    if missing:
        raise BenchmarkFileError(f"{where}: missing field(s) {missing}; has {sorted(obj)}")


def check_images(image_dir: str | Path, names: Iterable[str], benchmark: str) -> None:
    """Every listed image exists under ``image_dir``; the first missing one is named."""
    d = require_dir(image_dir, f"the {benchmark} images")
    for name in dict.fromkeys(names):
        if not (d / name).is_file():
            raise BenchmarkFileError(f"{d / name}: image listed by {benchmark} but not found in {d}")
