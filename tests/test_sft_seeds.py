"""The ``sft_seeds`` stage trains each further SFT seed through the same stage functions as the pipeline, with the
stage's params but that seed, chaining vision -> lm -> sft (with its pool) in its scratch directory; it keeps
finished sub-stages of a killed run only under the same params and world, and the organism stage reads its output."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from study.config import load_params
from study.model import seeds
from study.pipeline import StageContext


def _fake_stages(monkeypatch, calls, fail_at=None):
    """Stand-ins for the three sub-stages: each records its call (name, ctx) and writes its model dir (and the
    SFT's pool), then its metrics (the order the real ones use); ``fail_at`` raises inside that one first."""
    import study.model.stage as model_stage

    def stage(name):
        def run(ctx):
            calls.append((name, ctx))
            if name == fail_at:
                raise KeyboardInterrupt(f"killed in {name}")
            Path(ctx.paths.out_dir).mkdir(parents=True, exist_ok=True)
            (Path(ctx.paths.out_dir) / "model.safetensors").write_text(f"{name} seed {ctx.params.seed}")
            if name == "run_sft":
                Path(ctx.paths.pool_dir, "frac0.1").mkdir(parents=True, exist_ok=True)
            Path(ctx.paths.metrics_path).write_text(json.dumps({"stage": name}))

        return run

    for name in ("run_vision", "run_lm", "run_sft"):
        monkeypatch.setattr(model_stage, name, stage(name))


def _ctx(p, world, out=None):
    out = out or world.parent / "sft_seeds"
    return StageContext(
        "sft_seeds",
        None,
        p,
        SimpleNamespace(world_dir=str(world), out_dir=str(out), metrics_path=str(world.parent / "sft_seeds.json")),
    )


def _world(tmp_path):
    world = tmp_path / "world"
    world.mkdir()
    (world / "spec.json").write_text("{}")
    return world


def test_a_seed_runs_vision_lm_and_sft_with_only_the_seed_changed(tmp_path, monkeypatch):
    calls = []
    _fake_stages(monkeypatch, calls)
    p = load_params("params.yaml")
    world = _world(tmp_path)
    metrics = seeds.train_seed(7, _ctx(p, world), tmp_path / "work")
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]
    assert metrics == {s: {"stage": f"run_{s}"} for s in ("vision", "lm", "sft")}
    for _, c in calls:
        assert c.params.seed == 7 and c.params.model_copy(update={"seed": p.seed}) == p
        assert c.paths.world_dir == str(world)
    vision, lm, sft = (c.paths for _, c in calls)
    d = tmp_path / "work" / "seed7"
    assert vision.out_dir == str(d / "vision") and lm.init_dir == vision.out_dir and lm.out_dir == str(d / "lm")
    assert sft.init_dir == lm.out_dir and sft.out_dir == str(d / "sft")
    assert sft.pool_dir == str(d / "pool") and sft.live_dir is None


def test_a_killed_seed_keeps_its_finished_sub_stages_and_only_with_the_same_params(tmp_path, monkeypatch):
    world = _world(tmp_path)
    p = load_params("params.yaml")
    ctx, work = _ctx(p, world), tmp_path / "sft_seeds.work"

    calls: list = []
    _fake_stages(monkeypatch, calls, fail_at="run_sft")
    with pytest.raises(KeyboardInterrupt):
        seeds.train_seed(1, ctx, work)
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]

    calls.clear()  # the stage runs again with nothing changed: vision and lm are kept, sft trains
    _fake_stages(monkeypatch, calls)
    seeds.train_seed(1, ctx, work)
    assert [n for n, _ in calls] == ["run_sft"]

    calls.clear()  # other params: nothing of the old directory is kept
    other = _ctx(p.model_copy(update={"sft": p.sft.model_copy(update={"epochs": 3.0})}), world)
    seeds.train_seed(1, other, work)
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]

    calls.clear()  # another world under the same params: nothing kept either
    (world / "spec.json").write_text('{"changed": true}')
    seeds.train_seed(1, other, work)
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]


def test_a_sub_stage_trained_again_invalidates_the_later_ones(tmp_path, monkeypatch):
    import shutil

    p = load_params("params.yaml")
    ctx = _ctx(p, _world(tmp_path))
    calls: list = []
    _fake_stages(monkeypatch, calls)
    seeds.train_seed(2, ctx, tmp_path)
    shutil.rmtree(tmp_path / "seed2" / "vision")  # the tower lost: the kept lm and sft were trained from it
    assert (tmp_path / "seed2" / "lm.json").is_file() and (tmp_path / "seed2" / "sft.json").is_file()
    calls.clear()
    seeds.train_seed(2, ctx, tmp_path)
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]


def test_the_stage_writes_each_seeds_sft_model_and_pool_and_removes_its_work(tmp_path, monkeypatch):
    calls: list = []
    _fake_stages(monkeypatch, calls)
    p = load_params("params.yaml")
    ctx = _ctx(p, _world(tmp_path))
    metrics = seeds.run_sft_seeds(ctx)
    extra = [s for s in p.organism.sft_seeds if s != p.seed]
    assert extra and metrics["seeds"] == extra and sorted(metrics["per_seed"]) == [str(s) for s in extra]
    out = Path(ctx.paths.out_dir)
    assert json.loads((out / "seeds.json").read_text()) == {"seeds": extra}
    for s in extra:
        assert (out / f"seed{s}" / "sft" / "model.safetensors").read_text() == f"run_sft seed {s}"
        assert (out / f"seed{s}" / "pool" / "frac0.1").is_dir()
        assert not (out / f"seed{s}" / "vision").exists()  # only what later stages read
    assert not (tmp_path / "sft_seeds.work").exists()
    assert json.loads(Path(ctx.paths.metrics_path).read_text()) == metrics


def test_no_extra_seed_writes_an_empty_manifest_and_the_reader_names_a_missing_seed(tmp_path, monkeypatch):
    calls: list = []
    _fake_stages(monkeypatch, calls)
    p = load_params("params.yaml")
    one = p.model_copy(update={"organism": p.organism.model_copy(update={"sft_seeds": [p.seed]})})
    ctx = _ctx(one, _world(tmp_path))
    assert seeds.run_sft_seeds(ctx) == {"seeds": [], "per_seed": {}} and calls == []
    with pytest.raises(FileNotFoundError, match=r"not 1: run the sft_seeds stage"):
        seeds.load_seed_model(ctx.paths.out_dir, 1)


def test_seed_table_has_one_row_per_seed_from_the_sub_stages_metrics():
    m = {
        "vision": {
            "val_patch_accuracy": 0.9,
            "val_patch_accuracy_clear": 0.95,
            "val_patch_accuracy_faint": 0.7,
            "seconds": 120.0,
        },
        "lm": {
            "lm": {"reading_accuracy": 0.8, "reading_auroc": 0.9, "train_runtime_s": 60.0},
            "projector": {"train_loss": 0.5, "train_runtime_s": 30.0},
        },
        "sft": {"eval_loss": 0.15, "train_samples_per_s": 100.0, "train_runtime_s": 600.0},
    }
    t = seeds.seed_table({"per_seed": {"1": m, "2": m}})
    assert list(t.index) == ["seed 1", "seed 2"]
    assert t.loc["seed 2", "tower min"] == 2.0 and t.loc["seed 2", "lm + projector min"] == 1.5
    assert t.loc["seed 1", "SFT min"] == 10.0 and t.loc["seed 1", "faint"] == 0.7
