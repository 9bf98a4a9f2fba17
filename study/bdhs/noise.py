"""BDHS_noise: diffusion forward noise on the image (paper §5.4 / App. E.1, after POVID's code).

Schedule, k = 0 .. 999 (the paper's App. E.1, Fig. 9):

    beta_k   = sigmoid(-6 + 12 k / 1000) * (5e-3 - 1e-5) + 1e-5
    abar_N   = prod_{k=0}^{N-1} (1 - beta_k)            (abar_0 = 1: no noise)
    x_N      = sqrt(abar_N) x_0 + sqrt(1 - abar_N) eps,   eps ~ N(0, I)

The paper's extracted formula for beta_k is partly garbled in the fraction (12k/1000 vs 12k/999); we
use 12k/1000 as stated. The public VCD/POVID code uses ``linspace(-6, 6, 1000)`` (i.e. 12k/999) and
indexes ``cumprod[N]`` (N+1 factors); together they lower abar_N by 0.35 % at N = 500 and 0.75 %
at N = 999.

Pixel space: x_0 = pixel / 127.5 - 1 in [-1, 1] (the usual diffusion convention), per RGB channel of the
PIL image; x_N is clipped to [-1, 1] and mapped back to uint8. POVID adds the noise to the CLIP-normalised
tensor instead; working on the PIL image keeps the processor untouched and the result inspectable.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

N_STEPS = 1000


def betas() -> np.ndarray:
    k = np.arange(N_STEPS, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(-6.0 + 12.0 * k / N_STEPS))) * (5e-3 - 1e-5) + 1e-5


def alpha_bar(noise_steps: int) -> float:
    """abar_N = prod_{k<N} (1 - beta_k); 1.0 for N = 0."""
    if not 0 <= int(noise_steps) <= N_STEPS:
        raise ValueError(f"noise_steps must be in [0, {N_STEPS}], got {noise_steps!r}")
    return float(np.prod(1.0 - betas()[: int(noise_steps)]))


def add_diffusion_noise(image: Image.Image, noise_steps: int, rng: np.random.Generator) -> Image.Image:
    """x_N of the module docstring for an RGB PIL image; ``noise_steps = 0`` returns the image as is."""
    abar = alpha_bar(noise_steps)
    if noise_steps == 0:
        return image
    x0 = np.asarray(image.convert("RGB"), dtype=np.float64) / 127.5 - 1.0
    xn = np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * rng.standard_normal(x0.shape)
    return Image.fromarray(np.rint((np.clip(xn, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8))
