"""The sentence encoder: offline default path, clear errors, row-wise cosine in [-1, 1]."""

import numpy as np
import pytest

from study.bdhs import SentenceEncoder, default_encoder_path


def test_default_path_is_the_bundled_model():
    p = default_encoder_path()
    assert p.name == "model" and (p / "modules.json").is_file()


def test_missing_path_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local sentence-transformers model"):
        SentenceEncoder(tmp_path / "all-mpnet-base-v2")


def test_rowwise_cosine(encoder):
    chosen = ["a small red cup is at the left .", "there is a large green tree at the top ."]
    rejected = ["a small red cup is at the left .", "a purple laptop is on the desk ."]
    sim = encoder.similarity(rejected, chosen)
    assert sim.shape == (2,) and np.all(np.abs(sim) <= 1.0)
    assert sim[0] == pytest.approx(1.0, abs=1e-5) and sim[1] < 0.8
    assert np.allclose(encoder.similarity(rejected, encoder.embed(chosen)), sim)
    with pytest.raises(ValueError):
        encoder.similarity(rejected[:1], chosen)
