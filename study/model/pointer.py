"""A stage output that *is* a checkpoint kept elsewhere: a pretrained base passed through the ``sft`` stage.

A GPU user's ``model.base_path`` (a LLaVA-1.6-7B, say) is already instruction-tuned: the ``sft`` stage, with
``sft.on_base: pass``, trains nothing and writes ``base_pointer.json`` into its output directory instead of a
14 GB copy. Every reader of a model directory (:func:`study.model.load.load_model`, ``check_model_dir``)
follows the pointer, so downstream stages are unchanged: one code path for the organism and the checkpoint.

The pointer records the checkpoint's absolute path and a fingerprint (the size of every ``*.safetensors``
file and the SHA-256 of ``config.json``); a checkpoint changed or moved since the pointer was written is an
error naming what differs, never a silent switch of the model under the study.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

POINTER = "base_pointer.json"


def fingerprint(path: str | Path) -> dict:
    p = Path(path)
    return {
        "config_sha256": hashlib.sha256((p / "config.json").read_bytes()).hexdigest(),
        "safetensors_bytes": {f.name: f.stat().st_size for f in sorted(p.glob("*.safetensors"))},
    }


def write_pointer(out_dir: str | Path, base_path: str | Path) -> dict:
    """Write ``out_dir/base_pointer.json`` for the checkpoint at ``base_path``; returns its content."""
    base = Path(base_path).resolve()
    content = {"base_path": str(base), **fingerprint(base)}
    (Path(out_dir) / POINTER).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return content


def resolve(path: str | Path) -> Path:
    """``path`` itself, or the checkpoint its ``base_pointer.json`` names (checked against its fingerprint)."""
    p = Path(path)
    f = p / POINTER
    if not f.is_file():
        return p
    ptr = json.loads(f.read_text())
    base = Path(ptr["base_path"])
    from study.model.load import ModelPathError

    if not (base / "config.json").is_file():
        raise ModelPathError(f"{f} points at {base}, which is no checkpoint (moved or deleted?); re-run the sft stage")
    now = fingerprint(base)
    changed = [k for k in now if now[k] != ptr.get(k)]
    if changed:
        raise ModelPathError(
            f"{f} points at {base}, whose {', '.join(changed)} changed since the sft stage wrote it; re-run the sft stage"
        )
    return base
