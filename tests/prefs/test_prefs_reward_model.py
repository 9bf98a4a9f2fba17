"""Learned reward model: TRL RewardTrainer on a tiny LLaVA trains, saves (safetensors), reloads, learns."""

import math

import pytest
import torch

from study.config import load_section
from study.prefs import (
    RewardModelAnnotator,
    annotator_accuracy,
    load_reward_model,
    make_row,
    povid_recipe,
    reward_scores,
    to_trl,
    train_reward_model,
)
from study.prefs.reward_model import (
    VisionPreferenceCollator,
    VisionRewardTrainer,
    last_token_index,
    reward_config,
    reward_dataset,
    reward_model_from_backbone,
)
from study.prefs.rm_transfer import rm_params_of
from study.prefs.sources import scene_map


def _bt_loss(model, processor, world, rows):
    imgs = [world.image(r["scene_id"]) for r in rows]
    prompts = [r["prompt"] for r in rows]
    c = torch.tensor(reward_scores(model, processor, imgs, prompts, [r["chosen"] for r in rows]))
    r = torch.tensor(reward_scores(model, processor, imgs, prompts, [r["rejected"] for r in rows]))
    return float(-torch.nn.functional.logsigmoid(c - r).mean()), float((c > r).float().mean())


def test_last_token_index_left_and_right_padding():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    assert last_token_index(right).tolist() == [2, 4]
    assert last_token_index(left).tolist() == [4, 4]


def test_train_save_reload_score(world, tiny_dirs, tmp_path):
    rows = povid_recipe(world, n=16, seed=0)
    out = tmp_path / "rm"
    metrics = train_reward_model(
        tiny_dirs[0],
        rows,
        world,
        out,
        rm_params_of(load_section("rm"), max_steps=3, batch_size=4, logging_steps=1),
        seed=0,
        eval_rows=rows[:8],
    )
    assert metrics["steps"] == 3 and len(metrics["losses"]) == 3
    assert all(math.isfinite(x) for x in metrics["losses"]) and 0 <= metrics["eval_accuracy"] <= 1
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".pth")) for f in files)
    assert not (tmp_path / "rm.work").exists()
    model, processor = load_reward_model(out)
    assert type(model).__name__ == "LlavaRewardModel" and model.config.num_labels == 1
    imgs = [world.image(r["scene_id"]) for r in rows[:5]]
    s1 = reward_scores(model, processor, imgs, [r["prompt"] for r in rows[:5]], [r["chosen"] for r in rows[:5]])
    s2 = reward_scores(
        model, processor, imgs, [r["prompt"] for r in rows[:5]], [r["chosen"] for r in rows[:5]], batch_size=2
    )  # batching/padding does not change a score
    assert all(math.isfinite(x) for x in s1) and s1 == pytest.approx(s2, abs=1e-5)
    assert len(set(round(x, 6) for x in s1)) > 1
    ann = RewardModelAnnotator(model, processor, world)
    scene = scene_map(world)[rows[0]["scene_id"]]
    assert ann.score(scene, rows[0]["prompt"], rows[0]["chosen"]) == pytest.approx(s1[0], abs=1e-5)
    assert 0 <= annotator_accuracy(ann, rows, world) <= 1
    with pytest.raises(ValueError, match="not a reward model"):
        load_reward_model(tiny_dirs[0])


def test_loss_goes_down_on_separable_pairs(world, tiny_dirs, tmp_path):
    scenes = world.scenes("train")[:24]
    rows = [
        make_row(
            prompt="is there a cup in the image ?",
            chosen="yes , there is a cup .",
            rejected="no , there is no cup .",
            scene_id=s.scene_id,
            recipe="test",
            seed=0,
            source_ids={"chosen": "hand", "rejected": "hand"},
        )
        for s in scenes
    ]
    before_model, processor = reward_model_from_backbone(tiny_dirs[0], seed=0)
    loss_before, _ = _bt_loss(before_model, processor, world, rows)
    metrics = train_reward_model(
        tiny_dirs[0],
        rows,
        world,
        tmp_path / "rm",
        seed=0,
        p=rm_params_of(load_section("rm"), learning_rate=1e-3, max_steps=12, batch_size=8, logging_steps=3),
    )
    model, processor = load_reward_model(tmp_path / "rm")
    loss_after, acc_after = _bt_loss(model, processor, world, rows)
    assert loss_before == pytest.approx(math.log(2), abs=0.05)  # an untrained head barely separates
    assert loss_after < loss_before - 0.2 and acc_after == 1.0
    assert metrics["losses"][-1] < metrics["losses"][0]


def test_trainer_refuses_text_path_datasets(world, tiny_dirs, tmp_path):
    rows = povid_recipe(world, n=4, seed=0)
    model, processor = reward_model_from_backbone(tiny_dirs[0])
    args = reward_config(rm_params_of(load_section("rm"), max_steps=1, batch_size=2), tmp_path / "w", 0)
    with pytest.raises(ValueError, match="reward_dataset"):
        VisionRewardTrainer(
            model=model,
            args=args,
            train_dataset=to_trl(rows, world),
            processing_class=processor.tokenizer,
            data_collator=VisionPreferenceCollator(processor),
        )
    ds = reward_dataset(rows, world, processor)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert sum(t == image_id for t in ds[0]["chosen_ids"]) == 64  # <image> expanded into the image tokens
    batch = VisionPreferenceCollator(processor)([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[0] == 4
