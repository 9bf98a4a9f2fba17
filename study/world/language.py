"""The world's language: description and question/answer templates.

Conventions (the tokenizer relies on them): lower case, every token separated by one space,
punctuation (``.`` ``,`` ``?``) as its own token. Sentences end with `` .``.
"""

from __future__ import annotations

import numpy as np

from study.world.phrases import NUMBER_WORDS, RELATIONS, position_names
from study.world.scenes import Scene, SceneObject
from study.world.spec import WorldSpec

DESCRIBE_PROMPTS = (
    "describe the image in detail .",
    "what do you see in this picture ?",
    "give a detailed description of the image .",
)
INTRO_TEMPLATES = ("this is a {ctx} scene .", "the image shows a {ctx} scene .")
# no positions: what the scene holds, as a list (words of the other templates only: the vocabulary is fixed)
LIST_TEMPLATE = "there is {items} ."
SUMMARY_TEMPLATE = "this is a {ctx} scene . " + LIST_TEMPLATE  # the summary that opens a description
SUMMARY_PLACES = ("first", "last")
LIST_OFF_CONTEXT = ("last", "anywhere")  # where a list names the categories foreign to the scene's context
OBJECT_TEMPLATES = (
    "there is a {size} {color} {name} at the {pos} .",
    "a {size} {color} {name} is at the {pos} .",
    "i can see a {size} {color} {name} at the {pos} .",
)
POSITION_FIRST_TEMPLATES = (  # the place first, then what is there (grounded-caption style)
    "at the {pos} there is a {size} {color} {name} .",
    "at the {pos} i can see a {size} {color} {name} .",
)
RELATION_TEMPLATE = "the {a} is {rel} the {b} ."
EXIST_PROMPTS = (
    "is there a {name} in the image ?",
    "is there a {name} in this picture ?",
    "does the image contain a {name} ?",
)
COLOR_PROMPT = "what color is the {name} ?"
COUNT_PROMPT = "how many {plural} are there ?"
RELATION_PROMPT = "is the {a} {rel} the {b} ?"
ABSENT_ANSWER = "there is no {name} in the image ."


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def object_word(spec: WorldSpec, category: str, rng: np.random.Generator | None, synonym_prob: float) -> str:
    cat = spec.categories[category]
    if rng is not None and cat.synonyms and rng.random() < synonym_prob:
        return _pick(rng, cat.synonyms)
    return cat.name


def object_sentence(
    spec: WorldSpec, obj: SceneObject, rng: np.random.Generator, synonym_prob: float, position_first_prob: float = 0.0
) -> str:
    """One object's sentence; with probability ``position_first_prob`` its position comes first ("at the top
    left there is a ..."), otherwise last. At 0 no extra random number is drawn (streams unchanged)."""
    first = position_first_prob > 0 and rng.random() < position_first_prob
    return _pick(rng, POSITION_FIRST_TEMPLATES if first else OBJECT_TEMPLATES).format(
        size=obj.size, color=obj.color, name=object_word(spec, obj.category, rng, synonym_prob), pos=obj.position
    )


def describe(
    spec: WorldSpec,
    scene: Scene,
    rng: np.random.Generator,
    *,
    synonym_prob: float = 0.2,
    noise_rate: float = 0.0,
    relation_prob: float = 0.5,
    position_first_prob: float = 0.0,
    summary_prob: float = 0.0,
    summary_place: str = "first",
    list_off_context: str = "last",
) -> tuple[str, str | None]:
    """A detailed description of ``scene`` in reading order.

    With probability ``summary_prob`` it holds a summary: the scene's categories as a list with no positions,
    most co-occurring first. ``summary_place`` ``first``: the summary opens the description instead of the
    intro (``this is a kitchen scene . there is a cup , two plates , a fork .``), so the list is written
    before any cell is looked at; ``last``: the usual intro and cell sentences come first and the list
    (``there is ... .``) closes the description, a recap written after every cell. A noisy absent object then joins that list only, with no cell of its
    own, as an unanchored caption names what a scene "usually" has. At ``summary_prob`` 0 no extra random
    number is drawn (streams unchanged). ``list_off_context`` orders the list (:func:`list_items`).

    With probability ``noise_rate`` the description also mentions one *absent* object from the scene's
    context, drawn in proportion to its co-occurrence probability and placed in a free cell in reading
    order, so it reads exactly like a real mention. This models instruction data that describes what a
    scene "usually" has (LLaVA-Instruct style). Returns ``(text, inserted_category_or_None)``.
    """
    if summary_place not in SUMMARY_PLACES:
        raise ValueError(f"summary_place must be one of {SUMMARY_PLACES}, got {summary_place!r}")
    if list_off_context not in LIST_OFF_CONTEXT:
        raise ValueError(f"list_off_context must be one of {LIST_OFF_CONTEXT}, got {list_off_context!r}")
    objs = list(scene.objects)
    inserted = None
    summary = summary_prob > 0 and rng.random() < summary_prob
    if summary and noise_rate > 0 and rng.random() < noise_rate:
        ctx = spec.contexts[scene.context]
        absent = [c for c in ctx.objects if c not in scene.categories]
        if absent:
            w = np.array([ctx.objects[c] for c in absent])
            inserted = absent[int(rng.choice(len(absent), p=w / w.sum()))]
    elif not summary and noise_rate > 0 and rng.random() < noise_rate:
        ctx = spec.contexts[scene.context]
        absent = [c for c in ctx.objects if c not in scene.categories]
        free = [
            (r, c) for r in range(spec.grid) for c in range(spec.grid) if all((o.row, o.col) != (r, c) for o in objs)
        ]
        if absent and free:
            w = np.array([ctx.objects[c] for c in absent])
            inserted = absent[int(rng.choice(len(absent), p=w / w.sum()))]
            r, c = free[int(rng.integers(len(free)))]
            fake = SceneObject(
                -1,
                inserted,
                spec.categories[inserted].color,
                _pick(rng, list(spec.sizes)),
                r,
                c,
                spec.position_name(r, c),
                False,
            )
            objs = sorted(objs + [fake], key=lambda o: (o.row, o.col))
    parts = []
    if summary and summary_place == "first":
        items = list_items(spec, scene, inserted, rng, list_off_context)
        parts.append(SUMMARY_TEMPLATE.format(ctx=scene.context, items=items))
    elif rng.random() < 0.8:
        parts.append(_pick(rng, INTRO_TEMPLATES).format(ctx=scene.context))
    parts += [object_sentence(spec, o, rng, synonym_prob, position_first_prob) for o in objs]
    if rng.random() < relation_prob:
        rel = relation_fact(scene, rng)
        if rel is not None:
            parts.append(RELATION_TEMPLATE.format(**rel))
    if summary and summary_place == "last":
        parts.append(LIST_TEMPLATE.format(items=list_items(spec, scene, inserted, rng, list_off_context)))
    return " ".join(parts), inserted


def list_items(
    spec: WorldSpec,
    scene: Scene,
    extra: str | None = None,
    rng: np.random.Generator | None = None,
    off_context: str = "last",
) -> str:
    """Each category of ``scene`` (and ``extra``) once with its count, ``a cup , two plates , a fork``.

    The context's own categories come in falling co-occurrence probability. The others (an off-context
    object: prior 0) follow them in the spec's order at ``off_context`` ``last``, so the list's final slot
    is where a foreign category goes whenever the scene has one. At ``anywhere`` each of them is inserted
    at a uniform random slot of the list built so far (one ``rng.integers`` per foreign category; none
    drawn when the scene has none), so no slot is the foreign one's: whether the list names one must come
    from the cells it recaps, not from the list's length.
    """
    if off_context not in LIST_OFF_CONTEXT:
        raise ValueError(f"list_off_context must be one of {LIST_OFF_CONTEXT}, got {off_context!r}")
    prior = spec.contexts[scene.context].objects
    cats = sorted(
        set(scene.categories) | ({extra} if extra else set()),
        key=lambda c: (-prior.get(c, 0.0), spec.category_names.index(c)),
    )
    if off_context == "anywhere":
        if rng is None:
            raise ValueError("list_off_context 'anywhere' needs an rng")
        ordered = [c for c in cats if prior.get(c, 0.0) > 0]
        for c in (c for c in cats if prior.get(c, 0.0) <= 0):
            ordered.insert(int(rng.integers(len(ordered) + 1)), c)
        cats = ordered
    words = []
    for c in cats:
        n = max(scene.count(c), 1)
        cat = spec.categories[c]
        words.append(f"a {cat.name}" if n == 1 else f"{NUMBER_WORDS[n]} {cat.plural[cat.name]}")
    return " , ".join(words)


def unique_objects(scene: Scene) -> list[SceneObject]:
    return [o for o in scene.objects if scene.count(o.category) == 1]


def relation_fact(scene: Scene, rng: np.random.Generator) -> dict | None:
    """A true relation between two objects whose categories are unique in the scene."""
    uniq = {o.id: o for o in unique_objects(scene)}
    rels = [r for r in scene.relations if r["subject"] in uniq and r["object"] in uniq]
    if not rels:
        return None
    r = rels[int(rng.integers(len(rels)))]
    return {"a": uniq[r["subject"]].category, "rel": r["relation"], "b": uniq[r["object"]].category}


def relation_holds(scene: Scene, a: str, rel: str, b: str) -> bool:
    ids = {o.category: o.id for o in unique_objects(scene)}
    if a not in ids or b not in ids:
        return False
    return any(r["subject"] == ids[a] and r["object"] == ids[b] and r["relation"] == rel for r in scene.relations)


def existence_qa(category: str, present: bool, rng: np.random.Generator | None = None) -> tuple[str, str]:
    prompt = (_pick(rng, EXIST_PROMPTS) if rng is not None else EXIST_PROMPTS[0]).format(name=category)
    answer = f"yes , there is a {category} ." if present else f"no , there is no {category} ."
    return prompt, answer


def color_qa(scene: Scene, category: str) -> tuple[str, str]:
    prompt = COLOR_PROMPT.format(name=category)
    objs = [o for o in scene.objects if o.category == category]
    if not objs:
        return prompt, ABSENT_ANSWER.format(name=category)
    return prompt, f"the {category} is {objs[0].color} ."


def count_qa(spec: WorldSpec, scene: Scene, category: str) -> tuple[str, str]:
    plural = spec.categories[category].plural[category]
    n = scene.count(category)
    prompt = COUNT_PROMPT.format(plural=plural)
    if n == 0:
        return prompt, f"there are no {plural} ."
    if n == 1:
        return prompt, f"there is one {category} ."
    return prompt, f"there are {NUMBER_WORDS[n]} {plural} ."


def relation_qa(scene: Scene, a: str, rel: str, b: str) -> tuple[str, str]:
    prompt = RELATION_PROMPT.format(a=a, rel=rel, b=b)
    if relation_holds(scene, a, rel, b):
        return prompt, f"yes , the {a} is {rel} the {b} ."
    return prompt, f"no , the {a} is not {rel} the {b} ."


def split_sentences(text: str) -> list[str]:
    """Split on the world's sentence terminators (`` .`` / ``?``); text without one is one sentence."""
    out, cur = [], []
    for tok in text.split():
        cur.append(tok)
        if tok in (".", "?", "!"):
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def vocabulary(spec: WorldSpec) -> list[str]:
    """Every word the world's language can produce (the tokenizer's vocabulary, sorted)."""
    words: set[str] = set()
    templates = (
        *DESCRIBE_PROMPTS,
        *INTRO_TEMPLATES,
        *OBJECT_TEMPLATES,
        *POSITION_FIRST_TEMPLATES,
        RELATION_TEMPLATE,
        *EXIST_PROMPTS,
        COLOR_PROMPT,
        COUNT_PROMPT,
        RELATION_PROMPT,
        ABSENT_ANSWER,
        "yes , there is a no there is no",
        "the is not there are one",
    )
    for t in templates:
        words.update(w for w in t.split() if not w.startswith("{"))
    words.update(NUMBER_WORDS)
    words.update(spec.contexts)
    words.update(spec.colors)
    words.update(spec.sizes)
    words.update(w for r in RELATIONS for w in r.split())
    words.update(w for pos in position_names(spec) for w in pos.split())
    for cat in spec.categories.values():
        words.update(cat.names)
        words.update(cat.plural.values())
    return sorted(words)
