"""Object mentions in an answer: which categories a text asserts, and which it denies.

Tokens. The text is lower-cased, the punctuation marks ``. , ? !`` are split off as their own tokens
and the result is split on whitespace (so the world's own text, already in that form, is unchanged).
Sentences end after each terminator token ``.`` ``?`` ``!``; a tail without one is a last sentence.

Mentions. Every token ``w`` in the lexicon ``spec.word_to_category()`` (canonical names, synonyms and
their plurals) is one mention of category ``lexicon[w]``. A word used twice is two mentions.

Negation (the only rule that turns a mention into a *denial*). A mention at token ``i`` of a sentence
is negated iff there is a token ``j < i`` of the same sentence with

    tokens[j] in {"no", "not"},   i - j - 1 <= 3,   every token strictly between j and i is a modifier,

where a modifier is a determiner (``a``, ``an``, ``any``), a size word or a colour word of the spec.
So ``there is no cup``, ``there are no small red cups`` and ``there is not a cup`` deny the cup, while
in ``no , the cup is not left of the dog`` neither object is negated: the answer particle ``no`` is
followed by ``,`` and ``not`` by ``left`` (neither a modifier), and both objects are asserted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from study.world.spec import WorldSpec

NEGATORS = frozenset({"no", "not"})
DETERMINERS = frozenset({"a", "an", "any"})
MAX_GAP = 3
TERMINATORS = frozenset({".", "?", "!"})
_PUNCT = re.compile(r"([.,?!])")


@dataclass(frozen=True)
class Mention:
    category: str  # canonical category name
    word: str  # the word as written (singular, plural or synonym)
    sentence: int  # index of the sentence in the answer (0-based)
    token: int  # index of the word within its sentence
    negated: bool  # True: the sentence denies the object (see module docstring)


def tokenize(text: str) -> list[str]:
    """Lower-case, split off ``. , ? !`` and split on whitespace."""
    return _PUNCT.sub(r" \1 ", text.lower()).split()


def sentences(text: str) -> list[list[str]]:
    """The answer's sentences as token lists (each keeps its terminator)."""
    out: list[list[str]] = []
    cur: list[str] = []
    for tok in tokenize(text):
        cur.append(tok)
        if tok in TERMINATORS:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def modifier_words(spec: WorldSpec) -> frozenset[str]:
    """Words allowed between a negator and the object word: determiners, sizes, colours."""
    return DETERMINERS | frozenset(spec.colors) | frozenset(spec.sizes)


def is_negated(tokens: list[str], i: int, modifiers: frozenset[str]) -> bool:
    """The negation rule of the module docstring for the word at ``tokens[i]``."""
    for j in range(i - 1, max(-1, i - MAX_GAP - 2), -1):
        if tokens[j] in NEGATORS:
            return True
        if tokens[j] not in modifiers:
            return False
    return False


def parse_mentions(text: str, spec: WorldSpec) -> list[Mention]:
    """Every object mention of ``text`` in reading order, each marked negated or not."""
    lexicon = spec.word_to_category()
    modifiers = modifier_words(spec)
    out = []
    for s, toks in enumerate(sentences(text)):
        for i, tok in enumerate(toks):
            if tok in lexicon:
                out.append(Mention(lexicon[tok], tok, s, i, is_negated(toks, i, modifiers)))
    return out


def asserted_categories(text: str, spec: WorldSpec) -> list[str]:
    """Categories of the non-negated mentions, in mention order, with repeats."""
    return [m.category for m in parse_mentions(text, spec) if not m.negated]


def denied_categories(text: str, spec: WorldSpec) -> list[str]:
    """Categories of the negated mentions, in mention order, with repeats."""
    return [m.category for m in parse_mentions(text, spec) if m.negated]
