"""Bias-Driven Hallucination Sampling (BDHS, paper §3.3-3.4): rejected answers from the policy itself.

Modules (one idea each): :mod:`.mask` (Eq. 6 image-token mask), :mod:`.noise` (diffusion noise),
:mod:`.guided` (reference-guided cut / prefix / join), :mod:`.similarity` (sentence-embedding check),
:mod:`.sampler` (the batched retry loop), :mod:`.stats` (Fig. 10 analog and hallucination content).

Why the study's mask threshold (``params.yaml: bdhs.rho_th``) sits below the paper's. The paper's 0.99 leaves ~1 % of LLaVA-NeXT's thousands of highly redundant image
tokens visible (dozens of tokens, never none). Our organism has k = 64 non-redundant tokens (48x48 image,
patch 6): 0.99 leaves 0.64 on average and blocks the image completely in 0.99^64 = 53 % of the masks, i.e.
it is mostly the rho_th = 1 condition the paper avoided for realism. At 0.9, E[#visible] = 64 * 0.1 = 6.4
(P(all masked) = 0.1 %): fewer than one token per grid cell, so the background is seen and most objects are
not. On the trained organism (200 val descriptions x 3 seeds, ``python -m study.bdhs.sweep``) 0.9 gives
86.5 % semantically different rejections after one iteration (0.0: 78 %, 0.99: 91 %, 1.0: 90 %) and a
CHAIR_i of the first rejections of 0.22 (0.0: 0.18, 0.99: 0.23, 1.0: 0.24): most of the effect of full
masking while keeping part of the image. Re-run the sweep when the organism changes.
"""

from study.bdhs.guided import GuidedPlan, assistant_prefixes, chosen_sentences, cut_sentence, flip_yes_no, join, plan
from study.bdhs.mask import SharedKeep, draw_keep, keep_fn
from study.bdhs.noise import add_diffusion_noise, alpha_bar, betas
from study.bdhs.sampler import BDHSParams, BDHSResult, bdhs_sample
from study.bdhs.similarity import SentenceEncoder, default_encoder_path
from study.bdhs.stats import acceptance_curve, colour_claims, content_summary, content_table, rejection_content

__all__ = [
    "BDHSParams",
    "BDHSResult",
    "bdhs_sample",
    "keep_fn",
    "draw_keep",
    "SharedKeep",
    "betas",
    "alpha_bar",
    "add_diffusion_noise",
    "GuidedPlan",
    "plan",
    "chosen_sentences",
    "flip_yes_no",
    "cut_sentence",
    "assistant_prefixes",
    "join",
    "SentenceEncoder",
    "default_encoder_path",
    "acceptance_curve",
    "colour_claims",
    "rejection_content",
    "content_table",
    "content_summary",
]
