"""The ``replicates`` stage rebuilds, for each further SFT draw, what the decisive runs read from their SFT model
(evaluation, preference and BDHS data, reward models) with the main chain's stage functions, then trains each
decisive run once with that draw's seed; the paper stage pairs every model with its own draw."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from study.align import replicates
from study.config import REWARD_MODELS_DIR, load_params
from study.pipeline import StageContext


def _params(enabled=True):
    p = load_params("params.yaml")
    return p.model_copy(update={"replicates": p.replicates.model_copy(update={"enabled": enabled})})


def _fake_runners(monkeypatch, calls, fail_at=None):
    """Each sub-stage records (stage, run, ctx) and writes its outputs' directories, then its metrics."""

    def runner(stage):
        def run(ctx):
            calls.append((stage, ctx.run, ctx))
            if (stage, ctx.run) == fail_at:
                raise KeyboardInterrupt(f"killed in {stage}")
            x = ctx.paths
            for key in ("out_dir", "heldout_dir", "union_dir", "eval_dir"):
                if getattr(x, key, None):
                    Path(getattr(x, key)).mkdir(parents=True, exist_ok=True)
            if stage == "align":
                _, _, seeds = ctx.params.align_run(ctx.run)
                for k in seeds:
                    Path(x.eval_dir, f"seed{k}").mkdir(parents=True, exist_ok=True)
                    Path(x.eval_dir, f"seed{k}", "predictions.jsonl").write_text("")
            Path(x.metrics_path).parent.mkdir(parents=True, exist_ok=True)
            metrics = {"stage": stage, "run": ctx.run}
            if stage == "align":
                metrics["train_per_seed"] = {str(k): {"collapse/collapsed": True} for k in seeds}
            Path(x.metrics_path).write_text(json.dumps(metrics))

        return run

    monkeypatch.setattr(replicates, "_runner", runner)


def _ctx(p, tmp_path):
    world, seeds_dir = tmp_path / "world", tmp_path / "sft_seeds"
    world.mkdir(exist_ok=True)
    (world / "spec.json").write_text("{}")
    for k in (1, 2):
        (seeds_dir / f"seed{k}" / "sft").mkdir(parents=True, exist_ok=True)
        (seeds_dir / f"seed{k}" / "sft" / "model.safetensors").write_text(f"sft {k}")
        (seeds_dir / f"seed{k}" / "pool").mkdir(exist_ok=True)
    paths = SimpleNamespace(
        world_dir=str(world),
        seeds_dir=str(seeds_dir),
        out_dir=str(tmp_path / "replicates"),
        metrics_path=str(tmp_path / "replicates.json"),
    )
    return StageContext("replicates", None, p, paths)


def test_replicate_params_train_each_decisive_run_once_with_the_draws_seed_and_its_own_reward_models():
    p = _params()
    rep = replicates.replicate_params(p, 2, "work/seed2/models/rm")
    decisive = p.decisive_runs()
    assert decisive and replicates.decisive_order(p) == [r for r in p.align.all_runs() if r in decisive]
    for run in p.align.all_runs():
        config, data, seeds = rep.align_run(run)
        assert seeds == ([2] if run in decisive else p.align_run(run)[2]), run
        assert data == p.align_run(run)[1]
        if replicates.judged_by_trained_rm(p, run):
            assert run in decisive  # every RL-with-RM run is decisive (F7-RL)
            name = Path(p.align.rm_runs[run]["reward_model_path"]).name
            assert config.reward_model_path == f"work/seed2/models/rm/{name}"
    assert p.align.rm_runs == load_params("params.yaml").align.rm_runs  # the original is untouched
    assert all(Path(v["reward_model_path"]).parent == Path(REWARD_MODELS_DIR) for v in p.align.rm_runs.values())


def test_a_draw_runs_evaluate_preferences_bdhs_reward_models_then_each_decisive_run_on_its_own_sft(
    tmp_path, monkeypatch
):
    calls: list = []
    _fake_runners(monkeypatch, calls)
    p = _params()
    ctx = _ctx(p, tmp_path)
    metrics = replicates.run_replicates(ctx)
    runs = replicates.decisive_order(p)
    assert metrics["seeds"] == [1, 2] and metrics["runs"] == runs
    order = [(s, r) for s, r, _ in calls]
    per_draw = [("evaluate", None), ("preferences", None), ("bdhs", None), ("reward_models", None)]
    per_draw += [("align", r) for r in runs]
    assert order == per_draw * 2
    for i, (stage, run, c) in enumerate(calls):
        k = 1 if i < len(per_draw) else 2
        x, d = c.paths, tmp_path / "replicates.work" / f"seed{k}"
        assert x.world_dir == ctx.paths.world_dir and c.params.seed == p.seed  # same prompts and items
        sft = str(tmp_path / "sft_seeds" / f"seed{k}" / "sft")
        assert sft in (getattr(x, "model_dir", None), getattr(x, "sft_dir", None)), (stage, run)
        if stage == "preferences":
            assert x.pool_dir == str(tmp_path / "sft_seeds" / f"seed{k}" / "pool")
        if stage == "align":
            data = p.align.all_runs()[run]["data"]
            assert x.data_path == str(d / "prefs" / f"{data}.parquet") and c.params.align_run(run)[2] == [k]
            assert x.eval_dir == str(d / "eval" / run)
    out = Path(ctx.paths.out_dir)
    assert json.loads((out / "seeds.json").read_text()) == {"seeds": [1, 2], "runs": runs}
    for k in (1, 2):
        assert (out / f"seed{k}" / "eval" / "sft").is_dir() and (out / f"seed{k}" / "prefs" / "recipes").is_dir()
        for r in runs:
            assert (out / f"seed{k}" / "eval" / r / f"seed{k}" / "predictions.jsonl").is_file()
        assert not (out / f"seed{k}" / "models").exists()  # models are not kept
        assert set(metrics["per_seed"][str(k)]) == {"eval_sft", "prefs", "bdhs", "reward_models", "align"}
    assert not (tmp_path / "replicates.work").exists()
    assert json.loads(Path(ctx.paths.metrics_path).read_text()) == json.loads(json.dumps(metrics))


def test_a_killed_draw_keeps_its_finished_sub_stages_under_the_same_params_only(tmp_path, monkeypatch):
    p = _params()
    ctx = _ctx(p, tmp_path)
    runs = replicates.decisive_order(p)
    calls: list = []
    _fake_runners(monkeypatch, calls, fail_at=("align", runs[1]))
    with pytest.raises(KeyboardInterrupt):
        replicates.run_replicates(ctx)
    calls.clear()
    _fake_runners(monkeypatch, calls)
    replicates.run_replicates(ctx)
    assert [(s, r) for s, r, _ in calls][: len(runs) - 1] == [("align", r) for r in runs[1:]]
    calls.clear()  # a changed SFT draw: that draw starts over
    (tmp_path / "sft_seeds" / "seed1" / "sft" / "model.safetensors").write_text("another draw")
    (tmp_path / "replicates.work" / "seed1").mkdir(parents=True)
    (tmp_path / "replicates.work" / "seed1" / "fingerprint.json").write_text("{}")
    replicates.replicate_seed(1, ctx, tmp_path / "replicates.work")
    assert [s for s, _, _ in calls][:3] == ["evaluate", "preferences", "bdhs"]


def test_nothing_is_replicated_when_disabled_or_without_a_further_draw(tmp_path, monkeypatch):
    calls: list = []
    _fake_runners(monkeypatch, calls)
    ctx = _ctx(_params(enabled=False), tmp_path)
    assert replicates.run_replicates(ctx) == {"seeds": [], "runs": [], "per_seed": {}} and calls == []
    assert json.loads((tmp_path / "replicates" / "seeds.json").read_text()) == {"seeds": [], "runs": []}
    p = _params()
    one = p.model_copy(update={"organism": p.organism.model_copy(update={"sft_seeds": [p.seed]})})
    based = p.model_copy(update={"model": p.model.model_copy(update={"base_path": "models/llava"})})
    assert replicates.replicate_seeds(p) == [1, 2]  # the default's further draws, when enabled
    assert replicates.replicate_seeds(one) == [] and replicates.replicate_seeds(based) == []  # sft.on_base: pass


def test_the_paper_reads_every_draw_of_a_model_and_every_draws_trainings(tmp_path):
    from study.report import findings
    from study.report.paper import with_replicate_training

    def write(d: Path, rows):
        d.mkdir(parents=True)
        (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "scenes.jsonl").write_text("")

    ev, rep = tmp_path / "eval", tmp_path / "replicates"
    write(ev / "sft", [{"m": "sft0"}])
    write(ev / "dpo_bdhs" / "seed0", [{"m": "dpo0"}])
    write(ev / "dpo_povid" / "seed0", [{"m": "povid0"}])
    write(rep / "seed1" / "eval" / "sft", [{"m": "sft1"}])
    write(rep / "seed1" / "eval" / "dpo_bdhs" / "seed1", [{"m": "dpo1"}])
    (rep / "seeds.json").write_text(json.dumps({"seeds": [1], "runs": ["dpo_bdhs"]}))
    assert findings.model_predictions(ev, "SFT", 0, rep)[0] == {0: [[{"m": "sft0"}]], 1: [[{"m": "sft1"}]]}
    assert findings.model_predictions(ev, "dpo_bdhs", 0, rep)[0] == {0: [[{"m": "dpo0"}]], 1: [[{"m": "dpo1"}]]}
    assert findings.model_predictions(ev, "dpo_povid", 0, rep)[0] == {0: [[{"m": "povid0"}]]}  # not decisive
    assert findings.model_predictions(ev, "SFT", 0, None)[0] == {0: [[{"m": "sft0"}]]}

    runs = {"SFT": {}, "ppo_rm_povid": {"train_per_seed": {"0": {"collapse/collapsed": False}}}}
    m = tmp_path / "replicates.json"
    assert with_replicate_training(runs, m) is runs  # no replicates: unchanged
    m.write_text(
        json.dumps(
            {"per_seed": {"1": {"align": {"ppo_rm_povid": {"train_per_seed": {"1": {"collapse/collapsed": True}}}}}}}
        )
    )
    out = with_replicate_training(runs, m)
    assert out["ppo_rm_povid"]["train_per_seed"] == {
        "0": {"collapse/collapsed": False},
        "draw1/seed1": {"collapse/collapsed": True},
    }
    assert findings.collapsed(out["ppo_rm_povid"]) is True and findings.collapsed(runs["ppo_rm_povid"]) is False
