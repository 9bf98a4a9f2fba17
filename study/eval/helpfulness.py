"""A helpfulness proxy for descriptions: how many true scene facts the answer states.

Facts. Every ground-truth object o contributes four facts: its category, colour, size and position.
A sentence *asserts* a category if it holds a non-negated mention of it (any synonym or plural, see
:mod:`study.eval.mentions`). Then, for object o with category c:

    category fact stated  iff some sentence asserts c;
    colour / size fact    iff some sentence asserts c and contains o's colour / size word;
    position fact         iff some sentence asserts c and contains o's position phrase
                          (:func:`study.world.phrases.position_phrases`: longest first, "left of" is a
                          relation, not a position).

Matching is per sentence, not one-to-one: two objects of one category may be credited by the same
sentence. Metrics: ``helpfulness = sum stated facts / sum facts`` (micro over the corpus) and
``length = sum answer tokens / #answers`` (tokens of :func:`~study.eval.mentions.tokenize`).
"""

from __future__ import annotations

from study.eval.bootstrap import ratio
from study.eval.mentions import is_negated, modifier_words, sentences, tokenize
from study.world.phrases import position_phrases
from study.world.scenes import Scene
from study.world.spec import WorldSpec

FACT_KINDS = ("category", "color", "size", "position")


def _sentence_claims(text: str, spec: WorldSpec) -> list[tuple[set[str], set[str]]]:
    """Per sentence: (asserted categories, every colour/size word and position phrase in it)."""
    lexicon = spec.word_to_category()
    modifiers = modifier_words(spec)
    out = []
    for toks in sentences(text):
        cats = {lexicon[t] for i, t in enumerate(toks) if t in lexicon and not is_negated(toks, i, modifiers)}
        words = {t for t in toks if t in spec.colors or t in spec.sizes} | position_phrases(toks, spec)
        out.append((cats, words))
    return out


def helpfulness_stats(text: str, scene: Scene, spec: WorldSpec) -> dict[str, int]:
    """Stated and total GT facts of one description, and its length in tokens."""
    claims = _sentence_claims(text, spec)
    stated = 0
    for o in scene.objects:
        about = [words for cats, words in claims if o.category in cats]
        if about:
            stated += 1 + sum(any(v in words for words in about) for v in (o.color, o.size, o.position))
    return {
        "answers": 1,
        "facts": len(FACT_KINDS) * len(scene.objects),
        "facts_stated": stated,
        "tokens": len(tokenize(text)),
    }


HELPFULNESS_METRICS = {
    "helpfulness": lambda s: ratio(s["facts_stated"], s["facts"]),
    "length": lambda s: ratio(s["tokens"], s["answers"]),
}
