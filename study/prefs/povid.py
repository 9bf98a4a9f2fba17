"""POVID recipe (Zhou et al. 2024; paper Table 1, §3.3): chosen = SFT ground truth, rejected = its corruption.

Rejected #1: plausible hallucinations injected into the chosen answer, standing in for GPT-4V's
corruption prompt (objects, attributes, counts, relations; the paper's Table 13). All corruptions
are edits of the chosen text in the world's own templates, so the rejected answer reads exactly like
a real one (App. C.1: easily spotted corruptions let the policy hack the signal):

    object_replace  the object word of a sentence about a present object becomes a *plausible absent*
                    object (same number, plural kept);
    object_insert   a new object sentence about a plausible absent object at a free grid cell, put in
                    reading order among the object sentences;
    attribute       a colour (to a colour no instance of that category has), size (small <-> large) or
                    position (to a cell holding no instance of that category) of an object sentence;
    count           an extra instance of a present category at a free cell (descriptions), or a count
                    answer off by one (count questions);
    relation        a relation sentence inverted (left of <-> right of, above <-> below), or a false
                    relation sentence appended when the answer has none.

Short-QA answers are corrupted in kind: existence and relation answers flip yes/no, colour answers get a
wrong colour (or, for an absent object, a colour: asserting the object), count answers go off by one.
(``types`` restricts the description edits only; a short-QA answer always gets its own kind of edit.)

Plausible absent object: for a scene with present categories P, an absent category c is drawn with
probability proportional to ``sum_{p in P} C[p, c] + 1e-3`` with ``C`` the train co-occurrence matrix
(:func:`study.world.scenes.cooccurrence`): the POPE-adversarial notion of what "usually" goes with the
scene, excluding every category the answer already mentions.

Each answer gets 1 edit, or 2 with probability 1/2 for descriptions when ``max_edits >= 2``. Every edit
is verified with the exact checker: it must add at least one error of :func:`study.prefs.facts.
check_claims` AND lower the oracle score (:class:`study.prefs.annotators.OracleAnnotator`); an edit that
does not is redrawn (other type / other target), and a row with no valid edit is skipped.

Rejected #2 (optional, for Avg-DPO, the paper's Eq. 5): noisy-image teacher forcing. The image is diffused
``noise_steps`` (POVID: 500) forward steps (schedule in :func:`add_diffusion_noise`), the model reads
the noised image, the prompt and the chosen answer, and at every position t of the chosen answer the
token predicted from the *ground-truth* prefix y+_<t is taken (argmax, or sampled with ``tf_mode=
"sample"``); special tokens are excluded, so the result has exactly one word per chosen word. If it
equals the chosen answer, up to 3 sampled retries are made; if they all equal it, ``rejected_2 = ""``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from study.prefs.facts import SentenceInfo, check_claims, check_sentence, parse_prompt, parse_sentence, relation_true
from study.prefs.schema import make_row, validate_rows
from study.prefs.sources import candidates, corpus_items, kinds_for, subsample, world_spec
from study.world import language
from study.world.phrases import INVERSE, NUMBER_WORDS, RELATIONS
from study.world.scenes import Scene, cooccurrence
from study.world.spec import WorldSpec

CORRUPTION_TYPES = ("object_replace", "object_insert", "attribute", "count", "relation")
RECIPE = "povid"


# --------------------------------------------------------------------------------------------------
# Diffusion noise (POVID's add_diffusion_noise). study.bdhs.noise owns it when present.


def _local_betas(n_total: int = 1000) -> np.ndarray:
    k = np.arange(n_total, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(-6.0 + 12.0 * k / n_total))) * (5e-3 - 1e-5) + 1e-5


def _local_add_diffusion_noise(image, noise_steps: int, rng: np.random.Generator):
    """x_N = sqrt(abar_N) x_0 + sqrt(1 - abar_N) eps in [-1, 1] pixel space, abar_N = prod_{k<N}(1 - beta_k),
    beta_k = sigmoid(-6 + 12 k / 1000) (5e-3 - 1e-5) + 1e-5; clipped and mapped back to uint8."""
    from PIL import Image

    if not 0 <= int(noise_steps) <= 1000:
        raise ValueError(f"noise_steps must be in [0, 1000], got {noise_steps!r}")
    if noise_steps == 0:
        return image
    abar = float(np.prod(1.0 - _local_betas()[: int(noise_steps)]))
    x0 = np.asarray(image.convert("RGB"), dtype=np.float64) / 127.5 - 1.0
    xn = np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * rng.standard_normal(x0.shape)
    return Image.fromarray(np.rint((np.clip(xn, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8))


try:  # the BDHS package's implementation of the same formula, when it is importable
    from study.bdhs.noise import add_diffusion_noise  # type: ignore
except Exception:  # pragma: no cover - depends on the parallel package
    add_diffusion_noise = _local_add_diffusion_noise


# --------------------------------------------------------------------------------------------------
# Corruption


@dataclass
class Corruption:
    text: str
    edits: list[dict] = field(default_factory=list)


def plausible_absent(
    scene: Scene, spec: WorldSpec, cooc: np.ndarray, rng: np.random.Generator, exclude: set[str] = frozenset()
) -> str | None:
    """An absent category drawn by co-occurrence with the scene's present categories (module docstring)."""
    cats = spec.category_names
    idx = {c: i for i, c in enumerate(cats)}
    pool = [c for c in cats if c not in scene.categories and c not in exclude]
    if not pool:
        return None
    pres = [idx[c] for c in scene.categories]
    w = np.array([cooc[pres, idx[c]].sum() + 1e-3 for c in pool])
    return pool[int(rng.choice(len(pool), p=w / w.sum()))]


def _word_for(spec: WorldSpec, category: str, like: str, rng: np.random.Generator) -> str:
    """A word of ``category`` in the same number (singular/plural) as the word ``like``."""
    cat = spec.categories[category]
    plural = like in {p for c in spec.categories.values() for p in c.plural.values()} and like not in {
        n for c in spec.categories.values() for n in c.names
    }
    name = cat.name if not cat.synonyms or rng.random() >= 0.2 else cat.synonyms[int(rng.integers(len(cat.synonyms)))]
    return cat.plural[name] if plural else name


def _free_cells(scene: Scene, spec: WorldSpec, category: str | None = None) -> list[tuple[int, int]]:
    """Cells holding no object (``category`` None) or no instance of ``category``."""
    taken = {(o.row, o.col) for o in scene.objects if category is None or o.category == category}
    if category is not None:
        taken |= {(o.row, o.col) for o in scene.objects}
    return [(r, c) for r in range(spec.grid) for c in range(spec.grid) if (r, c) not in taken]


def _cell_of(info: SentenceInfo, spec: WorldSpec) -> int | None:
    names = {spec.position_name(r, c): r * spec.grid + c for r in range(spec.grid) for c in range(spec.grid)}
    for s in info.positions:
        if info.phrase(s) in names:
            return names[info.phrase(s)]
    return None


def _insert_reading_order(
    infos: list[SentenceInfo], new: SentenceInfo, cell: int, spec: WorldSpec
) -> list[SentenceInfo]:
    """Insert ``new`` before the first object sentence whose cell comes after ``cell`` (else after the
    last object sentence, else after an intro sentence)."""
    last_obj = None
    for k, s in enumerate(infos):
        if s.kind == "object":
            c = _cell_of(s, spec)
            if c is not None and c > cell:
                return infos[:k] + [new] + infos[k:]
            last_obj = k
    if last_obj is None:
        k = 1 if infos and infos[0].context is not None else 0
        return infos[:k] + [new] + infos[k:]
    return infos[: last_obj + 1] + [new] + infos[last_obj + 1 :]


def object_sentence(
    spec: WorldSpec, category: str, color: str, size: str, pos: str, rng: np.random.Generator, word: str | None = None
) -> list[str]:
    tpl = language.OBJECT_TEMPLATES[int(rng.integers(len(language.OBJECT_TEMPLATES)))]
    return tpl.format(size=size, color=color, name=word or category, pos=pos).split()


def _parse(text: str, spec: WorldSpec) -> list[SentenceInfo]:
    from study.eval.mentions import sentences

    return [parse_sentence(t, spec) for t in sentences(text)]


def _join(infos: list[SentenceInfo]) -> str:
    return " ".join(" ".join(s.tokens) for s in infos if s.tokens)


def _mentioned(infos: list[SentenceInfo]) -> set[str]:
    return {c for s in infos for _, c in (*s.asserted, *s.denied)}


def _edit_object_replace(infos, scene, spec, cooc, rng):
    cands = [k for k, s in enumerate(infos) if s.kind == "object" and s.category in scene.categories]
    if not cands:
        return None
    k = cands[int(rng.integers(len(cands)))]
    new_cat = plausible_absent(scene, spec, cooc, rng, exclude=_mentioned(infos))
    if new_cat is None:
        return None
    s = infos[k]
    i = next(i for i, c in s.asserted if c == s.category)
    toks = list(s.tokens)
    toks[i] = _word_for(spec, new_cat, toks[i], rng)
    out = list(infos)
    out[k] = parse_sentence(toks, spec)
    return out, {"type": "object_replace", "object": new_cat, "replaced": s.category}


def _edit_object_insert(infos, scene, spec, cooc, rng):
    new_cat = plausible_absent(scene, spec, cooc, rng, exclude=_mentioned(infos))
    free = _free_cells(scene, spec)
    if new_cat is None or not free:
        return None
    r, c = free[int(rng.integers(len(free)))]
    color = (
        spec.categories[new_cat].color if rng.random() < 0.6 else list(spec.colors)[int(rng.integers(len(spec.colors)))]
    )
    size = list(spec.sizes)[int(rng.integers(len(spec.sizes)))]
    toks = object_sentence(
        spec, new_cat, color, size, spec.position_name(r, c), rng, word=_word_for(spec, new_cat, new_cat, rng)
    )
    out = _insert_reading_order(list(infos), parse_sentence(toks, spec), r * spec.grid + c, spec)
    return out, {"type": "object_insert", "object": new_cat}


def _edit_attribute(infos, scene, spec, cooc, rng):
    cands = [
        (k, a)
        for k, s in enumerate(infos)
        if s.kind == "object" and s.category in scene.categories
        for a, present in (("color", s.colors), ("size", s.sizes), ("position", s.positions))
        if present
    ]
    if not cands:
        return None
    k, attr = cands[int(rng.integers(len(cands)))]
    s = infos[k]
    inst = [o for o in scene.objects if o.category == s.category]
    toks = list(s.tokens)
    if attr == "color":
        opts = [c for c in spec.colors if c not in {o.color for o in inst}]
        if not opts:
            return None
        for i in s.colors:
            toks[i] = opts[int(rng.integers(len(opts)))]
    elif attr == "size":
        opts = [z for z in spec.sizes if z not in {toks[i] for i in s.sizes}]
        if not opts:
            return None
        for i in s.sizes:
            toks[i] = opts[int(rng.integers(len(opts)))]
    else:
        free = _free_cells(scene, spec, s.category)
        if not free:
            return None
        r, c = free[int(rng.integers(len(free)))]
        a, b = s.positions[0]
        toks = toks[:a] + spec.position_name(r, c).split() + toks[b:]
    out = list(infos)
    out[k] = parse_sentence(toks, spec)
    return out, {"type": "attribute", "attribute": attr, "object": s.category}


def _edit_count(infos, scene, spec, cooc, rng):
    cands = [
        k for k, s in enumerate(infos) if s.kind == "object" and s.category in scene.categories and s.count is None
    ]
    if not cands:
        return None
    k = cands[int(rng.integers(len(cands)))]
    s = infos[k]
    free = _free_cells(scene, spec, s.category)
    if not free:
        return None
    r, c = free[int(rng.integers(len(free)))]
    ref = s.best or next(o for o in scene.objects if o.category == s.category)
    color = s.tokens[s.colors[0]] if s.colors else ref.color
    size = s.tokens[s.sizes[0]] if s.sizes else ref.size
    word = next(s.tokens[i] for i, cat in s.asserted if cat == s.category)
    if word not in spec.categories[s.category].names:  # a plural: use the singular form
        word = s.category
    toks = object_sentence(spec, s.category, color, size, spec.position_name(r, c), rng, word=word)
    out = _insert_reading_order(list(infos), parse_sentence(toks, spec), r * spec.grid + c, spec)
    return out, {"type": "count", "object": s.category}


def _edit_relation(infos, scene, spec, cooc, rng):
    rel_k = [k for k, s in enumerate(infos) if s.kind == "relation"]
    if rel_k:
        k = rel_k[int(rng.integers(len(rel_k)))]
        s = infos[k]
        r = s.relation
        toks = s.tokens[: r["start"]] + INVERSE[r["rel"]].split() + s.tokens[r["end"] :]
        out = list(infos)
        out[k] = parse_sentence(toks, spec)
        return out, {"type": "relation", "how": "invert"}
    uniq = sorted({o.category for o in language.unique_objects(scene)})
    pairs = [
        (a, b, rel) for a in uniq for b in uniq if a != b for rel in RELATIONS if not relation_true(scene, a, rel, b)
    ]
    if not pairs:
        return None
    a, b, rel = pairs[int(rng.integers(len(pairs)))]
    toks = language.RELATION_TEMPLATE.format(a=a, rel=rel, b=b).split()
    return list(infos) + [parse_sentence(toks, spec)], {"type": "relation", "how": "insert"}


EDITS = {
    "object_replace": _edit_object_replace,
    "object_insert": _edit_object_insert,
    "attribute": _edit_attribute,
    "count": _edit_count,
    "relation": _edit_relation,
}


def _qa_corruptions(
    q: dict, chosen: str, scene: Scene, spec: WorldSpec, rng: np.random.Generator
) -> list[tuple[str, dict]]:
    """Candidate corrupted answers to a short-QA prompt (wrong in kind; verified by the caller)."""
    from study.eval.pope import pope_parse
    from study.eval.typed_qa import parse_colors, parse_count

    kind = q["kind"]
    out = []
    if kind == "exist":
        x = q["object"]
        flip = pope_parse(chosen) == "yes"
        out.append((language.existence_qa(x, not flip)[1], {"type": "qa_exist_flip", "object": x}))
    elif kind == "color":
        x = q["object"]
        inst = [o for o in scene.objects if o.category == x]
        if inst:
            said = parse_colors(chosen, spec)
            opts = [c for c in spec.colors if c not in {o.color for o in inst} and c not in said]
            rng.shuffle(opts)
            out += [(f"the {x} is {c} .", {"type": "attribute", "attribute": "color", "object": x}) for c in opts[:2]]
        else:
            c = spec.categories[x].color
            out.append((f"the {x} is {c} .", {"type": "object_insert", "object": x}))
    elif kind == "count":
        x = q["object"]
        k = parse_count(chosen)
        k = scene.count(x) if k is None else k
        opts = [v for v in (k + 1, k - 1) if 0 <= v <= len(NUMBER_WORDS) - 1 and v != k]
        rng.shuffle(opts)
        plural = spec.categories[x].plural[x]
        for v in opts:
            text = (
                f"there are no {plural} ."
                if v == 0
                else (f"there is one {x} ." if v == 1 else f"there are {NUMBER_WORDS[v]} {plural} .")
            )
            out.append((text, {"type": "count", "object": x}))
    elif kind == "relation":
        a, rel, b = q["a"], q["rel"], q["b"]
        said_yes = pope_parse(chosen) == "yes"
        text = f"no , the {a} is not {rel} the {b} ." if said_yes else f"yes , the {a} is {rel} the {b} ."
        out.append((text, {"type": "relation", "how": "qa_flip"}))
    return out


def corrupt(
    text: str,
    prompt: str,
    scene: Scene,
    spec: WorldSpec,
    cooc: np.ndarray,
    rng: np.random.Generator,
    *,
    max_edits: int = 2,
    types: tuple[str, ...] = CORRUPTION_TYPES,
    oracle=None,
) -> Corruption | None:
    """A plausible hallucinated version of ``text`` (module docstring), or None if none is possible."""
    from study.prefs.annotators import OracleAnnotator

    oracle = oracle or OracleAnnotator(spec)
    unknown = set(types) - set(CORRUPTION_TYPES)
    if unknown:
        raise ValueError(f"unknown corruption types {sorted(unknown)}; known: {list(CORRUPTION_TYPES)}")

    def worse(new: str, old: str) -> bool:
        return check_claims(new, scene, spec).n_errors > check_claims(old, scene, spec).n_errors and oracle.score(
            scene, prompt, new
        ) < oracle.score(scene, prompt, old)

    q = parse_prompt(prompt, spec)
    if q["kind"] != "describe":
        for cand, edit in _qa_corruptions(q, text, scene, spec, rng):
            if cand.strip() != text.strip() and worse(cand, text):
                return Corruption(cand, [edit])
        return None
    n_edits = 1 + int(max_edits >= 2 and rng.random() < 0.5)
    cur, edits = text, []
    for _ in range(n_edits):
        order = list(types)
        rng.shuffle(order)
        for t in order:
            infos = [check_sentence(s, scene, spec) for s in _parse(cur, spec)]
            res = EDITS[t](infos, scene, spec, cooc, rng)
            if res is None:
                continue
            cand = _join(res[0])
            if cand.strip() != cur.strip() and worse(cand, cur):
                cur = cand
                edits.append(res[1])
                break
    return Corruption(cur, edits) if edits else None


# --------------------------------------------------------------------------------------------------
# Noisy-image teacher forcing (rejected_2)


def _special_ids(processor) -> list[int]:
    tok = processor.tokenizer
    ids = set(tok.all_special_ids)
    for t in ("USER:", "ASSISTANT:", "<image>"):
        i = tok.convert_tokens_to_ids(t)
        if i is not None and i != tok.unk_token_id:
            ids.add(i)
    return sorted(ids)


@torch.no_grad()
def teacher_forced_rejections(
    model,
    processor,
    images,
    prompts,
    chosen,
    *,
    noise_steps: int = 500,
    mode: str = "argmax",
    seed: int = 0,
    batch_size: int = 32,
    temperature: float = 1.0,
) -> list[str]:
    """Per row: the chosen answer re-predicted token by token from the noised image (module docstring)."""
    from study.world.corpus import conversation

    if mode not in ("argmax", "sample"):
        raise ValueError(f"mode must be 'argmax' or 'sample', got {mode!r}")
    if not (len(images) == len(prompts) == len(chosen)):
        raise ValueError("images, prompts and chosen must have the same length")
    tok = processor.tokenizer
    special = torch.tensor(_special_ids(processor))
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    noisy = [add_diffusion_noise(img, noise_steps, np.random.default_rng([seed, i])) for i, img in enumerate(images)]
    texts = [processor.apply_chat_template(conversation(p, c)) for p, c in zip(prompts, chosen)]
    eos_id = tok.eos_token_id
    out: list[str] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(texts), batch_size):
        sl = slice(start, start + batch_size)
        enc = processor(images=noisy[sl], text=texts[sl], return_tensors="pt", padding=True, padding_side="right")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu()
        logits[..., special] = float("-inf")
        for b, c in enumerate(chosen[sl]):
            ids = enc["input_ids"][b]
            n = int(enc["attention_mask"][b].sum())
            n_c = len(c.split())
            end = n - 1 if int(ids[n - 1]) == eos_id else n  # position of </s> (or the end)
            pos = torch.arange(end - n_c, end)
            lg = logits[b, pos - 1]
            if mode == "argmax":
                pred = lg.argmax(-1)
            else:
                pred = torch.multinomial(torch.softmax(lg / temperature, -1), 1, generator=g).squeeze(-1)
            out.append(" ".join(tok.convert_ids_to_tokens(pred.tolist())))
    model.train(was_training)
    return out


def noisy_rejections(
    model,
    processor,
    images,
    prompts,
    chosen,
    *,
    noise_steps: int = 500,
    mode: str = "argmax",
    seed: int = 0,
    batch_size: int = 32,
    retries: int = 3,
) -> list[str]:
    """:func:`teacher_forced_rejections` with sampled retries for rows equal to ``chosen`` ("" if all are)."""
    out = teacher_forced_rejections(
        model, processor, images, prompts, chosen, noise_steps=noise_steps, mode=mode, seed=seed, batch_size=batch_size
    )
    for t in range(retries):
        bad = [i for i, (o, c) in enumerate(zip(out, chosen)) if o.strip() == c.strip()]
        if not bad:
            break
        redo = teacher_forced_rejections(
            model,
            processor,
            [images[i] for i in bad],
            [prompts[i] for i in bad],
            [chosen[i] for i in bad],
            noise_steps=noise_steps,
            mode="sample",
            seed=seed + 1000 * (t + 1),
            batch_size=batch_size,
        )
        for i, o in zip(bad, redo):
            out[i] = o
    return ["" if o.strip() == c.strip() else o for o, c in zip(out, chosen)]


# --------------------------------------------------------------------------------------------------
# Recipe


def povid_recipe(
    world,
    *,
    n: int | None,
    seed: int,
    split: str = "train",
    prompt_source: str = "mixed",
    kinds=None,
    max_edits: int = 2,
    types: tuple[str, ...] = CORRUPTION_TYPES,
    model=None,
    processor=None,
    model_id: str = "sft",
    noise_steps: int = 500,
    tf_mode: str = "argmax",
    batch_size: int = 32,
    overdraw: float = 1.1,
    spec: WorldSpec | None = None,
) -> list[dict]:
    """POVID-style rows from ``split``'s SFT corpus (module docstring).

    ``model``/``processor`` (the SFT model) enable ``rejected_2`` (noisy-image teacher forcing);
    without them ``rejected_2`` is "". ``source_ids``: ``{"chosen": "corpus:{split}", "rejected":
    "povid_corruption", "edits": [...], "rejected_2": "noisy_tf:{model_id}:N={noise_steps}:{tf_mode}"}``.
    """
    spec = spec or world_spec(world)
    scenes = {s.scene_id: s for s in world.scenes(split)}
    cooc = cooccurrence(world.scenes("train"), spec.category_names)
    items = candidates(corpus_items(world, split, kinds_for(prompt_source, kinds)), n, seed, overdraw)
    rng = np.random.default_rng([seed, 0x90])
    from study.prefs.annotators import OracleAnnotator

    oracle = OracleAnnotator(spec)
    kept = []
    for it in items:
        c = corrupt(
            it["answer"],
            it["prompt"],
            scenes[it["scene_id"]],
            spec,
            cooc,
            rng,
            max_edits=max_edits,
            types=types,
            oracle=oracle,
        )
        if c is not None:
            kept.append((it, c))
    kept = subsample(kept, n, seed)
    rej2 = [""] * len(kept)
    if model is not None:
        rej2 = noisy_rejections(
            model,
            processor,
            [world.image(it["scene_id"]) for it, _ in kept],
            [it["prompt"] for it, _ in kept],
            [it["answer"] for it, _ in kept],
            noise_steps=noise_steps,
            mode=tf_mode,
            seed=seed,
            batch_size=batch_size,
        )
    rows = []
    for (it, c), r2 in zip(kept, rej2):
        src = {"chosen": f"corpus:{split}", "rejected": "povid_corruption", "edits": c.edits, "kind": it["kind"]}
        if model is not None:
            src["rejected_2"] = f"noisy_tf:{model_id}:N={noise_steps}:{tf_mode}" if r2 else "none (equal to chosen)"
        rows.append(
            make_row(
                prompt=it["prompt"],
                chosen=it["answer"],
                rejected=c.text,
                scene_id=it["scene_id"],
                recipe=RECIPE,
                seed=seed,
                source_ids=src,
                rejected_2=r2,
            )
        )
    return validate_rows(rows, world)
