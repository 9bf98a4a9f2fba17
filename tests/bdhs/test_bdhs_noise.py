"""Diffusion noise: the sigmoid beta schedule, abar, identity at N = 0, seeding and strength."""

import math

import numpy as np
import pytest

from study.bdhs.noise import add_diffusion_noise, alpha_bar, betas


def test_schedule_values():
    b = betas()
    assert b.shape == (1000,)
    sig = lambda x: 1 / (1 + math.exp(-x))
    assert b[0] == pytest.approx(sig(-6) * (5e-3 - 1e-5) + 1e-5, rel=1e-12)  # ~2.23e-5
    assert b[500] == pytest.approx(0.5 * (5e-3 - 1e-5) + 1e-5, rel=1e-12)
    assert b[-1] == pytest.approx(sig(-6 + 12 * 999 / 1000) * (5e-3 - 1e-5) + 1e-5, rel=1e-12)
    assert np.all(np.diff(b) > 0) and 1e-5 < b.min() and b.max() < 5e-3


def test_alpha_bar_decreasing():
    abar = [alpha_bar(n) for n in range(0, 1001, 50)]
    assert abar[0] == 1.0
    assert all(x > y for x, y in zip(abar, abar[1:]))
    assert alpha_bar(1000) == pytest.approx(np.exp(np.log1p(-betas()).sum()))
    assert alpha_bar(1) == pytest.approx(1 - betas()[0])


@pytest.mark.parametrize("bad", [-1, 1001])
def test_invalid_steps_raise(bad, images):
    with pytest.raises(ValueError, match="noise_steps"):
        add_diffusion_noise(images[0], bad, np.random.default_rng(0))


def test_zero_steps_is_identity(images):
    out = add_diffusion_noise(images[0], 0, np.random.default_rng(0))
    assert np.array_equal(np.asarray(out), np.asarray(images[0]))


def test_seeded_and_stronger_with_more_steps(images):
    x = np.asarray(images[0], dtype=float)
    noisy = lambda n, s: np.asarray(add_diffusion_noise(images[0], n, np.random.default_rng(s)), dtype=float)
    assert np.array_equal(noisy(300, 1), noisy(300, 1))
    assert not np.array_equal(noisy(300, 1), noisy(300, 2))
    diffs = [np.abs(noisy(n, 1) - x).mean() for n in (10, 100, 500, 1000)]
    assert all(a < b for a, b in zip(diffs, diffs[1:]))
    assert noisy(500, 1).shape == x.shape
