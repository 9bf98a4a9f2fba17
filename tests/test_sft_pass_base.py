"""A pretrained base needs no SFT: with ``model.base_path`` set and ``sft.on_base: pass`` the ``sft`` stage
trains nothing and writes a pointer that every model reader follows (checked against the checkpoint's
fingerprint); the organism stage then gates that one checkpoint, with no extra SFT draws."""

import json
from types import SimpleNamespace

import pytest

from study.config import load_params
from study.model.load import ModelPathError, check_model_dir, load_model
from study.model.stage import run_sft
from study.pipeline import StageContext


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, spec, save_tiny_llava_next):
    return save_tiny_llava_next(tmp_path_factory.mktemp("base"), spec)


POOL = {"pool_models": ["models/weaker-a", "models/weaker-b"]}  # a passed base's pool: declared checkpoints


def _ctx(tmp_path, base, on_base="pass"):
    ov = {"model": {"base_path": str(base)}, "sft": {"on_base": on_base}, "prefs": POOL}
    p = load_params("params.yaml", overrides=ov)
    paths = SimpleNamespace(
        world_dir="artifacts/world",  # not read when the base passes through
        init_dir=str(tmp_path / "lm"),
        out_dir=str(tmp_path / "sft"),
        pool_dir=str(tmp_path / "pool"),
        live_dir=str(tmp_path / "live"),
        metrics_path=str(tmp_path / "sft.json"),
    )
    return StageContext("sft", None, p, paths)


def test_the_base_passes_through_as_a_pointer_every_reader_follows(base_dir, tmp_path):
    metrics = run_sft(_ctx(tmp_path, base_dir))
    out = tmp_path / "sft"
    assert sorted(f.name for f in out.iterdir()) == ["base_pointer.json"]  # nothing trained, nothing copied
    assert metrics["base_path"] == str(base_dir.resolve()) and "skipped" in metrics
    assert json.loads((tmp_path / "sft.json").read_text()) == metrics
    assert check_model_dir(out) == base_dir.resolve()
    a, _ = load_model(out)
    b, _ = load_model(base_dir)
    assert type(a) is type(b) and all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert list((tmp_path / "pool").iterdir()) == []  # weaker members then come from prefs.pool_models
    assert (tmp_path / "live" / "plots" / "metrics").is_dir()  # the stage's DVC outputs all exist
    # what 01_sft shows for it: a sentence and an empty curve that say nothing was trained (no loss to report)
    from study.model.stage import sft_summary
    from study.report.figures import training_curve

    assert sft_summary(metrics).startswith("SFT skipped: model.base_path is set") and "loss" not in sft_summary(metrics)
    ax = training_curve(tmp_path / "live").axes[0]
    assert not ax.lines and ax.get_legend() is None and "nothing trained" in ax.texts[0].get_text()


def test_a_changed_or_missing_base_is_an_error_not_a_silent_switch(base_dir, tmp_path, spec, save_tiny_llava_next):
    other = save_tiny_llava_next(tmp_path / "other", spec)
    run_sft(_ctx(tmp_path, other))
    cfg = other / "config.json"
    cfg.write_text(cfg.read_text().replace("{", '{"_edited": 1,', 1))
    with pytest.raises(ModelPathError, match="config_sha256 changed since the sft stage"):
        load_model(tmp_path / "sft")
    with pytest.raises(ModelPathError, match="model.base_path: model path .* does not exist"):
        run_sft(_ctx(tmp_path / "x", tmp_path / "nowhere"))


def test_the_organism_stage_draws_no_other_sft_seed_from_a_passed_base(base_dir):
    from study.model.seeds import extra_seeds

    p = load_params("params.yaml")
    assert extra_seeds(p) == [s for s in p.organism.sft_seeds if s != p.seed] and len(extra_seeds(p)) >= 2
    passed = load_params("params.yaml", overrides={"model": {"base_path": str(base_dir)}, "prefs": POOL})
    assert passed.sft.on_base == "pass" and extra_seeds(passed) == []
    trained = load_params("params.yaml", overrides={"model": {"base_path": str(base_dir)}, "sft": {"on_base": "train"}})
    assert extra_seeds(trained) == extra_seeds(p)  # a declared SFT from the base is a draw: seeds gated as usual


def test_a_passed_base_without_a_large_enough_pool_is_refused_before_any_work(base_dir):
    from study.config import ParamsError

    base = {"model": {"base_path": str(base_dir)}}
    with pytest.raises(ParamsError, match=r"`prefs.pool_models`: the VLFeedback-style pool needs at least 3 .* got 1"):
        load_params("params.yaml", overrides=base)  # nothing to pool: no SFT run, no declared checkpoints
    with pytest.raises(ParamsError, match=r"`prefs.pool_models`: .* got 2"):
        load_params("params.yaml", overrides={**base, "prefs": {"pool_models": ["models/weaker-a"]}})
    rlhfv_only = {"recipes": ["povid", "rlhfv"], "heldout_recipes": ["rlhfv"]}
    with pytest.raises(ParamsError, match=r"`prefs.rlhfv_answerer`: pool needs a checkpoint besides the SFT model"):
        load_params("params.yaml", overrides={**base, "prefs": rlhfv_only})
    ok = load_params("params.yaml", overrides={**base, "prefs": {**rlhfv_only, "rlhfv_answerer": "policy"}})
    assert ok.prefs.recipes == ["povid", "rlhfv"]  # no pool recipe, no pool needed
    trained = load_params("params.yaml", overrides={**base, "sft": {"on_base": "train"}})
    assert len(trained.sft.pool_fractions) >= 2  # a declared SFT keeps its intermediate checkpoints as the pool
