"""Resume only what the same configuration wrote.

A stage that can be killed keeps its resumable state (trainer checkpoints, online-loop state, pool
checkpoints) in a work directory outside its DVC output. A later call may continue from that state only
if it would have produced it itself: the **fingerprint** of the call, a JSON mapping of everything that
determines the state (the resolved params, the seed, digests of the data, the initial policy and the
world), must equal the one recorded in ``<work_dir>/fingerprint.json`` when the state was written.

:func:`claim_work_dir` enforces that rule and says what it did, one line on stdout every time:

* same fingerprint and state present  -> ``resuming <what> from <work_dir>: ...``; the state is kept;
* other fingerprint (or none recorded) -> ``not resuming <what>: ... differs (keys); starting clean``;
  the directory is emptied;
* no state                             -> nothing to say; the directory is created.

A stage that never resumes (SFT, LM pretraining) calls :func:`start_clean` instead: leftovers of a
killed call are removed, with a line, so that nothing of theirs (e.g. a pool checkpoint of other
``sft.pool_fractions``) joins the new call's output.

In every case the call's fingerprint is then recorded, so a run killed later is judged by it.

Digests (:func:`tree_digest`) hash file contents; files larger than ``FULL_HASH_LIMIT`` (a real
checkpoint's weight shards) contribute their name, size and modification time instead, which changes
whenever the file is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from study import io

FINGERPRINT = "fingerprint.json"
FULL_HASH_LIMIT = 256 * 2**20  # bytes; larger files are identified by name, size and mtime


def default_work_dir(out_dir: str | Path) -> Path:
    """Where a stage writing ``out_dir`` keeps its resumable state: the sibling ``<out_dir>.work``."""
    out = Path(out_dir)
    return out.with_name(out.name + ".work")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(path: str | Path) -> str:
    """sha256 over every file under ``path`` (relative name + content digest, sorted); a file is
    hashed in full up to ``FULL_HASH_LIMIT`` bytes, beyond that by size and mtime. A missing path
    digests as ``"missing"``."""
    root = Path(path)
    if not root.exists():
        return "missing"
    if root.is_file():
        return _entry(root)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()}\0{_entry(f)}\n".encode())
    return h.hexdigest()


def _entry(f: Path) -> str:
    st = f.stat()
    if st.st_size > FULL_HASH_LIMIT:
        return f"size={st.st_size},mtime_ns={st.st_mtime_ns}"
    return file_digest(f)


def value_digest(obj: Any) -> str:
    """sha256 of a JSON-serialisable value (canonical: sorted keys, ``str`` for anything else)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def differing_keys(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two fingerprints (present in one only counts)."""
    a, b = _flat(old), _flat(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, object()) != b.get(k, object()))


def claim_work_dir(work_dir: str | Path, fingerprint: dict, what: str, log: Callable[[str], None] = print) -> bool:
    """Make ``work_dir`` safe for a call with ``fingerprint``; True iff its state may be resumed.

    The rule and the messages are the module's. ``fingerprint`` must be JSON-serialisable (it is
    normalised through JSON before comparing, so tuples and lists compare equal)."""
    work = Path(work_dir)
    fp = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
    state = sorted(p.name for p in work.iterdir() if p.name != FINGERPRINT) if work.is_dir() else []
    resume = False
    if state:
        record = work / FINGERPRINT
        old = _read(record)
        if old == fp:
            log(f"resuming {what} from {work}: params and data unchanged")
            resume = True
        else:
            why = (
                "no record of the configuration that wrote it"
                if old is None
                else "written with other " + ", ".join(differing_keys(old, fp)[:8])
            )
            log(f"not resuming {what} from {work}: {why}; starting clean")
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    io.write_json(work / FINGERPRINT, fp)
    return resume


def start_clean(work_dir: str | Path, what: str, log: Callable[[str], None] = print) -> Path:
    """For a stage that never resumes (it trains in one go): remove what a killed earlier call left in
    ``work_dir``, saying so, and return the fresh, empty directory."""
    work = Path(work_dir)
    if work.is_dir() and any(work.iterdir()):
        log(
            f"not resuming {what} from {work}: it does not resume, the leftover state "
            f"({', '.join(sorted(p.name for p in work.iterdir()))}) is removed; starting clean"
        )
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def run_sub_stages(
    resume: bool,
    steps: Iterable[tuple[str, Callable[[], bool], Callable[[], object]]],
    what: str,
    log: Callable[[str], None] = print,
) -> None:
    """Run a stage's sub-stages in order, each ``(name, done, run)``, in a work directory that
    :func:`claim_work_dir` judged (``resume``). While resuming, a sub-stage whose ``done()`` holds is kept, with a
    line; the first one run ends resuming, because every later sub-stage reads its outputs (one done again redoes
    all that follow it)."""
    for name, done, run in steps:
        if resume and done():
            log(f"{what}: {name} kept from the interrupted run")
        else:
            resume = False
            log(f"{what}: {name}")
            run()


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def remove_if_empty(path: str | Path) -> None:
    """Remove ``path`` if it is an empty directory (a work dir whose runs all finished)."""
    p = Path(path)
    if p.is_dir() and not any(p.iterdir()):
        p.rmdir()
