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
