"""RLHF-V recipe (Yu et al. 2023b; paper Table 1): rejected = the SFT model's answer, chosen = its correction.

RLHF-V's annotators corrected hallucinated segments of model answers; here the correction is exact,
from the scene graph, and segment-level (the rest of the answer is kept word for word), using the claim
checker of :mod:`study.prefs.facts`:

Descriptions (and any non-QA prompt), sentence by sentence:

    hallucinated object, single-object sentence
        if the sentence's position phrase is the cell of a present object no other sentence describes,
        the object word, colour and size are replaced by that object's (the "it is a cup, not a plate"
        fix); otherwise the sentence is dropped.
    hallucinated object in a relation sentence     the sentence is dropped.
    hallucinated object in any other sentence      the hallucinated words are deleted.
    wrong colour / size / position                 replaced by those of the closest instance (fewest
                                                   mismatches); if that instance is already described by an
                                                   earlier sentence, the sentence is dropped (duplicate).
    wrong count                                    the number word (and is/are, noun number) is fixed.
    false relation                                 replaced by a relation that holds between the two objects
                                                   (its inverse first); a wrongly negated one loses "not";
                                                   an object related to itself: the sentence is cut before
                                                   the relation phrase.
    false denial ("there is no cup", cup present)  the sentence is dropped.
    wrong context word                             replaced by the scene's context.

Sentences that state nothing checkable (intros, garbage) are kept as they are. The loop repeats until
:func:`~study.prefs.facts.check_claims` finds no error (at most 3 passes; a sentence still in error after
that is dropped), so a corrected answer has no hallucinated object and no false claim.

Short QA (existence / colour / count / relation prompts): an answer the oracle does not grade correct
(:func:`~study.prefs.facts.qa_grade` != 1, i.e. hallucinated or unparseable) or that holds any false claim
(e.g. "no , the sign is not below the bus ." when it is below) is replaced by the world's template answer.
Note the oracle's QA score only grades the asked claim, so a pair fixed for an extra claim is an oracle tie.

Samples that need no correction (corrected == original) are skipped, as RLHF-V only contains corrected
pairs; ``overdraw`` (default 3) candidates are answered so that ``n`` pairs usually remain.
``source_ids``: ``{"chosen": "correction:scene_graph", "rejected": "{model_id}:sample", "edits": [...],
"kind", "sample_seed"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from study.prefs.facts import (
    SentenceInfo,
    check_claims,
    gt_answer,
    parse_prompt,
    parse_sentence,
    qa_grade,
    relation_true,
)
from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import (
    PoolMember,
    answer_items,
    candidates,
    corpus_items,
    kinds_for,
    scene_map,
    subsample,
    world_spec,
)
from study.world.phrases import INVERSE, NUMBER_WORDS, RELATIONS
from study.world.scenes import Scene
from study.world.spec import WorldSpec

RECIPE = "rlhfv"


@dataclass
class Correction:
    text: str
    edits: list[dict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.edits)


def _singular_plural(spec: WorldSpec, word: str) -> tuple[str, str, bool]:
    """(singular, plural, word_is_plural) of an object word."""
    for cat in spec.categories.values():
        for name, pl in cat.plural.items():
            if word == name:
                return name, pl, False
            if word == pl:
                return name, pl, True
    return word, word, False


def _fix_object(info: SentenceInfo, o, spec: WorldSpec) -> list[str]:
    toks = list(info.tokens)
    for i in info.colors:
        toks[i] = o.color
    for i in info.sizes:
        toks[i] = o.size
    if info.positions:
        a, b = info.positions[0]
        toks = toks[:a] + o.position.split() + toks[b:]
        for a2, b2 in reversed(info.positions[1:]):  # extra position phrases: drop them (shifted indices)
            shift = len(o.position.split()) - (b - a)
            del toks[a2 + shift : b2 + shift]
    return toks


def _fix_count(info: SentenceInfo, scene: Scene, spec: WorldSpec) -> list[str] | None:
    n = scene.count(info.category)
    if n < 1 or n >= len(NUMBER_WORDS):
        return None
    toks = list(info.tokens)
    i = info.count
    toks[i] = NUMBER_WORDS[n]
    toks[i - 1] = "is" if n == 1 else "are"
    for j, cat in info.asserted:
        if cat == info.category:
            sing, pl, _ = _singular_plural(spec, toks[j])
            toks[j] = sing if n == 1 else pl
    return toks


def _fix_relation(info: SentenceInfo, scene: Scene) -> tuple[list[str] | None, str]:
    r = info.relation
    toks = list(info.tokens)
    if r["negated"]:  # "a is not REL b" but REL holds: drop the "not"
        del toks[r["start"] - 1]
        return toks, "relation_unnegate"
    for rel in (INVERSE[r["rel"]], *RELATIONS):
        if relation_true(scene, r["a"], rel, r["b"]):
            return toks[: r["start"]] + rel.split() + toks[r["end"] :], "relation_fix"
    if r["a"] == r["b"]:  # an object "related" to itself (garbage): cut the sentence before the relation
        head = toks[: r["start"]]
        while head and head[-1] in ("is", "are", "not"):
            head.pop()
        return (head + ["."] if head else None), "relation_cut"
    return None, "drop_false_relation"


def _correct_sentences(infos: list[SentenceInfo], scene: Scene, spec: WorldSpec) -> tuple[list[list[str]], list[dict]]:
    edits: list[dict] = []
    cell = {o.position: o for o in scene.objects}
    described0 = {id(s.best) for s in infos if s.kind == "object" and s.best is not None and not s.errors}
    mentioned = {c for s in infos for _, c in s.asserted}
    used: set[int] = set()
    described: set[int] = set()
    out: list[list[str]] = []
    for s in infos:
        halluc = [c for _, c in s.asserted if c not in scene.categories]
        toks: list[str] | None = list(s.tokens)
        if halluc:
            if s.kind == "object":
                target = None
                for span in s.positions:
                    o = cell.get(s.phrase(span))
                    if o is not None and id(o) not in described0 and id(o) not in used and o.category not in mentioned:
                        target = o
                        break
                if target is not None:
                    used.add(id(target))
                    toks = _fix_object(s, target, spec)
                    j = next(i for i, c in s.asserted if c == s.category)
                    _, _, plural = _singular_plural(spec, s.tokens[j])
                    toks[j] = spec.categories[target.category].plural[target.category] if plural else target.category
                    edits.append({"type": "object_replace", "removed": s.category, "object": target.category})
                    described.add(id(target))
                else:
                    toks = None
                    edits.append({"type": "drop_hallucination", "object": s.category})
            elif s.kind == "relation":
                toks = None
                edits.append({"type": "drop_hallucination", "object": halluc[0]})
            else:
                drop = {i for i, c in s.asserted if c not in scene.categories}
                toks = [t for i, t in enumerate(s.tokens) if i not in drop]
                edits.append({"type": "remove_words", "objects": halluc})
            out.append(toks)
            continue
        if "false_denial" in s.errors:
            out.append(None)
            edits.append({"type": "drop_false_denial"})
            continue
        if "wrong_context" in s.errors:
            toks[s.context] = scene.context
            edits.append({"type": "context_fix"})
        if "false_relation" in s.errors:
            toks2, how = _fix_relation(s, scene)
            edits.append({"type": how})
            toks = None if toks2 is None else toks2
            out.append(toks)
            continue
        if s.kind == "object" and s.best is not None:
            attr_errs = [e for e in s.errors if e in ("wrong_color", "wrong_size", "wrong_position")]
            if attr_errs:
                if id(s.best) in described or id(s.best) in described0:
                    out.append(None)
                    edits.append({"type": "drop_duplicate", "object": s.category})
                    continue
                toks = _fix_object(parse_sentence(toks, spec), s.best, spec)
                edits.append({"type": "attribute_fix", "object": s.category, "errors": attr_errs})
            if "wrong_count" in s.errors:
                info2 = parse_sentence(toks, spec)
                fixed = _fix_count(info2, scene, spec) if info2.count is not None else None
                toks = fixed
                edits.append({"type": "count_fix" if fixed else "drop_wrong_count", "object": s.category})
            if toks is not None:
                described.add(id(s.best))
        out.append(toks)
    return [t for t in out if t], edits


def correct_description(text: str, scene: Scene, spec: WorldSpec, max_passes: int = 3) -> Correction:
    """Sentence-level correction of any answer against the scene graph (module docstring)."""
    from study.eval.mentions import sentences

    cur, edits = text, []
    for _ in range(max_passes):
        rep = check_claims(cur, scene, spec)
        if rep.n_errors == 0:
            break
        toks, e = _correct_sentences(rep.sentences, scene, spec)
        edits += e
        cur = " ".join(" ".join(t) for t in toks)
    rep = check_claims(cur, scene, spec)
    if rep.n_errors:
        keep = [s for s in rep.sentences if not s.errors]
        edits.append({"type": "drop_unfixable", "n": len(rep.sentences) - len(keep)})
        cur = " ".join(s.text for s in keep)
    if cur.strip() == " ".join(w for s in sentences(text) for w in s).strip():
        return Correction(text, [])
    return Correction(cur, edits)


def correct_answer(text: str, prompt: str, scene: Scene, spec: WorldSpec) -> Correction:
    """The corrected answer to ``prompt`` (QA: template answer when not correct; module docstring)."""
    q = parse_prompt(prompt, spec)
    if q["kind"] != "describe":
        grade, n_err = qa_grade(q, text, scene, spec), check_claims(text, scene, spec).n_errors
        if grade != 1 or n_err:
            return Correction(gt_answer(q, scene, spec), [{"type": "qa_rewrite", "grade": grade, "errors": n_err}])
        return Correction(text, [])
    return correct_description(text, scene, spec)


def rlhfv_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    model=None,
    processor=None,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    model_id: str = "sft",
    do_sample: bool = True,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    batch_size: int = 64,
    overdraw: float = 3.0,
    answer_fn: Callable | None = None,
    spec: WorldSpec | None = None,
) -> list[dict]:
    """RLHF-V-style rows (module docstring).

    Answers come from ``model``/``processor`` (sampled with ``seed``), or from ``answer_fn(items) ->
    list[str]`` when given (items: ``{"scene_id", "prompt", ...}``).
    """
    spec = spec or world_spec(world)
    scenes = scene_map(world, (split,))
    items = candidates(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed, overdraw)
    if answer_fn is not None:
        answers = list(answer_fn(items))
    else:
        answers = answer_items(
            PoolMember(model_id, model, processor),
            world,
            items,
            seed=seed,
            do_sample=do_sample,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
    kept = []
    for it, ans in zip(items, answers):
        ans = ans.strip()
        if not ans:
            continue
        c = correct_answer(ans, it["prompt"], scenes[it["scene_id"]], spec)
        if c.changed and c.text.strip() and c.text.strip() != ans:
            kept.append((it, ans, c))
    rows = []
    for it, ans, c in subsample(kept, n, seed):
        src = {
            "chosen": "correction:scene_graph",
            "rejected": f"{model_id}:sample",
            "edits": c.edits,
            "kind": it["kind"],
            "sample_seed": seed,
        }
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=c.text.strip(),
                rejected=ans,
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
            )
        )
    return validate_rows(rows, world)
