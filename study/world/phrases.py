"""The world's phrases, declared once: relations, positions and counts, written and read by the same rules.

The generator (:mod:`study.world.language`, :mod:`study.world.corpus`), the grader (:mod:`study.eval`) and the
corruptors (:mod:`study.prefs`) all read a sentence's positions, relations and counts through this module, so
what one writes the others parse the same way.

Tokens are the world's own (lower case, punctuation as separate tokens; see
:func:`study.eval.mentions.tokenize`). The rules:

    position phrase  one of the grid's position names (``spec.position_name``), matched longest first
                     ("top left" is not also "top"); a phrase followed by "of" is a relation ("left of").
    relation phrase  ``left of``, ``right of``, ``above``, ``below``; ``INVERSE[r]`` is the relation that
                     holds in the other direction (a is r of b  iff  b is INVERSE[r] of a).
    claimed count    in a description, the first ``there is/are W`` with W in ``one`` .. ``six``.
    answered count   in an answer to "how many", the first word after a ``there is/are`` that is a number:
                     ``no`` = 0, ``a``/``an``/``one`` = 1, ``two`` .. ``six``, or digits; none: no count.
"""

from __future__ import annotations

from study.world.spec import WorldSpec

RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six")  # index = the number
CLAIM_COUNT_WORDS = {w: i for i, w in enumerate(NUMBER_WORDS) if i >= 1}
ANSWER_COUNT_WORDS = {**{w: i for i, w in enumerate(NUMBER_WORDS)}, "a": 1, "an": 1}


def position_names(spec: WorldSpec) -> list[str]:
    """The grid's position names, longest first (the order the matcher tries them)."""
    names = {spec.position_name(r, c) for r in range(spec.grid) for c in range(spec.grid)}
    return sorted(names, key=lambda p: -len(p.split()))


def position_spans(tokens: list[str], spec: WorldSpec) -> list[tuple[int, int]]:
    """``[start, end)`` token spans of the position phrases in ``tokens`` (rule in the module docstring)."""
    names = [name.split() for name in position_names(spec)]
    out, i = [], 0
    while i < len(tokens):
        for name in names:
            k = len(name)
            if tokens[i : i + k] == name:
                if i + k >= len(tokens) or tokens[i + k] != "of":
                    out.append((i, i + k))
                i += k
                break
        else:
            i += 1
    return out


def position_phrases(tokens: list[str], spec: WorldSpec) -> set[str]:
    """The position names that :func:`position_spans` finds in ``tokens``."""
    return {" ".join(tokens[a:b]) for a, b in position_spans(tokens, spec)}


def relation_spans(tokens: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end, relation)`` of every relation phrase in ``tokens``, in reading order."""
    out = []
    for i, t in enumerate(tokens):
        if t in ("left", "right") and i + 1 < len(tokens) and tokens[i + 1] == "of":
            out.append((i, i + 2, f"{t} of"))
        elif t in ("above", "below"):
            out.append((i, i + 1, t))
    return out


def claimed_count_index(tokens: list[str]) -> int | None:
    """Token index of a description's claimed count word, or None (rule in the module docstring)."""
    for i in range(len(tokens) - 2):
        if tokens[i] == "there" and tokens[i + 1] in ("is", "are") and tokens[i + 2] in CLAIM_COUNT_WORDS:
            return i + 2
    return None


def answered_count(tokens: list[str]) -> int | None:
    """The number an answer to a "how many" question gives, or None (rule in the module docstring)."""
    for i in range(len(tokens) - 2):
        if tokens[i] == "there" and tokens[i + 1] in ("is", "are"):
            w = tokens[i + 2]
            if w in ANSWER_COUNT_WORDS:
                return ANSWER_COUNT_WORDS[w]
            if w.isdigit():
                return int(w)
    return None
