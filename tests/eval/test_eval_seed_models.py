"""The organism stage trains each extra SFT seed through the same stage functions as the pipeline, with the
stage's params but that seed, chaining vision -> lm -> sft in its scratch directory (no pool, no DVCLive)."""

from types import SimpleNamespace

from study.config import load_params
from study.eval import organism_stage
from study.pipeline import StageContext


def test_an_extra_seed_runs_vision_lm_and_sft_with_only_the_seed_changed(tmp_path, monkeypatch):
    import study.model.stage as model_stage

    calls = []

    def record(name):
        return lambda ctx: calls.append((name, ctx))

    for name in ("run_vision", "run_lm", "run_sft"):
        monkeypatch.setattr(model_stage, name, record(name))
    monkeypatch.setattr(organism_stage, "load_model", lambda d: ("model", str(d)))
    p = load_params("params.yaml")
    ctx = StageContext("organism", None, p, SimpleNamespace(world_dir="artifacts/world"))
    assert organism_stage._seed_model(7, ctx, tmp_path) == ("model", str(tmp_path / "seed7" / "sft"))
    assert [n for n, _ in calls] == ["run_vision", "run_lm", "run_sft"]
    for _, c in calls:
        assert c.params.seed == 7 and c.params.model_copy(update={"seed": p.seed}) == p
        assert c.paths.world_dir == "artifacts/world"
    vision, lm, sft = (c.paths for _, c in calls)
    d = tmp_path / "seed7"
    assert vision.out_dir == str(d / "vision") and lm.init_dir == vision.out_dir and lm.out_dir == str(d / "lm")
    assert sft.init_dir == lm.out_dir and sft.out_dir == str(d / "sft")
    assert sft.pool_dir is None and sft.live_dir is None


def _fake_stages(monkeypatch, calls, fail_at=None):
    """Stand-ins for the three sub-stages: each records its call and writes its model dir, then its metrics
    (the order the real ones use); ``fail_at`` raises inside that one before it writes anything."""
    import json
    from pathlib import Path

    import study.model.stage as model_stage

    def stage(name):
        def run(ctx):
            calls.append(name)
            if name == fail_at:
                raise KeyboardInterrupt(f"killed in {name}")
            Path(ctx.paths.out_dir).mkdir(parents=True, exist_ok=True)
            Path(ctx.paths.metrics_path).write_text(json.dumps({"stage": name}))

        return run

    for name in ("run_vision", "run_lm", "run_sft"):
        monkeypatch.setattr(model_stage, name, stage(name))
    monkeypatch.setattr(organism_stage, "load_model", lambda d: ("model", str(d)))


def test_a_killed_extra_seed_keeps_its_finished_sub_stages_and_only_with_the_same_params(tmp_path, monkeypatch):
    import pytest

    world = tmp_path / "world"
    world.mkdir()
    (world / "spec.json").write_text("{}")
    p = load_params("params.yaml")
    ctx = StageContext("organism", None, p, SimpleNamespace(world_dir=str(world)))
    work = tmp_path / "organism.work"

    calls: list[str] = []
    _fake_stages(monkeypatch, calls, fail_at="run_sft")
    with pytest.raises(KeyboardInterrupt):
        organism_stage._seed_model(1, ctx, work)
    assert calls == ["run_vision", "run_lm", "run_sft"]

    calls.clear()  # the stage runs again with nothing changed: vision and lm are kept, sft trains
    _fake_stages(monkeypatch, calls)
    assert organism_stage._seed_model(1, ctx, work) == ("model", str(work / "seed1" / "sft"))
    assert calls == ["run_sft"]

    calls.clear()  # other params: nothing of the old directory is kept
    other = StageContext(
        "organism", None, p.model_copy(update={"sft": p.sft.model_copy(update={"epochs": 3.0})}), ctx.paths
    )
    organism_stage._seed_model(1, other, work)
    assert calls == ["run_vision", "run_lm", "run_sft"]

    calls.clear()  # another world under the same params: nothing kept either
    (world / "spec.json").write_text('{"changed": true}')
    organism_stage._seed_model(1, other, work)
    assert calls == ["run_vision", "run_lm", "run_sft"]


def test_a_sub_stage_trained_again_invalidates_the_later_ones(tmp_path, monkeypatch):
    import shutil

    p = load_params("params.yaml")
    ctx = StageContext("organism", None, p, SimpleNamespace(world_dir=str(tmp_path / "world")))
    calls: list[str] = []
    _fake_stages(monkeypatch, calls)
    organism_stage._seed_model(2, ctx, tmp_path)
    shutil.rmtree(tmp_path / "seed2" / "vision")  # the tower lost: the kept lm and sft were trained from it
    assert (tmp_path / "seed2" / "lm.json").is_file() and (tmp_path / "seed2" / "sft.json").is_file()
    calls.clear()
    organism_stage._seed_model(2, ctx, tmp_path)
    assert calls == ["run_vision", "run_lm", "run_sft"]
