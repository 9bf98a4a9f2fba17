"""benchmarks/organism_leads.py: leads started together build their shared world once and wait for it."""

import threading
import time
from pathlib import Path

import pytest

from study.config import load_params


@pytest.fixture(scope="module")
def tool(script_module):
    return script_module("benchmarks/organism_leads.py")


def test_two_leads_at_once_build_one_world_and_both_get_it(tool, tmp_path, monkeypatch):
    """Without the lock both leads saw no world, both built it, and one replaced the directory the other read."""
    import study.world.stage as world_stage

    calls = []

    def slow_build(ctx):
        calls.append(ctx.paths.out_dir)
        time.sleep(0.5)  # long enough that the second lead arrives while the first is building
        Path(ctx.paths.out_dir).mkdir(parents=True)
        (Path(ctx.paths.out_dir) / "spec.json").write_text("{}")

    monkeypatch.setattr(world_stage, "run_world", slow_build)
    p = load_params("params.yaml", profile="smoke")
    got = {}

    def lead(i):
        got[i] = tool.cached_world(p, tmp_path)

    threads = [threading.Thread(target=lead, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(calls) == 1
    assert got[0][0] == got[1][0] == Path(calls[0])
    assert sorted(s is None for _, s in got.values()) == [False, True]  # one built (timed), one reused


def test_other_world_params_get_their_own_world(tool, tmp_path):
    """A real smoke-size world: a changed world knob is another cache entry; the same params reuse it."""
    p = load_params("params.yaml", profile="smoke")
    q = load_params("params.yaml", profile="smoke", overrides={"world": {"faint_alpha": p.world.faint_alpha / 2}})
    wdir, built = tool.cached_world(p, tmp_path)
    assert built is not None and (wdir / "spec.json").is_file()
    assert tool.cached_world(p, tmp_path) == (wdir, None)
    other, _ = tool.cached_world(q, tmp_path)
    assert other != wdir and (other / "spec.json").is_file()


def test_lm_only_skips_the_tower_and_writes_the_text_stages_metrics(tool, tmp_path, monkeypatch):
    import json
    import sys

    import study.model.stage as model_stage

    def no_tower(*a, **k):
        raise AssertionError("--lm-only must not pretrain the tower")

    monkeypatch.setattr(model_stage, "pretrain_tower", no_tower)
    argv = ["organism_leads.py", "--name", "t", "--profile", "smoke", "--lm-only", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path)])
    tool.main()
    got = json.loads((tmp_path / "t.json").read_text())
    assert "vision" not in got and got["lm"]["train_rows"] > 0 and 0 <= got["lm"]["reading_accuracy"] <= 1
    assert got["times"]["lm_s"] > 0 and not (tmp_path / "models" / "t").exists()  # no SFT model
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path), "--tower-only"])
    with pytest.raises(SystemExit):
        tool.main()


def test_the_text_stages_draw_does_not_depend_on_the_tower(tool, tmp_path):
    """Why ``--lm-only`` may skip the tower: the same seed gives the same text stage with or without it."""
    import torch

    from study.model.stage import base_model, pretrain_language_model, pretrain_tower
    from study.world.corpus import World
    from study.world.spec import load_spec

    p = load_params("params.yaml", profile="smoke")
    world_dir, _ = tool.cached_world(p, tmp_path)
    world, spec = World(world_dir), load_spec(p.world.spec)
    got = []
    for tower in (True, False):
        torch.set_num_threads(1)
        model, processor = base_model(p.model, spec, 3)
        if tower:
            pretrain_tower(p.vision, model, processor, world, spec, 3)
        lm = pretrain_language_model(p.lm, model, processor, world, spec, 3, tmp_path / f"lm{tower}")
        got.append({k: lm[k] for k in ("train_loss", "reading_accuracy", "reading_auroc")})
    assert got[0] == got[1]
