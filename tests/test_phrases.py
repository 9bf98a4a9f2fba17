"""The world's phrases are written and read by one module: what the generator writes, the parser reads back."""

import numpy as np

from study.config import load_section
from study.world import language, phrases
from study.world.scenes import generate_split
from study.world.spec import load_spec
from study.world.stage import scene_params_of

SPEC = load_spec("data/world_spec.yaml")


def test_every_generated_object_sentence_reads_back_its_position_and_relation():
    rng = np.random.default_rng(0)
    n_sentences = n_relations = 0
    for scene in generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 80):
        for obj in scene.objects:
            for first in (0.0, 1.0):
                toks = language.object_sentence(SPEC, obj, rng, 0.5, first).split()
                assert phrases.position_phrases(toks, SPEC) == {obj.position}, toks
                assert phrases.relation_spans(toks) == []
                n_sentences += 1
        fact = language.relation_fact(scene, rng)
        if fact is not None:
            toks = language.RELATION_TEMPLATE.format(**fact).split()
            spans = phrases.relation_spans(toks)
            assert [s[2] for s in spans] == [fact["rel"]] and phrases.position_spans(toks, SPEC) == []
            n_relations += 1
    assert n_sentences > 300 and n_relations > 30


def test_inverse_is_an_involution_over_the_scene_relations():
    assert set(phrases.INVERSE) == set(phrases.RELATIONS)
    assert all(phrases.INVERSE[phrases.INVERSE[r]] == r and phrases.INVERSE[r] != r for r in phrases.RELATIONS)
    scene = next(
        s for s in generate_split(SPEC, scene_params_of(load_section("world")), 1, "train", 50) if len(s.relations) >= 2
    )
    for r in scene.relations:  # a is r of b  iff  b is INVERSE[r] of a
        assert {
            "subject": r["object"],
            "relation": phrases.INVERSE[r["relation"]],
            "object": r["subject"],
        } in scene.relations


def test_counts_as_the_generator_writes_them_and_as_answers_give_them():
    scene = next(
        s
        for s in generate_split(SPEC, scene_params_of(load_section("world")), 0, "train", 200)
        if any(s.count(c) == 2 for c in s.categories)
    )
    for cat in sorted(scene.categories):
        answer = language.count_qa(SPEC, scene, cat)[1].split()
        assert phrases.answered_count(answer) == scene.count(cat)
        i = phrases.claimed_count_index(answer)
        assert phrases.CLAIM_COUNT_WORDS[answer[i]] == scene.count(cat)
    assert phrases.answered_count("there are no cups .".split()) == 0
    assert phrases.claimed_count_index("there are no cups .".split()) is None  # "no" is not a claimed count
    assert phrases.answered_count("i think there is maybe , there are 3 .".split()) == 3
    assert phrases.answered_count("i do not know .".split()) is None


def test_position_phrases_longest_first_and_relations_are_not_positions():
    assert phrases.position_spans("at the top left , left of the cup .".split(), SPEC) == [(2, 4)]
    assert phrases.position_names(SPEC)[0].count(" ") == 1  # two-word names are tried first
    vocab = set(language.vocabulary(SPEC))
    assert all(w in vocab for p in phrases.position_names(SPEC) for w in p.split())
    assert all(w in vocab for r in phrases.RELATIONS for w in r.split())
