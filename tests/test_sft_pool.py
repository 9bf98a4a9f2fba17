"""SFT never resumes: what a killed SFT left in its work dir (e.g. pool checkpoints of other
``sft.pool_fractions``) is removed, with a line, and the pool holds exactly the configured members."""

import torch

from study.config import load_section
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.sft import train_sft
from study.model.stage import model_params_of, sft_params_of
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


def test_a_killed_sfts_pool_checkpoints_do_not_join_the_next_pool(pretrain_world, spec, tmp_path, capsys):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    out, pool = tmp_path / "sft", tmp_path / "pool"
    stale = tmp_path / "sft.work" / "pool" / "frac0.1"  # what a run with pool_fractions [0.1, 0.3] left when killed
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    p = sft_params_of(
        load_section("sft"), epochs=1, batch_size=64, val_rows=8, pool_fractions=(0.2, 0.5), freeze_vision=False
    )
    m = train_sft(model, proc, pretrain_world, p, out, None, seed=0, pool_dir=pool)
    said = capsys.readouterr().out
    assert (
        f"not resuming SFT from {tmp_path / 'sft.work'}: it does not resume, the leftover state (pool) is "
        "removed; starting clean" in said
    )
    assert m["pool"] == ["frac0.2", "frac0.5"] and sorted(d.name for d in pool.iterdir()) == ["frac0.2", "frac0.5"]
    assert not (tmp_path / "sft.work").exists()
