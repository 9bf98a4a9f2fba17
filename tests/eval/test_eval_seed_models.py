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
