"""BDHS_attn: the random attention mask over image tokens (paper Eq. 6).

For each of the k image tokens i, draw rho_i ~ U(0, 1) i.i.d. and

    m_i = 1 (the text may attend to token i)   iff   rho_i >= rho_th,      else m_i = 0.

So P(keep) = 1 - rho_th and E[#visible] = k (1 - rho_th): rho_th = 0 keeps every token, rho_th = 1 keeps
none (rho_i < 1 always). The mask is applied by :mod:`study.model.generate` as zeros in the 2-D
attention mask, which persist through the KV cache for every generated token (stack notes B4).
"""

from __future__ import annotations

from typing import Sequence

import torch

from study.model.generate import KeepFn


def check_rho(rho_th: float) -> float:
    if not 0.0 <= float(rho_th) <= 1.0:
        raise ValueError(f"rho_th must be in [0, 1], got {rho_th!r}")
    return float(rho_th)


def draw_keep(n_tokens: int, rho_th: float, g: torch.Generator) -> torch.Tensor:
    """One Eq.-6 draw: a bool tensor of shape (n_tokens,), True = keep (rho_i >= rho_th)."""
    return torch.rand(n_tokens, generator=g) >= check_rho(rho_th)


def keep_fn(rho_th: float) -> KeepFn:
    """A :data:`study.model.generate.KeepFn` drawing a fresh Eq.-6 mask on every call."""
    rho = check_rho(rho_th)
    return lambda n, g: draw_keep(n, rho, g)


class SharedKeep:
    """A KeepFn giving every generation row of one sample the same mask.

    ``row_sample[r]`` is the sample of generation row r. BDHS draws ONE mask per sample and iteration
    (x~ = (x_text, x~_img, m)) and continues all of that sample's sentences under it. This relies on
    :func:`study.model.generate.apply_image_keep` calling the KeepFn once per row, in row order; the mask
    of a sample is drawn (from ``g`` of that call) the first time one of its rows is seen.
    """

    def __init__(self, row_sample: Sequence[int], rho_th: float):
        self.row_sample, self.rho, self.calls = list(row_sample), check_rho(rho_th), 0
        self.masks: dict[int, torch.Tensor] = {}

    def __call__(self, n_tokens: int, g: torch.Generator) -> torch.Tensor:
        if self.calls >= len(self.row_sample):
            raise RuntimeError(f"SharedKeep called for more rows than planned ({len(self.row_sample)})")
        s = self.row_sample[self.calls]
        self.calls += 1
        if s not in self.masks:
            self.masks[s] = draw_keep(n_tokens, self.rho, g)
        if len(self.masks[s]) != n_tokens:
            raise RuntimeError(f"sample {s}: rows have different image-token counts")
        return self.masks[s]

    def visible(self, sample: int) -> int:
        return int(self.masks[sample].sum())
