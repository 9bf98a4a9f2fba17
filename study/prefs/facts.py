"""Claims of an answer checked against the exact scene graph (shared by the oracle, POVID and RLHF-V).

An answer is split into sentences (:func:`study.eval.mentions.sentences`: lower case, ``. , ? !`` split
off, a sentence ends at ``.``/``?``/``!``). Object words, negation and the lexicon are those of
:mod:`study.eval.mentions`, so a claim is "asserted" exactly when CHAIR counts it. Each sentence is read
as one of the following claims (first rule that applies):

    relation  a relation phrase (``left of``, ``right of``, ``above``, ``below``) with an object mention
              before and after it: "the A is [not] REL the B". True iff some instance of A and some
              instance of B stand in REL in the scene graph (for unique objects this is
              :func:`study.world.language.relation_holds`); a ``not`` right before the phrase negates it.
    object    exactly one distinct asserted category c and no relation phrase: the sentence claims an
              instance of c with the colour / size words and position phrase it contains (none stated
              = no constraint) and, after "there is"/"there are", a count word ``one`` .. ``six``.
    other     anything else (intro sentences, garbage, several categories in one sentence).

Errors (each one unit; a sentence can hold several):

    hallucinated_object  an asserted mention of a category absent from the scene (one per mention, the
                         same count as CHAIR's ``hallucinated``); absent objects get no attribute check.
    wrong_color / wrong_size / wrong_position
                         object claim on a present category c, but no instance of c matches every stated
                         attribute; the instance with fewest mismatches (first in scene order on ties)
                         names which attributes are wrong.
    wrong_count          stated count != the number of instances of c.
    false_relation       a relation claim whose truth value is wrong (both objects present).
    false_denial         a negated mention ("there is no cup") of a category that is present.
    wrong_context        a sentence with the token ``scene`` and a context word other than the scene's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from study.eval.mentions import is_negated, modifier_words, sentences
from study.world.phrases import CLAIM_COUNT_WORDS, RELATIONS, claimed_count_index, position_spans, relation_spans
from study.world.scenes import Scene, SceneObject
from study.world.spec import WorldSpec

ERROR_KINDS = (
    "hallucinated_object",
    "wrong_color",
    "wrong_size",
    "wrong_position",
    "wrong_count",
    "false_relation",
    "false_denial",
    "wrong_context",
)


@dataclass
class SentenceInfo:
    """One parsed sentence: token spans of every claim it holds, and the errors found in it."""

    tokens: list[str]
    kind: str = "other"  # "object", "relation" or "other"
    asserted: list[tuple[int, str]] = field(default_factory=list)  # (token index, category)
    denied: list[tuple[int, str]] = field(default_factory=list)
    category: str | None = None  # object claims
    colors: list[int] = field(default_factory=list)  # token indices of colour words
    sizes: list[int] = field(default_factory=list)
    positions: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of position phrases
    count: int | None = None  # token index of the count word
    relation: dict | None = None  # {"a","b","rel","negated","start","end"}
    context: int | None = None  # token index of a context word
    errors: list[str] = field(default_factory=list)
    best: SceneObject | None = None  # closest instance of an object claim

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def phrase(self, span: tuple[int, int]) -> str:
        return " ".join(self.tokens[span[0] : span[1]])


@dataclass
class ClaimReport:
    sentences: list[SentenceInfo]

    @property
    def errors(self) -> Counter:
        return Counter(e for s in self.sentences for e in s.errors)

    @property
    def hallucinated_objects(self) -> list[str]:
        return [c for s in self.sentences for _, c in s.asserted if "hallucinated_object:" + c in s.errors]

    @property
    def n_hallucinated(self) -> int:
        return sum(e.startswith("hallucinated_object") for s in self.sentences for e in s.errors)

    @property
    def n_other_errors(self) -> int:
        """Every error except hallucinated objects."""
        return sum(not e.startswith("hallucinated_object") for s in self.sentences for e in s.errors)

    @property
    def n_errors(self) -> int:
        return self.n_hallucinated + self.n_other_errors


def relation_true(scene: Scene, a: str, rel: str, b: str) -> bool:
    """Some instance of ``a`` stands in ``rel`` to some instance of ``b``."""
    ids_a = {o.id for o in scene.objects if o.category == a}
    ids_b = {o.id for o in scene.objects if o.category == b}
    return any(r["relation"] == rel and r["subject"] in ids_a and r["object"] in ids_b for r in scene.relations)


def _mismatches(info: SentenceInfo, o: SceneObject) -> list[str]:
    bad = []
    if info.colors and o.color not in {info.tokens[i] for i in info.colors}:
        bad.append("wrong_color")
    if info.sizes and o.size not in {info.tokens[i] for i in info.sizes}:
        bad.append("wrong_size")
    if info.positions and o.position not in {info.phrase(s) for s in info.positions}:
        bad.append("wrong_position")
    return bad


def parse_sentence(tokens: list[str], spec: WorldSpec) -> SentenceInfo:
    """Structure of one sentence (claims only, no scene): see the module docstring."""
    lexicon = spec.word_to_category()
    mods = modifier_words(spec)
    info = SentenceInfo(list(tokens))
    for i, t in enumerate(tokens):
        if t in lexicon:
            (info.denied if is_negated(tokens, i, mods) else info.asserted).append((i, lexicon[t]))
    info.colors = [i for i, t in enumerate(tokens) if t in spec.colors]
    info.sizes = [i for i, t in enumerate(tokens) if t in spec.sizes]
    info.positions = position_spans(tokens, spec)
    if "scene" in tokens:
        ctx = [i for i, t in enumerate(tokens) if t in spec.contexts]
        info.context = ctx[0] if ctx else None
    rels = relation_spans(tokens)
    mentions = sorted(info.asserted + info.denied)
    if rels:
        start, end, rel = rels[0]
        before = [m for m in mentions if m[0] < start]
        after = [m for m in mentions if m[0] >= end]
        if before and after:
            info.kind = "relation"
            info.relation = {
                "a": before[-1][1],
                "b": after[0][1],
                "rel": rel,
                "start": start,
                "end": end,
                "negated": start > 0 and tokens[start - 1] == "not",
            }
            return info
    cats = {c for _, c in info.asserted}
    if len(cats) == 1 and not rels:
        info.kind = "object"
        info.category = next(iter(cats))
        info.count = claimed_count_index(tokens)
    return info


def check_sentence(info: SentenceInfo, scene: Scene, spec: WorldSpec) -> SentenceInfo:
    """Fill ``info.errors`` (and ``info.best``) against ``scene``."""
    present = scene.categories
    info.errors = [f"hallucinated_object:{c}" for _, c in info.asserted if c not in present]
    info.errors += ["false_denial" for _, c in info.denied if c in present]
    if info.context is not None and info.tokens[info.context] != scene.context:
        info.errors.append("wrong_context")
    if info.kind == "relation":
        r = info.relation
        if r["a"] in present and r["b"] in present:
            holds = relation_true(scene, r["a"], r["rel"], r["b"])
            if holds == r["negated"]:
                info.errors.append("false_relation")
    elif info.kind == "object" and info.category in present:
        inst = [o for o in scene.objects if o.category == info.category]
        scored = [(len(_mismatches(info, o)), k, o) for k, o in enumerate(inst)]
        _, _, info.best = min(scored, key=lambda t: (t[0], t[1]))
        info.errors += _mismatches(info, info.best)
        if info.count is not None and CLAIM_COUNT_WORDS[info.tokens[info.count]] != len(inst):
            info.errors.append("wrong_count")
    return info


def check_claims(text: str, scene: Scene, spec: WorldSpec) -> ClaimReport:
    """Every sentence of ``text`` parsed and checked against ``scene``."""
    return ClaimReport([check_sentence(parse_sentence(toks, spec), scene, spec) for toks in sentences(text)])


def join_sentences(infos: list[SentenceInfo]) -> str:
    return " ".join(s.text for s in infos if s.tokens)


# --------------------------------------------------------------------------------------------------
# Prompts: which question a world prompt asks (the templates of study.world.language).


def parse_prompt(prompt: str, spec: WorldSpec) -> dict:
    """``{"kind": "describe"|"exist"|"color"|"count"|"relation", ...}`` for a world prompt.

    ``exist`` / ``color`` / ``count`` add ``object`` (canonical category); ``relation`` adds ``a``, ``rel``,
    ``b``. A prompt matching no short-QA template (the describe prompts, or any free text) is
    ``describe``. Matching is on the world's templates (:mod:`study.world.language`), object words through
    the mention lexicon (synonyms and plurals included).
    """
    from study.world import language

    lexicon = spec.word_to_category()
    toks = sentences(prompt)
    t = [w for s in toks for w in s]

    def match(template: str) -> dict | None:
        pat = template.split()
        out: dict = {}
        i = 0
        for p in pat:
            if p.startswith("{"):
                key = p.strip("{}")
                if key == "rel":
                    for r in RELATIONS:
                        k = len(r.split())
                        if t[i : i + k] == r.split():
                            out[key] = r
                            i += k
                            break
                    else:
                        return None
                    continue
                if i >= len(t) or t[i] not in lexicon:
                    return None
                out[key] = lexicon[t[i]]
                i += 1
            else:
                if i >= len(t) or t[i] != p:
                    return None
                i += 1
        return out if i == len(t) else None

    for tpl in language.EXIST_PROMPTS:
        m = match(tpl)
        if m:
            return {"kind": "exist", "object": m["name"]}
    m = match(language.COLOR_PROMPT)
    if m:
        return {"kind": "color", "object": m["name"]}
    m = match(language.COUNT_PROMPT)
    if m:
        return {"kind": "count", "object": m["plural"]}
    m = match(language.RELATION_PROMPT)
    if m:
        return {"kind": "relation", "a": m["a"], "rel": m["rel"], "b": m["b"]}
    return {"kind": "describe"}


def qa_grade(q: dict, answer: str, scene: Scene, spec: WorldSpec) -> int:
    """+1 correct, -1 hallucinated (a false claim), 0 unparseable, for a short-QA prompt ``q``.

    exist     POPE's parser (:func:`study.eval.pope.pope_parse`) against presence; empty answer = 0.
    color     present object: :func:`study.eval.typed_qa.grade` ("attribute") when the object is unique;
              with several instances, correct iff the colour words are a non-empty subset of the
              instances' colours. Absent object: ``grade("adversarial")`` (a denial is correct).
    count     ``grade("count")`` against the true count (0 for an absent object).
    relation  ``grade("relation")`` against :func:`relation_true`.
    """
    from study.eval.mentions import denied_categories, tokenize
    from study.eval.pope import pope_parse
    from study.eval.typed_qa import grade, parse_colors

    kind = q["kind"]
    if not tokenize(answer):
        return 0
    if kind == "exist":
        expected = "yes" if q["object"] in scene.categories else "no"
        return 1 if pope_parse(answer) == expected else -1
    if kind == "color":
        obj = q["object"]
        inst = [o for o in scene.objects if o.category == obj]
        if not inst:
            correct, halluc = grade("adversarial", answer, "absent", obj, spec)
        elif len(inst) == 1:
            correct, halluc = grade("attribute", answer, inst[0].color, obj, spec)
        else:
            colors = parse_colors(answer, spec)
            if colors:
                correct = colors <= {o.color for o in inst}
                halluc = not correct
            else:
                correct, halluc = False, obj in denied_categories(answer, spec)
    elif kind == "count":
        correct, halluc = grade("count", answer, scene.count(q["object"]), q["object"], spec)
    elif kind == "relation":
        expected = "yes" if relation_true(scene, q["a"], q["rel"], q["b"]) else "no"
        correct, halluc = grade("relation", answer, expected, q["a"], spec)
    else:
        raise ValueError(f"qa_grade needs a short-QA prompt, got kind {kind!r}")
    return 1 if correct else (-1 if halluc else 0)


def gt_answer(q: dict, scene: Scene, spec: WorldSpec) -> str:
    """The world's template answer to short-QA prompt ``q`` (what the SFT corpus would say)."""
    from study.world import language

    kind = q["kind"]
    if kind == "exist":
        return language.existence_qa(q["object"], q["object"] in scene.categories)[1]
    if kind == "color":
        return language.color_qa(scene, q["object"])[1]
    if kind == "count":
        return language.count_qa(spec, scene, q["object"])[1]
    if kind == "relation":
        holds = relation_true(scene, q["a"], q["rel"], q["b"])
        ans = (
            f"yes , the {q['a']} is {q['rel']} the {q['b']} ."
            if holds
            else f"no , the {q['a']} is not {q['rel']} the {q['b']} ."
        )
        return ans
    raise ValueError(f"gt_answer needs a short-QA prompt, got kind {kind!r}")
