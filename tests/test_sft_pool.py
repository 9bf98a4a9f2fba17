"""SFT never resumes: what a killed SFT left in its work dir (e.g. pool checkpoints of other
``sft.pool_fractions``) is removed, with a line, and the pool holds exactly the configured members."""

import dataclasses

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


def test_sft_trainer_is_the_stages_trainer_with_overrides(pretrain_world, spec, tmp_path):
    """The trainer the SFT stage and ``benchmarks/sft_speed.py`` share: the tower frozen when asked, the
    world's train corpus, the val rows only when evaluating, and the overrides in its config."""
    from study.model.sft import sft_trainer

    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    p = sft_params_of(load_section("sft"), epochs=1, batch_size=64, val_rows=8, freeze_vision=True)
    t = sft_trainer(model, proc, pretrain_world, p, tmp_path, 0, evaluate=False, max_steps=3, eval_strategy="no")
    assert not any(q.requires_grad for q in model.model.vision_tower.parameters())
    assert any(q.requires_grad for q in model.model.language_model.parameters())
    assert len(t.train_dataset) == len(pretrain_world.corpus("train")) and t.eval_dataset is None
    assert t.args.max_steps == 3 and t.args.learning_rate == p.learning_rate
    unfrozen = build_model(proc, 48, TINY, seed=0)
    t2 = sft_trainer(unfrozen, proc, pretrain_world, dataclasses.replace(p, freeze_vision=False), tmp_path, 0)
    assert all(q.requires_grad for q in unfrozen.model.vision_tower.parameters())
    assert len(t2.eval_dataset) == 8
