"""Reference-guided generation (paper §3.4.2, Eq. 7, Algorithm 1) as pure functions.

The chosen answer y+ is split into sentences y+_1 .. y+_S (:func:`study.world.language.split_sentences`;
an answer without a terminator is ONE sentence). Sentence k, of n_k whitespace tokens t_1 .. t_{n_k}
(the world's tokens; punctuation is its own token), is cut after c_k tokens:

    c_k ~ U{0, .., n_k - 1}          kept prefix y+_{k,1} = t_1 .. t_{c_k}

so the kept part may be empty and at least the last token is always regenerated (cutting in TOKEN space,
not characters, never splits a word; the paper only says "random"). The continuation is sampled as

    y~_{k,2} ~ pi(. | x~, y+_1 .. y+_{k-1}, y+_{k,1})      until the first sentence terminator or EOS,

i.e. the assistant prefix of sentence k is the ground-truth sentences before it plus its kept part, never
earlier generated text, so all sentences of all samples can be generated in parallel. y~- is the
concatenation of y+_{k,1} y~_{k,2} over k ("diverge and rejoin").

Yes/no heuristic: if a sentence matches ``^[\\s]*(Yes|yes|No|no)\\b`` the answer word is swapped to its
opposite (case kept) with probability 0.5, and it is always part of the kept prefix: for such sentences
c_k ~ U{1, .., max(1, n_k - 1)}, so the flip decides the answer's polarity and the model continues after
it. The ``\\b`` is our addition to the paper's regex so that words like "not" or "nothing" are not "no".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from study.world.language import split_sentences

YES_NO = re.compile(r"^[\s]*(Yes|yes|No|no)\b")
OPPOSITE = {"Yes": "No", "yes": "no", "No": "Yes", "no": "yes"}


@dataclass(frozen=True)
class GuidedPlan:
    """One sample's cut: ground-truth sentences and the kept (possibly flipped) prefix of each."""

    sentences: tuple[str, ...]
    kept: tuple[str, ...]


def chosen_sentences(chosen: str, row: int = 0) -> list[str]:
    """The sentences of a chosen answer; a text without a terminator is one sentence."""
    if not isinstance(chosen, str) or not chosen.strip():
        raise ValueError(f"chosen answer of row {row} is empty: BDHS needs a reference answer to guide on")
    return split_sentences(chosen)


def flip_yes_no(sentence: str, rng: np.random.Generator) -> tuple[str, bool]:
    """Swap a leading yes/no to its opposite with probability 0.5; returns (sentence, is_yes_no)."""
    m = YES_NO.match(sentence)
    if m is None:
        return sentence, False
    if rng.random() < 0.5:
        sentence = sentence[: m.start(1)] + OPPOSITE[m.group(1)] + sentence[m.end(1) :]
    return sentence, True


def cut_sentence(sentence: str, rng: np.random.Generator) -> str:
    """The kept prefix of one sentence (yes/no flip first, then the uniform token cut)."""
    sentence, yes_no = flip_yes_no(sentence, rng)
    toks = sentence.split()
    lo, hi = (1, max(1, len(toks) - 1)) if yes_no else (0, max(0, len(toks) - 1))
    c = int(rng.integers(lo, hi + 1))
    return " ".join(toks[:c])


def plan(chosen: str, rng: np.random.Generator, row: int = 0) -> GuidedPlan:
    sents = chosen_sentences(chosen, row)
    return GuidedPlan(tuple(sents), tuple(cut_sentence(s, rng) for s in sents))


def assistant_prefixes(p: GuidedPlan) -> list[str]:
    """Prefix of sentence k = ground-truth sentences 1..k-1 + kept part of sentence k."""
    return [" ".join([*p.sentences[:k], p.kept[k]]).strip() for k in range(len(p.sentences))]


def join(p: GuidedPlan, continuations: list[str]) -> str:
    """y~- = concatenation over k of (kept part k + continuation k), single-spaced."""
    if len(continuations) != len(p.sentences):
        raise ValueError(f"{len(continuations)} continuations for {len(p.sentences)} sentences")
    return " ".join(" ".join(f"{kept} {cont}" for kept, cont in zip(p.kept, continuations)).split())
