"""Grounding instruments: does the model *use* its image, and where do its errors come from?

Every function takes any LLaVA-family model and its processor (one model interface; no organism
branches). Image tokens are "masked" exactly as in generation (:func:`study.model.generate.apply_image_keep`):
zero in the attention mask, position ids unchanged, so the text sees no image at all.

**Yes/no discrimination.** For an existence question ``q`` about image ``x`` the model's first answer
token gives the margin

    m(x, q) = log sum_{w in YES} p(w | x, q) - log sum_{w in NO} p(w | x, q),

``YES``/``NO`` = the single-token spellings of "yes"/"no" in the vocabulary (``yes``, ``Yes``; ``no``,
``No``). Discrimination is the AUROC of ``m`` against the label (present = positive), the Mann-Whitney
probability ``P(m_pos > m_neg) + 0.5 P(m_pos = m_neg)``. A model whose margin is a fixed increasing
function of presence gets 1; one that ignores the image gets a constant margin per object and,
on a balanced split, 0.5 up to the object mix (below 0.5 when it says "yes" more for the *absent*
objects, as on POPE's popular/adversarial negatives). ``image gain`` = AUROC(with image) - AUROC(every
image token masked).

**Image dependence of descriptions.** For the model's own answer ``y`` (|y| tokens)

    D = sum_y [log p(y | x, q) - log p(y | x masked, q)] / sum_y |y|       (nats per token)

is how much more likely the image makes the model's own words; 0 for a model that ignores its image.

**Presence probe.** A per-category L2-regularised logistic regression on the image features the
language model receives (the projector's output, mean- and max-pooled over image tokens) is fitted on
train scenes and scored by AUROC on held-out scenes; the same regression on the one-hot context label
alone is the baseline a background-only encoder reaches. ``probe gain`` = mean AUROC(features) -
mean AUROC(context label).

Confidence intervals resample scenes (every question of a scene moves together), as in
:mod:`study.eval.bootstrap`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from study.model.generate import apply_image_keep, image_token_id, keep_all, keep_none, render_prompts

YES_WORDS = ("yes", "Yes")
NO_WORDS = ("no", "No")


# ----------------------------------------------------------------------------- AUROC with a scene bootstrap


def _weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC for each row of ``weights`` (shape (B, n)): Mann-Whitney with ties counted one half."""
    uniq, inv = np.unique(scores, return_inverse=True)
    onehot = np.zeros((len(scores), len(uniq)))
    onehot[np.arange(len(scores)), inv] = 1.0
    pos = (weights * labels) @ onehot  # (B, U): positive weight at each score value
    neg = (weights * (1 - labels)) @ onehot
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each value
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """``P(s_pos > s_neg) + 0.5 P(s_pos = s_neg)``; NaN when a class is empty."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    return float(_weighted_auroc(s, y, np.ones((1, len(s))))[0])


def _group_bootstrap(
    point: float, stat, groups: Sequence[str], n: int, *, n_boot: int, seed: int, level: float
) -> dict:
    """``{"value": point, "ci95"}`` from ``stat(w)``, ``w`` the (B, n) item weights of ``n_boot`` resamples of
    the groups (each item weighted by its group's multiplicity); NaN replicates are dropped."""
    _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    g = int(inv.max()) + 1 if n else 0
    if g == 0 or n_boot <= 0:
        return {"value": point, "ci95": [point, point]}
    counts = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=n_boot)  # (B, G)
    boot = stat(counts[:, inv].astype(float))
    boot = boot[~np.isnan(boot)]
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)]) if boot.size else (point, point)
    return {"value": point, "ci95": [float(lo), float(hi)]}


def auroc_ci(
    scores: Sequence[float],
    labels: Sequence[int],
    groups: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """``{"value", "ci95": [lo, hi]}``: AUROC and its percentile interval over resampled groups."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    groups = [str(i) for i in range(len(s))] if groups is None else groups
    return _group_bootstrap(
        auroc(s, y), lambda w: _weighted_auroc(s, y, w), groups, len(s), n_boot=n_boot, seed=seed, level=level
    )


def auroc_gain_ci(
    a: Sequence[float],
    b: Sequence[float],
    labels: Sequence[int],
    groups: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """AUROC(a) - AUROC(b) on the same items, with a paired interval (the same resampled scenes for both)."""
    a, b, y = (np.asarray(v, dtype=float) for v in (a, b, labels))
    return _group_bootstrap(
        auroc(a, y) - auroc(b, y),
        lambda w: _weighted_auroc(a, y, w) - _weighted_auroc(b, y, w),
        groups,
        len(a),
        n_boot=n_boot,
        seed=seed,
        level=level,
    )


# ----------------------------------------------------------------------------- model scoring


def single_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Ids of the ``words`` that the tokenizer encodes as exactly one (non-unknown) token."""
    ids = []
    for w in words:
        enc = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] != tokenizer.unk_token_id:
            ids.append(enc[0])
    if not ids:
        raise ValueError(f"none of {list(words)} is a single token of this tokenizer")
    return sorted(set(ids))


def _encode(model, processor, images, texts, masked: bool):
    enc = processor(images=list(images), text=list(texts), return_tensors="pt", padding=True, padding_side="left")
    attn, pos, _ = apply_image_keep(
        enc["input_ids"],
        enc["attention_mask"],
        image_token_id(model),
        keep_none if masked else keep_all,
        torch.Generator(),
    )
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in enc.items()}
    inputs["attention_mask"], inputs["position_ids"] = attn.to(device), pos.to(device)
    return inputs


@torch.no_grad()
def yes_no_margins(
    model,
    processor,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    masked: bool = False,
    batch_size: int = 64,
) -> np.ndarray:
    """``m(x, q)`` (module docstring) for each (image, question); ``masked`` hides every image token."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
    tok = processor.tokenizer
    yes, no = single_token_ids(tok, YES_WORDS), single_token_ids(tok, NO_WORDS)
    texts = render_prompts(processor, prompts)
    out = []
    for start in range(0, len(texts), batch_size):
        sl = slice(start, start + batch_size)
        logits = model(**_encode(model, processor, images[sl], texts[sl], masked), logits_to_keep=1).logits[:, -1]
        logp = torch.log_softmax(logits.float(), dim=-1)
        out.append((torch.logsumexp(logp[:, yes], -1) - torch.logsumexp(logp[:, no], -1)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def answer_logprobs(
    model,
    processor,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    masked: bool = False,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_t log p(y_t | x, q, y_<t), |y|)`` of each given answer under teacher forcing.

    ``|y|`` is the number of tokens the answer adds to the rendered prompt (tokenised without the image
    expansion, so it is the same with or without the image)."""
    if not len(images) == len(prompts) == len(answers):
        raise ValueError("images, prompts and answers must have the same length")
    tok = processor.tokenizer
    full = render_prompts(processor, prompts, answers)
    prompt_only = render_prompts(processor, prompts)
    n_ans = np.array(
        [
            len(tok(f, add_special_tokens=False)["input_ids"]) - len(tok(p, add_special_tokens=False)["input_ids"])
            for f, p in zip(full, prompt_only)
        ]
    )
    sums = []
    for start in range(0, len(full), batch_size):
        sl = slice(start, start + batch_size)
        k = n_ans[sl]
        inputs = _encode(model, processor, images[sl], full[sl], masked)
        width = int(k.max()) + 1 if len(k) else 1
        logits = model(**inputs, logits_to_keep=width).logits.float()  # (b, width, V)
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts the last width-1 tokens
        target = inputs["input_ids"][:, -(width - 1) :] if width > 1 else inputs["input_ids"][:, :0]
        tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (b, width-1)
        steps = torch.arange(width - 1, device=tok_lp.device)
        keep = steps.unsqueeze(0) >= (width - 1 - torch.as_tensor(k, device=tok_lp.device)).unsqueeze(1)
        sums.append((tok_lp * keep).sum(-1).cpu().numpy())
    return (np.concatenate(sums) if sums else np.zeros(0)), n_ans


@torch.no_grad()
def image_features(model, processor, images: Sequence[Image.Image], *, batch_size: int = 64) -> np.ndarray:
    """The projector's output for each image, mean- and max-pooled over image tokens: (N, 2 * hidden)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    feats = []
    for start in range(0, len(images), batch_size):
        enc = processor.image_processor(images=list(images[start : start + batch_size]), return_tensors="pt")
        kw = {"image_sizes": enc["image_sizes"]} if "image_sizes" in enc else {}
        out = base.model.get_image_features(pixel_values=enc["pixel_values"].to(next(model.parameters()).device), **kw)
        pooled = out.pooler_output if hasattr(out, "pooler_output") else out
        feats += [torch.cat([f.float().mean(0), f.float().amax(0)]).cpu().numpy() for f in pooled]
    return np.stack(feats) if feats else np.zeros((0, 0))


# ----------------------------------------------------------------------------- presence probe


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(W, b)`` of independent logistic regressions, one per column of ``y`` (L-BFGS, L2 on W).

    ``x`` is standardised with its own mean/std first; the returned weights include that step."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    mu, sd = xt.mean(0), xt.std(0).clamp(min=1e-6)
    z = (xt - mu) / sd
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(z.shape[1], yt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(yt.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, yt) + l2 * (w**2).sum() / yt.shape[1]
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = (w / sd.unsqueeze(1)).detach()
    return w_raw.numpy(), (b - (mu / sd) @ w).detach().numpy()


def presence_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, names: Sequence[str]
) -> dict:
    """Per-category test AUROC of a logistic probe; categories with one class in either split are skipped."""
    ok = [
        j
        for j in range(y_train.shape[1])
        if 0 < y_train[:, j].sum() < len(y_train) and 0 < y_test[:, j].sum() < len(y_test)
    ]
    if not ok:
        raise ValueError("no category is both present and absent in the probe's train and test scenes")
    w, b = fit_logistic(x_train, y_train[:, ok])
    s = x_test @ w + b
    per = {names[j]: auroc(s[:, i], y_test[:, j]) for i, j in enumerate(ok)}
    return {"mean_auroc": float(np.mean(list(per.values()))), "per_category": per}
