"""Every recipe: output schema and provenance; the registry; subsample."""

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from study.config import load_section
from study.prefs import (
    RECIPES,
    OracleAnnotator,
    bdhs_recipe,
    check_claims,
    random_corruption_recipe,
    subsample,
    validate_rows,
    vlf_corrupted_recipe,
    vlfeedback_recipe,
)
from study.prefs.sources import corpus_items, scene_map
from study.world.language import vocabulary


def test_registry_and_common_signature():
    assert set(RECIPES) == {"bdhs", "povid", "vlfeedback", "rlhfv", "vlf_corrupted", "random_corruption"}
    for name, fn in RECIPES.items():
        params = inspect.signature(fn).parameters
        assert list(params)[0] == "world", name
        for p in ("n", "seed", "split"):
            assert params[p].kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
        assert fn.__doc__, name


def test_subsample():
    rows = list(range(100))
    a, b = subsample(rows, 10, 0), subsample(rows, 10, 0)
    assert a == b and len(a) == 10 and a == sorted(a) and subsample(rows, 10, 1) != a
    assert subsample(rows, None, 0) == rows and subsample(rows, 500, 0) == rows


@dataclass
class FakeResult:
    rejected: str
    iterations: int
    similarity: float
    guided: bool
    visible_tokens: int


def test_bdhs_recipe_with_fake_sampler(world):
    calls = []

    def sampler(model, processor, images, prompts, chosen, params, encoder, seed):
        calls.append((len(images), list(prompts), list(chosen), params, encoder, seed))
        # every third sample "fails" by reproducing the chosen answer: it must be dropped
        return [
            FakeResult(c if k % 3 == 0 else f"{c} i can see a small red car at the top .", 2, 0.9, True, 1)
            for k, c in enumerate(chosen)
        ]

    short = bdhs_recipe(world, n=9, seed=5, model="M", processor="P", sampler=sampler, overdraw=1.0)
    assert len(short) == 6  # 9 candidates, every third dropped: fewer rows than n, never a copy of chosen
    calls.clear()
    rows = bdhs_recipe(
        world,
        n=10,
        seed=5,
        model="M",
        processor="P",
        sampler=sampler,
        params={"rho": 0.99},
        encoder="E",
        model_id="sft-test",
        overdraw=2.0,
    )
    assert len(rows) == 10
    n_in, prompts, chosen, params, encoder, seed = calls[0]
    assert params == {"rho": 0.99} and encoder == "E" and seed == 5 and n_in == len(prompts) == len(chosen)
    truth = {(it["scene_id"], it["prompt"]): it["answer"] for it in corpus_items(world, "train")}
    for r in rows:
        assert r["recipe"] == "bdhs" and r["seed"] == 5
        assert r["chosen"] == truth[(r["scene_id"], r["prompt"])]
        assert r["rejected"] == r["chosen"] + " i can see a small red car at the top ."
        src = json.loads(r["source_ids"])
        assert src["chosen"] == "corpus:train" and src["rejected"] == "bdhs:sft-test"
        assert src["iterations"] == 2 and src["guided"] is True and src["visible_tokens"] == 1


def test_random_corruption(spec, world):
    rows = random_corruption_recipe(world, n=20, seed=0, k=3)
    vocab = set(vocabulary(spec))
    assert len(rows) == 20
    for r in rows:
        a, b = r["chosen"].split(), r["rejected"].split()
        assert len(a) == len(b)
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        src = json.loads(r["source_ids"])
        assert diff == src["positions"] and len(diff) == min(3, len(a))
        assert all(b[i] in vocab for i in diff)
        assert r["recipe"] == "random_corruption" and src["rejected"] == "random_swap"
    with pytest.raises(ValueError):
        random_corruption_recipe(world, n=2, seed=0, k=0)


def test_vlfeedback_recipe(spec, world, tiny_dirs):
    oracle = OracleAnnotator(spec)
    with pytest.raises(ValueError, match="at least 3"):
        vlfeedback_recipe(world, n=2, seed=0, pool=tiny_dirs[:2], annotator=oracle)
    rows = vlfeedback_recipe(world, n=6, seed=0, pool=tiny_dirs, annotator=oracle, max_new_tokens=12, overdraw=4)
    assert 0 < len(rows) <= 6
    scenes = scene_map(world)
    for r in rows:
        src = json.loads(r["source_ids"])
        assert src["pool"] == tiny_dirs and src["chosen"] in tiny_dirs and src["rejected"] in tiny_dirs
        assert src["annotator"] == "oracle"
        scene = scenes[r["scene_id"]]
        assert max(src["scores"]) > min(src["scores"])  # best vs worst of the pool's ranking, ties skipped
        # Pareto ranking: the rejected answer never dominates the chosen one (it would outrank it)
        pair = [r["chosen"], r["rejected"]]
        s_c, s_r = oracle.rank(scene, r["prompt"], pair)
        assert (
            s_c >= s_r
            and oracle.judge(scene, r["prompt"], *pair, *(oracle.score(scene, r["prompt"], a) for a in pair)) != 1
        )
        assert r["recipe"] == "vlfeedback"


def test_vlf_corrupted_variants(spec, world, tiny_dirs):
    oracle = OracleAnnotator(spec)
    scenes = scene_map(world)
    # a random model's QA answers are mostly wrong already and cannot be made worse: overdraw generously
    common = dict(pool=tiny_dirs, annotator=oracle, max_new_tokens=12, n=5, seed=0, overdraw=8)
    ranked = vlf_corrupted_recipe(world, **common)
    llava = vlf_corrupted_recipe(world, **common, prompt_source="llava")
    strong = vlf_corrupted_recipe(world, **common, chosen_from="strongest")
    weak = vlf_corrupted_recipe(world, **common, chosen_from="weakest")
    named = vlf_corrupted_recipe(world, **common, chosen_from=tiny_dirs[1])
    for rows in (ranked, llava, strong, weak, named):
        assert len(rows) == 5
        validate_rows(rows, world)
        for r in rows:
            src = json.loads(r["source_ids"])
            scene = scenes[r["scene_id"]]
            assert src["rejected"] == "povid_corruption" and src["edits"]
            assert check_claims(r["rejected"], scene, spec).n_errors > check_claims(r["chosen"], scene, spec).n_errors
            assert oracle.score(scene, r["prompt"], r["rejected"]) < oracle.score(scene, r["prompt"], r["chosen"])
    assert {json.loads(r["source_ids"])["kind"] for r in llava} == {"describe"}
    means = json.loads(strong[0]["source_ids"])["member_means"]
    assert {json.loads(r["source_ids"])["chosen"] for r in strong} == {tiny_dirs[means.index(max(means))]}
    means_w = json.loads(weak[0]["source_ids"])["member_means"]
    assert {json.loads(r["source_ids"])["chosen"] for r in weak} == {tiny_dirs[means_w.index(min(means_w))]}
    assert {json.loads(r["source_ids"])["chosen"] for r in named} == {tiny_dirs[1]}
    for r in ranked:
        src = json.loads(r["source_ids"])
        assert src["scores"][tiny_dirs.index(src["chosen"])] == max(src["scores"])
    with pytest.raises(ValueError, match="chosen_from"):
        vlf_corrupted_recipe(world, **{**common, "n": 1}, chosen_from="nobody")


def test_rlhfv_rejected_answers_come_from_another_model_of_the_pool(spec, world, tiny_dirs):
    """prefs.rlhfv_answerer: pool (the default) corrects the strongest non-SFT pool checkpoint's answers, as
    RLHF-V corrected Muffin's; `policy` corrects the SFT model's own; a pool of the SFT model alone is refused."""
    from study.model.load import load_model
    from study.prefs.stage import build_recipe, rlhfv_answerer

    assert load_section("prefs").rlhfv_answerer == "pool"
    assert rlhfv_answerer(tiny_dirs) == tiny_dirs[-1]
    with pytest.raises(ValueError, match="prefs.rlhfv_answerer"):
        rlhfv_answerer(tiny_dirs[:1])
    model, proc = load_model(tiny_dirs[0])
    for answerer, expected in (("pool", f"pool:{Path(tiny_dirs[-1]).name}"), ("policy", "sft")):
        p = load_section("prefs", rlhfv_answerer=answerer)
        rows = build_recipe("rlhfv", world, p, 0, "train", 4, model, proc, tiny_dirs, spec)
        assert rows and {json.loads(r["source_ids"])["rejected"] for r in rows} == {f"{expected}:sample"}


def test_pool_of_declared_checkpoints_replaces_the_sft_run_s_own(tiny_dirs, tmp_path):
    """prefs.pool_models (e.g. smaller LLaVAs beside a pretrained base that had no SFT run): the pool is the
    SFT model then those checkpoints in the order declared; [] keeps the SFT run's intermediate checkpoints;
    a declared path that is not a checkpoint is named with its key before any model loads."""
    from study.config import ParamsError
    from study.model.load import ModelPathError
    from study.prefs.stage import pool_paths, rlhfv_answerer

    own = tmp_path / "pool"
    (own / "frac0.3").mkdir(parents=True)
    (own / "frac0.1").mkdir()
    sft, weaker = tiny_dirs[0], tiny_dirs[1:]
    assert load_section("prefs").pool_models == []
    assert pool_paths(sft, str(own)) == [sft, str(own / "frac0.1"), str(own / "frac0.3")]
    declared = list(reversed(weaker))
    assert pool_paths(sft, str(own), declared) == [sft, *declared]  # the declared order, not sorted
    assert rlhfv_answerer(pool_paths(sft, str(own), declared)) == declared[-1]
    with pytest.raises(ModelPathError, match=r"prefs.pool_models\[1\]"):
        pool_paths(sft, str(own), [weaker[0], str(tmp_path / "missing")])
    with pytest.raises(ParamsError, match="pool_models"):
        load_section("prefs", pool_models=[weaker[0], weaker[0]])
