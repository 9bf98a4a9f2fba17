import hashlib

import numpy as np
import pytest

from study.config import load_section
from study.world import language
from study.world.corpus import World, build_world, corpus_rows
from study.world.render import render_scene
from study.world.scenes import cooccurrence, generate_split, relations_of
from study.world.spec import load_spec, parse_spec
from study.world.stage import corpus_params_of, scene_params_of

SPEC = load_spec("data/world_spec.yaml")


def test_spec_has_enough_categories_and_contexts():
    assert len(SPEC.categories) >= 12
    assert len(SPEC.contexts) >= 2 and len(SPEC.colors) >= 2 and len(SPEC.sizes) >= 2
    assert SPEC.word_to_category()["mugs"] == "cup"


def test_spec_validation_names_the_key():
    import yaml

    raw = yaml.safe_load(open("data/world_spec.yaml"))
    raw["categories"]["cup"]["shape"] = "blob"
    with pytest.raises(ValueError, match="categories.cup.shape"):
        parse_spec(raw)
    raw = yaml.safe_load(open("data/world_spec.yaml"))
    raw["contexts"]["kitchen"]["objects"]["unicorn"] = 0.5
    with pytest.raises(ValueError, match="contexts.kitchen.objects.unicorn"):
        parse_spec(raw)


def test_scenes_have_1_to_6_objects_on_distinct_cells_and_exact_relations():
    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 300)
    for s in scenes:
        assert 1 <= len(s.objects) <= 6
        assert len({(o.row, o.col) for o in s.objects}) == len(s.objects)
        for r in s.relations:
            a, b = s.objects[r["subject"]], s.objects[r["object"]]
            assert {
                "left of": a.col < b.col,
                "right of": a.col > b.col,
                "above": a.row < b.row,
                "below": a.row > b.row,
            }[r["relation"]]
    # a scene's relations are exactly those implied by its cells
    assert scenes[0].relations == relations_of(scenes[0].objects)


def test_cooccurrence_is_context_driven_and_ood_breaks_it():
    cats = SPEC.category_names
    train = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 2000)
    ood = generate_split(SPEC, scene_params_of(load_section("world")), 0, "ood", 2000)
    c_tr, c_ood = cooccurrence(train, cats), cooccurrence(ood, cats)
    i, j, k = cats.index("cup"), cats.index("plate"), cats.index("car")
    assert c_tr[i, j] > 0.5 and c_tr[i, k] < 0.2  # same context vs other context
    assert abs(c_ood[i, j] - c_ood[i, k]) < 0.15  # uniform objects: no context structure


def test_prefix_stable_and_seeded():
    a = generate_split(SPEC, scene_params_of(load_section("world")), 3, "test", 50)
    b = generate_split(SPEC, scene_params_of(load_section("world")), 3, "test", 20)
    c = generate_split(SPEC, scene_params_of(load_section("world")), 4, "test", 20)
    assert [s.to_dict() for s in a[:20]] == [s.to_dict() for s in b]
    assert [s.to_dict() for s in b] != [s.to_dict() for s in c]


def test_render_is_deterministic_and_faint_objects_have_less_contrast():
    s = generate_split(SPEC, scene_params_of(load_section("world"), faint_prob=0.0), 0, "train", 1)[0]
    img = render_scene(SPEC, s, noise_std=0)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render_scene(SPEC, s, noise_std=0))
    for o in s.objects:
        o.faint = True
    faint = render_scene(SPEC, s, faint_alpha=0.2, noise_std=0)
    bg = np.array(SPEC.contexts[s.context].background)
    assert np.abs(faint.astype(int) - bg).sum() < np.abs(img.astype(int) - bg).sum()


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_world(tmp_path):
    kw = dict(
        seed=1,
        sizes={"train": 30, "val": 5, "test": 5, "ood": 5},
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    build_world(SPEC, tmp_path / "a", **kw)
    build_world(SPEC, tmp_path / "b", **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    w = World(tmp_path / "a")
    assert w.images("train").shape == (30, 48, 48, 3)
    assert len(w.corpus("train")) == 30 * (1 + corpus_params_of(load_section("world"), exist_per_scene=0).qa_per_scene)
    kw["seed"] = 2
    build_world(SPEC, tmp_path / "c", **kw)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_more_val_and_ood_scenes_leave_the_first_ones_and_every_training_row_unchanged(tmp_path):
    """A gate re-measured on more val / ood scenes (world.n_val, n_ood raised) sees the same first scenes,
    and the SFT model trained on the world is the same: scenes, images and rows are drawn per index."""
    kw = dict(
        seed=0,
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world")),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    build_world(SPEC, tmp_path / "a", sizes={"train": 20, "val": 4, "test": 3, "ood": 4}, **kw)
    build_world(SPEC, tmp_path / "b", sizes={"train": 20, "val": 9, "test": 3, "ood": 7}, **kw)
    a, b = World(tmp_path / "a"), World(tmp_path / "b")
    assert np.array_equal(a.images("train"), b.images("train"))
    assert a.corpus("train") == b.corpus("train")
    for split, n in (("val", 4), ("ood", 4), ("test", 3)):
        assert [s.to_dict() for s in a.scenes(split)] == [s.to_dict() for s in b.scenes(split)[:n]]
        assert np.array_equal(a.images(split), b.images(split)[:n])
        if split == "val":  # the corpus is written for train and val only
            first = {s.scene_id for s in a.scenes(split)}
            assert a.corpus(split) == [r for r in b.corpus(split) if r["scene_id"] in first]
    assert len(b.scenes("val")) == 9 and len(b.scenes("ood")) == 7


def test_caption_noise_rate_is_honoured_and_inserted_objects_are_absent_context_objects():
    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 1500)
    rows = corpus_rows(
        SPEC, scenes, corpus_params_of(load_section("world"), exist_per_scene=0, caption_noise_rate=0.3), 0
    )
    desc = [r for r in rows if r["kind"] == "describe"]
    noisy = [r for r in desc if r["noisy_object"]]
    share = len(noisy) / len(desc)
    assert 0.2 < share <= 0.32  # <= rate: a scene with every context object present cannot get one
    by_id = {s.scene_id: s for s in scenes}
    for r in noisy:
        s = by_id[r["scene_id"]]
        assert r["noisy_object"] not in s.categories
        assert SPEC.context_of(r["noisy_object"]) == s.context
        words = r["messages"][1]["content"][0]["text"].split()
        assert r["noisy_object"] in {SPEC.word_to_category().get(w) for w in words}
    clean = corpus_rows(
        SPEC, scenes[:200], corpus_params_of(load_section("world"), exist_per_scene=0, caption_noise_rate=0.0), 0
    )
    assert not any(r["noisy_object"] for r in clean)


def test_language_vocabulary_covers_the_corpus_and_qa_answers_are_true():
    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 300)
    vocab = set(language.vocabulary(SPEC))
    for r in corpus_rows(SPEC, scenes, corpus_params_of(load_section("world"), exist_per_scene=0, qa_per_scene=4), 0):
        for m in r["messages"]:
            text = m["content"][-1]["text"]
            assert set(text.split()) <= vocab, text
    s = scenes[0]
    cat = s.objects[0].category
    assert language.existence_qa(cat, True)[1].startswith("yes")
    n = s.count(cat)
    assert language.count_qa(SPEC, s, cat)[1].split()[2] in (
        language.NUMBER_WORDS[n],
        cat,
        SPEC.categories[cat].plural[cat],
    )
    assert language.split_sentences("a b . c d") == ["a b .", "c d"]
    assert language.split_sentences("no boundary here") == ["no boundary here"]


def test_a_world_pickles_as_its_directory_not_its_loaded_arrays(tmp_path):
    """``datasets`` fingerprints every ``with_transform`` closure by pickling it; the preference datasets'
    closures hold the world, so a world with its images loaded must not pickle them (it made each
    online-DPO round spend seconds hashing the train images)."""
    import pickle

    from datasets import Dataset

    build_world(
        SPEC,
        tmp_path / "w",
        seed=1,
        sizes={"train": 200, "val": 5, "test": 5, "ood": 5},
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    w = World(tmp_path / "w")
    w.scenes("train")
    assert w.images("train").nbytes > 1_000_000
    blob = pickle.dumps(w)
    assert len(blob) < 1_000
    w2 = pickle.loads(blob)
    assert w2.root == w.root and np.array_equal(np.asarray(w2.image("train-3")), np.asarray(w.image("train-3")))
    ds = Dataset.from_dict({"scene_id": ["train-0"]}).with_transform(
        lambda b: {"images": [w.image(s) for s in b["scene_id"]]}
    )
    assert np.array_equal(np.asarray(ds[0]["images"]), np.asarray(w.image("train-0")))


def test_yes_no_questions_are_balanced_and_relation_fallbacks_are_not_all_yes():
    from study.world.corpus import yes_no_balance

    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 1500)
    base = corpus_rows(SPEC, scenes, corpus_params_of(load_section("world"), exist_per_scene=0, qa_per_scene=2), 0)
    fallback = [r for r in base if r["kind"] == "exist"]
    first = [r["messages"][1]["content"][0]["text"].split()[0] for r in fallback]
    assert 0.42 < first.count("yes") / len(first) < 0.58  # was ~0.8: every fallback was a "yes"
    more = corpus_rows(SPEC, scenes, corpus_params_of(load_section("world"), qa_per_scene=2, exist_per_scene=3), 0)
    extra = len(more) - len(base)
    assert extra == 3 * len(scenes)
    bal = yes_no_balance(more)
    assert 0.45 < bal["yes_share"] < 0.55
    assert bal["exist_no_answers"] > 0.45 * (3 * len(scenes))
    # the extra questions come from their own stream: the other rows are unchanged
    kept = {(r["scene_id"], r["kind"], r["messages"][1]["content"][0]["text"]) for r in base}
    assert kept <= {(r["scene_id"], r["kind"], r["messages"][1]["content"][0]["text"]) for r in more}
    by_id = {s.scene_id: s for s in scenes}
    for r in more:  # every existence answer is true and half the negatives are co-occurring objects
        if r["kind"] == "exist":
            words = r["messages"][0]["content"][1]["text"].split()
            cat = next(w for w in words if w in SPEC.categories)
            assert (cat in by_id[r["scene_id"]].categories) == r["messages"][1]["content"][0]["text"].startswith("yes")


def test_position_first_sentences_are_true_claims_and_off_by_default_changes_nothing():
    from study.prefs.facts import check_claims

    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 200)
    first = corpus_rows(
        SPEC,
        scenes,
        corpus_params_of(
            load_section("world"), exist_per_scene=0, caption_noise_rate=0.0, position_first_prob=1.0, summary_prob=0.0
        ),
        0,
    )
    vocab = set(language.vocabulary(SPEC))
    by_id = {s.scene_id: s for s in scenes}
    n_first = 0
    for r in first:
        if r["kind"] != "describe":
            continue
        text = r["messages"][1]["content"][0]["text"]
        assert set(text.split()) <= vocab
        assert check_claims(text, by_id[r["scene_id"]], SPEC).n_errors == 0, text  # the grader reads them
        objects = [
            s
            for s in language.split_sentences(text)
            if set(s.split()) & set(SPEC.word_to_category()) and not s.startswith("the ")
        ]  # not the relation sentence
        assert all(s.startswith("at the ") for s in objects), text
        n_first += len(objects)
    assert n_first > 300
    # at 0 no random number is drawn for it: the corpus is the one written before the knob existed
    assert corpus_rows(
        SPEC, scenes, corpus_params_of(load_section("world"), exist_per_scene=0, position_first_prob=0.0), 0
    ) == corpus_rows(SPEC, scenes, corpus_params_of(load_section("world"), exist_per_scene=0), 0)
    half = corpus_rows(
        SPEC,
        scenes,
        corpus_params_of(load_section("world"), exist_per_scene=0, position_first_prob=0.5, summary_prob=0.0),
        0,
    )
    objects = [
        s
        for r in half
        if r["kind"] == "describe"
        for s in language.split_sentences(r["messages"][1]["content"][0]["text"])
        if not s.startswith(("this is", "the image shows", "the "))
    ]  # object sentences only
    assert 0.4 < np.mean([s.startswith("at the ") for s in objects]) < 0.6


def test_summary_lists_each_category_once_by_prior_and_noise_joins_only_the_list():
    from study.eval.mentions import asserted_categories
    from study.prefs.facts import check_claims

    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 200)
    vocab = set(language.vocabulary(SPEC))
    n_noisy = 0
    for i, scene in enumerate(scenes):
        text, inserted = language.describe(
            SPEC, scene, np.random.default_rng(i), noise_rate=0.0 if i % 2 else 1.0, summary_prob=1.0
        )
        assert set(text.split()) <= vocab, text  # the tokenizer's vocabulary is unchanged
        first, *rest = [s + " ." for s in text.split(" . ") if s]
        summary = first + " " + rest.pop(0)
        assert summary.startswith(f"this is a {scene.context} scene . there is ")
        listed = asserted_categories(summary, SPEC)
        want = set(scene.categories) | ({inserted} if inserted else set())
        assert sorted(listed) == sorted(want), (summary, want)  # each once
        prior = SPEC.contexts[scene.context].objects
        assert [prior.get(c, 0.0) for c in listed] == sorted((prior.get(c, 0.0) for c in listed), reverse=True)
        for c in listed:
            n = scene.count(c)
            if n > 1:
                assert f"{language.NUMBER_WORDS[n]} {SPEC.categories[c].plural[c]}" in summary
        cells = " ".join(rest)
        if inserted:  # the noisy object is in the list only, never given a cell
            n_noisy += 1
            assert inserted not in asserted_categories(cells, SPEC), text
        else:
            assert check_claims(text, scene, SPEC).n_errors == 0, text  # a clean summary is true to the grader
        assert set(asserted_categories(cells, SPEC)) == set(scene.categories)
    assert n_noisy > 50


def test_summary_last_closes_the_description_with_the_list_after_every_cell():
    from study.eval.mentions import asserted_categories

    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 200)
    vocab = set(language.vocabulary(SPEC))
    n_noisy = 0
    for i, scene in enumerate(scenes):
        noise = 0.0 if i % 2 else 1.0
        text, inserted = language.describe(
            SPEC, scene, np.random.default_rng(i), noise_rate=noise, summary_prob=1.0, summary_place="last"
        )
        assert set(text.split()) <= vocab, text
        sentences = [s + " ." for s in text.removesuffix(" .").split(" . ")]
        closing = sentences[-1]
        assert closing == language.LIST_TEMPLATE.format(items=language.list_items(SPEC, scene, inserted)), (
            text
        )  # the list is the last sentence
        assert not any(s.startswith("there is ") and " at the " not in s for s in sentences[:-1]), text
        cells = " ".join(sentences[:-1])
        assert set(asserted_categories(cells, SPEC)) == set(scene.categories)  # every cell before it
        if inserted:
            n_noisy += 1
            assert inserted not in asserted_categories(cells, SPEC)  # the noise joins the list only
        # the noisy object is drawn before the place matters: both places add the same one
        first, inserted_first = language.describe(
            SPEC, scene, np.random.default_rng(i), noise_rate=noise, summary_prob=1.0, summary_place="first"
        )
        assert inserted_first == inserted
    assert n_noisy > 50
    with pytest.raises(ValueError, match="summary_place must be one of"):
        language.describe(SPEC, scenes[0], np.random.default_rng(0), summary_prob=1.0, summary_place="middle")


def test_list_off_context_anywhere_moves_the_foreign_categories_off_the_final_slot():
    from study.world.corpus import corpus_rows

    scenes = generate_split(SPEC, scene_params_of(load_section("world"), off_context_prob=1.0), 0, "train", 200)
    slots, n_foreign = [], 0
    for i, scene in enumerate(scenes):
        prior = SPEC.contexts[scene.context].objects
        foreign = [c for c in scene.categories if prior.get(c, 0.0) <= 0]
        last = language.list_items(SPEC, scene, None, None, "last")
        anywhere = language.list_items(SPEC, scene, None, np.random.default_rng(i), "anywhere")
        assert sorted(last.split(" , ")) == sorted(anywhere.split(" , "))  # the same items, only reordered
        own = [w for w in anywhere.split(" , ") if not any(w.endswith(_names(c)) for c in foreign)]
        assert own == [w for w in last.split(" , ") if w in own]  # the context's own keep the prior order
        if foreign:
            n_foreign += 1
            items = last.split(" , ")
            assert any(items[-1].endswith(_names(c)) for c in foreign)  # last: the final slot is a foreign one
            slots.append(
                next(k for k, w in enumerate(anywhere.split(" , ")) if any(w.endswith(_names(c)) for c in foreign))
                == len(items) - 1
            )
    assert n_foreign > 100
    assert 0.1 < np.mean(slots) < 0.7  # anywhere: the foreign category is not always in the final slot
    with pytest.raises(ValueError, match="list_off_context must be one of"):
        language.list_items(SPEC, scenes[0], None, np.random.default_rng(0), "first")
    with pytest.raises(ValueError, match="needs an rng"):
        language.list_items(SPEC, scenes[0], None, None, "anywhere")
    # same seed, same corpus; "anywhere" changes it (that "last" adds no draw: the rebuilt world is byte-identical)
    params = corpus_params_of(load_section("world"), list_off_context="last")
    rows = corpus_rows(SPEC, scenes[:20], params, 0)
    again = corpus_rows(SPEC, scenes[:20], params, 0)
    assert rows == again
    moved = corpus_rows(SPEC, scenes[:20], corpus_params_of(load_section("world"), list_off_context="anywhere"), 0)
    assert [r["messages"] for r in moved] != [r["messages"] for r in rows]


def _names(category: str) -> tuple[str, ...]:
    cat = SPEC.categories[category]
    return tuple({cat.name, *cat.plural.values()})


def test_list_off_context_of_the_params_is_the_generators():
    import typing

    from study.config import WorldParams

    assert typing.get_args(WorldParams.model_fields["list_off_context"].annotation) == language.LIST_OFF_CONTEXT


def test_summary_places_of_the_params_are_the_generators():
    import typing

    from study.config import WorldParams

    assert typing.get_args(WorldParams.model_fields["summary_place"].annotation) == language.SUMMARY_PLACES


def test_exist_cooccur_prob_sets_how_many_no_questions_name_a_co_occurring_object():
    """world.exist_cooccur_prob: 1 -> every "no" existence question names one of the context's absent core
    objects (when it has one); 0 -> any absent category, so their share falls to about |core absent| / |absent|;
    0.5 (the default) lies between."""
    from study.config import ParamsError
    from study.world.corpus import existence_item

    scenes = generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 300)

    def share(prob):
        hits = total = 0
        for i, scene in enumerate(scenes):
            rng = np.random.default_rng([9, i])
            core = [c for c in SPEC.contexts[scene.context].objects if c not in scene.categories]
            for _ in range(4):
                _, a = existence_item(SPEC, scene, rng, cooccur_prob=prob)
                if a.startswith("no , there is no ") and core:
                    total += 1
                    hits += a.removeprefix("no , there is no ").removesuffix(" .") in core
        return hits / total

    never, half, always = share(0.0), share(0.5), share(1.0)
    assert always == 1.0 and never < half - 0.15 and half < always - 0.15, (never, half, always)
    with pytest.raises(ParamsError, match="exist_cooccur_prob"):
        load_section("world", exist_cooccur_prob=1.5)
