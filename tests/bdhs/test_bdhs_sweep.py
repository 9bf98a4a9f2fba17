"""Knobs reach the rho_th sweep: every BDHS knob of the ``bdhs`` section but rho_th (and N_BDHS = 1 for
the first-iteration run) is the one the sweep samples with (was: temperature, max_new_tokens and
batch_size silently took BDHSParams' defaults)."""

from study.bdhs import sweep as bdhs_sweep
from study.bdhs.sampler import BDHSResult
from study.bdhs.stage import bdhs_params
from study.config import load_section


def test_the_sweep_samples_with_the_sections_knobs(tiny, pretrain_world, spec, monkeypatch):
    seen = []

    def fake_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False):
        seen.append(params)
        return [BDHSResult(c, 1, 0.5, True, 6) for c in chosen]

    monkeypatch.setattr(bdhs_sweep, "bdhs_sample", fake_sample)
    b = load_section(
        "bdhs", rho_th=0.9, eps_s=0.8, n_bdhs=3, noise_steps=7, temperature=0.7, max_new_tokens=11, batch_size=5
    )
    model, proc = tiny
    table = bdhs_sweep.sweep(
        model, proc, pretrain_world, spec, [0.0, 0.5], bdhs_params(b), split="val", n=4, encoder=object(), seed=0
    )
    assert list(table["rho_th"]) == [0.0, 0.5] and list(table["noise_steps"]) == [7, 7]
    assert [(q.rho_th, q.n_bdhs) for q in seen] == [(0.0, 1), (0.0, 3), (0.5, 1), (0.5, 3)]
    assert {(q.eps_s, q.noise_steps, q.temperature, q.max_new_tokens, q.batch_size) for q in seen} == {
        (0.8, 7, 0.7, 11, 5)
    }


def _absent_word(spec, scene):
    """A word naming a category the scene does not hold (a hallucination if a rejection asserts it)."""
    lexicon = spec.word_to_category()
    return next(w for w, c in sorted(lexicon.items()) if c not in scene.categories)


def test_the_bdhs_ratio_and_its_paired_interval_count_new_hallucinations_on_the_same_descriptions(
    tiny, pretrain_world, spec, monkeypatch
):
    """At rho_th = 0 every other rejection adds one absent object, at 0.9 every one: the ratio is 2, and its
    paired bootstrap interval holds 2 and has width (the rho 0 counts vary over descriptions)."""
    n = 8
    _, _, chosen, scenes = bdhs_sweep.describe_rows(pretrain_world, "val", n)
    word = [_absent_word(spec, s) for s in scenes]

    def fake_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False):
        every = 1 if params.rho_th > 0 else 2
        return [
            BDHSResult(c + (f" there is a {word[i]} ." if i % every == 0 else ""), 1, 0.5, True, 6)
            for i, c in enumerate(chosen)
        ]

    monkeypatch.setattr(bdhs_sweep, "bdhs_sample", fake_sample)
    b = load_section("bdhs", n_bdhs=1)
    model, proc = tiny
    table = bdhs_sweep.sweep(
        model, proc, pretrain_world, spec, [0.0, 0.9], bdhs_params(b), split="val", n=n, encoder=object(), seed=0
    )
    at = table.set_index("rho_th")
    assert (
        at.loc[0.9, "it1_new_hallucinated_per_answer"] == 1.0 and at.loc[0.0, "it1_new_hallucinated_per_answer"] == 0.5
    )
    assert at.loc[0.9, "it1_new_ratio_vs_0"] == 2.0 and at.loc[0.0, "it1_new_ratio_vs_0"] == 1.0
    lo, hi = at.loc[0.9, "it1_new_ratio_vs_0_lo"], at.loc[0.9, "it1_new_ratio_vs_0_hi"]
    assert lo < 2.0 < hi and lo >= 1.0  # the numerator counts every description the denominator counts


def test_the_sweep_reads_descriptions_from_first_on_and_refuses_rows_the_corpus_lacks(pretrain_world):
    import pytest

    all_rows = bdhs_sweep.describe_rows(pretrain_world, "val", 4)
    later = bdhs_sweep.describe_rows(pretrain_world, "val", 2, first=2)
    assert [s.scene_id for s in later[3]] == [s.scene_id for s in all_rows[3][2:4]]
    have = len([r for r in pretrain_world.corpus("val") if r["kind"] == "describe"])
    with pytest.raises(ValueError, match=f"has {have} description rows"):
        bdhs_sweep.describe_rows(pretrain_world, "val", have, first=1)


def test_no_ratio_columns_when_rho_0_adds_no_hallucination(tiny, pretrain_world, spec, monkeypatch):
    def fake_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False):
        return [BDHSResult(c, 1, 0.5, True, 6) for c in chosen]  # every rejection repeats its chosen answer

    monkeypatch.setattr(bdhs_sweep, "bdhs_sample", fake_sample)
    model, proc = tiny
    table = bdhs_sweep.sweep(
        model,
        proc,
        pretrain_world,
        spec,
        [0.0, 0.9],
        bdhs_params(load_section("bdhs", n_bdhs=1)),
        n=4,
        encoder=object(),
    )
    assert "it1_new_ratio_vs_0" not in table.columns and table.notna().all().all()


def test_with_one_iteration_each_rho_is_sampled_once(tiny, pretrain_world, spec, monkeypatch):
    """N_BDHS = 1: the full run is iteration 1 itself (same draws), so it is not sampled a second time."""
    seen = []

    def fake_sample(model, processor, images, prompts, chosen, params, encoder, seed, progress=False):
        seen.append((params.rho_th, params.n_bdhs))
        return [BDHSResult(c, 1, 0.5, True, 6) for c in chosen]

    monkeypatch.setattr(bdhs_sweep, "bdhs_sample", fake_sample)
    model, proc = tiny
    params = bdhs_params(load_section("bdhs", n_bdhs=1))
    table = bdhs_sweep.sweep(model, proc, pretrain_world, spec, [0.0, 0.5], params, n=4, encoder=object())
    assert seen == [(0.0, 1), (0.5, 1)]
    assert list(table["different_it1"]) == list(table["different_final"]) and list(table["mean_iterations"]) == [1, 1]


def test_the_gate_sweep_is_the_stages_sweep_at_rho_0_and_rho_th(tiny, pretrain_world, spec, encoder):
    """A further SFT seed's BDHS gate (the organism stage) and the main seed's (the ``bdhs`` stage's sweep) read
    the same statistic: on one model, the gate sweep's iteration-1 columns equal the stage's full sweep's at
    rho_th = 0 and ``bdhs.rho_th``, and it sweeps only those two points."""
    from study.eval.gates import sweep_key

    b = load_section("bdhs", rho_th=0.9, n_bdhs=2, max_new_tokens=6, batch_size=4)
    model, proc = tiny
    gate = bdhs_sweep.gate_sweep(model, proc, pretrain_world, spec, b, n=4, seed=3, encoder=encoder)
    full = bdhs_sweep.sweep_stats(
        bdhs_sweep.sweep(
            model, proc, pretrain_world, spec, [0.0, 0.5, 0.9], bdhs_params(b), n=4, encoder=encoder, seed=3
        )
    )
    assert set(gate) == {sweep_key(0.0), sweep_key(0.9)} and set(full) == {sweep_key(r) for r in (0.0, 0.5, 0.9)}
    for key, row in gate.items():
        it1 = {k: v for k, v in row.items() if k.startswith("it1_") or k in ("visible_mean", "different_it1")}
        assert it1 and it1 == {k: full[key][k] for k in it1}, key
