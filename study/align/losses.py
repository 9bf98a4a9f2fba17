"""The pairwise losses in plain PyTorch: the reference the TRL path is tested against, and the benchmark's
"plain step".

Notation (the paper's Eq. 3): for a prompt x (image + text) and answers y+ (chosen), y- (rejected),
with sequence log-probabilities summed over the answer tokens,

    h = [log pi(y+|x) - log pi_ref(y+|x)] - [log pi(y-|x) - log pi_ref(y-|x)]

    DPO (sigmoid)   L = -log sigma(beta * h)
    SLiC (hinge)    L = max(0, 1 - beta * h)
    IPO             L = (h_len - 1 / (2 beta))^2,  h_len = chosen log-ratio / |y+|  -  rejected log-ratio / |y-|

IPO as implemented by TRL 1.16 (``DPOTrainer._compute_loss``) divides each log-ratio by its answer's
token count (length normalisation, confirmed with the IPO authors per TRL's comment); the paper's
unnormalised form ``(h - 1/(2 beta))^2`` is ``ipo_loss(..., normalise=False)``.

Avg-DPO (Eq. 5, two rejected answers y-, y~- for one chosen y+):
    L = gamma * L(y+, y-) + (1 - gamma) * L(y+, y~-)

Mixed-DPO (Eq. 4) is a sampling rule, not a new loss: per sample, alpha ~ Bernoulli(p) picks the offline
pair (alpha = 1) or an online pair (alpha = 0), and the pair loss above is applied to whichever was picked.

Each loss returns the per-pair values (shape ``[B]``); trainers average them over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin(pol_c: torch.Tensor, pol_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor) -> torch.Tensor:
    """h = (log pi(y+) - log pi_ref(y+)) - (log pi(y-) - log pi_ref(y-)) per pair."""
    return (pol_c - ref_c) - (pol_r - ref_r)


def dpo_loss(pol_c, pol_r, ref_c, ref_r, beta: float) -> torch.Tensor:
    return -F.logsigmoid(beta * margin(pol_c, pol_r, ref_c, ref_r))


def hinge_loss(pol_c, pol_r, ref_c, ref_r, beta: float) -> torch.Tensor:
    return torch.relu(1 - beta * margin(pol_c, pol_r, ref_c, ref_r))


def ipo_loss(pol_c, pol_r, ref_c, ref_r, beta: float, len_c=None, len_r=None, normalise: bool = True) -> torch.Tensor:
    if normalise:
        if len_c is None or len_r is None:
            raise ValueError("length-normalised IPO needs the answer token counts len_c, len_r")
        h = (pol_c - ref_c) / len_c.clamp(min=1) - (pol_r - ref_r) / len_r.clamp(min=1)
    else:
        h = margin(pol_c, pol_r, ref_c, ref_r)
    return (h - 1 / (2 * beta)) ** 2


def pair_loss(loss_type: str, pol_c, pol_r, ref_c, ref_r, beta: float, len_c=None, len_r=None) -> torch.Tensor:
    """Per-pair loss for a TRL ``loss_type`` (``sigmoid`` | ``hinge`` | ``ipo``), same conventions as TRL."""
    if loss_type == "sigmoid":
        return dpo_loss(pol_c, pol_r, ref_c, ref_r, beta)
    if loss_type == "hinge":
        return hinge_loss(pol_c, pol_r, ref_c, ref_r, beta)
    if loss_type == "ipo":
        return ipo_loss(pol_c, pol_r, ref_c, ref_r, beta, len_c, len_r)
    raise ValueError(f"loss_type must be one of ['sigmoid', 'hinge', 'ipo'], got {loss_type!r}")


def avg_dpo_loss(loss_a: torch.Tensor, loss_b: torch.Tensor, gamma: float) -> torch.Tensor:
    """Eq. 5: gamma * L(y+, y-) + (1 - gamma) * L(y+, y~-) (per pair, or already batch-averaged)."""
    return gamma * loss_a + (1 - gamma) * loss_b


def completion_logps(model, batch: dict, *, grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of the completion tokens of a TRL preference batch, and the token counts.

    ``batch``: the output of TRL's ``DataCollatorForVisionPreference`` (``input_ids``, ``attention_mask``,
    ``completion_mask``, ``pixel_values``; rows = [chosen..., rejected...]). A plain forward: full logits,
    ``log_softmax``, gather the next token -- no fused head, no TRL code.
    """
    inputs = {k: v for k, v in batch.items() if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        logits = model(**inputs, use_cache=False).logits[:, :-1].float()
        labels = batch["input_ids"][:, 1:]
        mask = batch["completion_mask"][:, 1:].to(logits.dtype)
        tok = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(-1)
        return (tok * mask).sum(-1), mask.sum(-1)


def plain_pair_loss(model, ref_model, batch: dict, beta: float, loss_type: str = "sigmoid") -> torch.Tensor:
    """Batch-mean pair loss of a TRL preference batch computed with plain forwards (benchmark / cross-check)."""
    logp, n = completion_logps(model, batch, grad=True)
    ref, _ = completion_logps(ref_model, batch, grad=False)
    pol_c, pol_r = logp.chunk(2)
    ref_c, ref_r = ref.chunk(2)
    len_c, len_r = n.chunk(2)
    return pair_loss(loss_type, pol_c, pol_r, ref_c, ref_r, beta, len_c, len_r).mean()
