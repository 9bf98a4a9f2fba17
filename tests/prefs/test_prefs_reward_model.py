"""Learned reward model: TRL RewardTrainer on a tiny LLaVA trains, saves (safetensors), reloads, learns."""

import json
import math
import re

import pytest
import torch
from safetensors import safe_open
from transformers import TrainerCallback

from study.align.common import LORA_TARGETS, bf16_available
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
    RMParamsError,
    VisionPreferenceCollator,
    VisionRewardTrainer,
    check_rm_params,
    last_token_index,
    prepare_reward_model,
    reward_config,
    reward_dataset,
    reward_model_from_backbone,
    save_reward_model,
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
    # a judge on a GPU loads in bf16 (judge_placement); the same weights in bf16 keep the trained preference
    half, _ = load_reward_model(tmp_path / "rm", dtype=torch.bfloat16)
    assert {q.dtype for q in half.parameters()} == {torch.bfloat16}
    loss_half, acc_half = _bt_loss(half, processor, world, rows)
    assert acc_half == 1.0 and loss_half == pytest.approx(loss_after, abs=0.05)


def test_a_judge_stays_on_the_cpu_in_fp32_without_a_gpu():
    from study.prefs.reward_model import judge_placement

    if torch.cuda.is_available():
        assert judge_placement(True) == {"device": "cuda", "dtype": torch.bfloat16}
        assert judge_placement(False) == {"device": "cuda", "dtype": torch.float32}
    else:  # the CPU study's judges are unchanged whatever align.bf16 says
        assert judge_placement(True) == judge_placement(False) == {"device": None, "dtype": torch.float32}


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


# ------------------------------------------------------------------ LoRA, bf16, checkpointing (the GPU path)

BF16 = bf16_available()  # this CPU has AVX-512 BF16: bf16 is tested where it runs, refused where not


class Probe(TrainerCallback):
    """Records, at the first step's end, what trains, in which dtype, and what the trainer ran with."""

    def __init__(self):
        self.seen = {}
        self.with_grad = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        if self.with_grad is None:  # which parameters the first backward reached
            self.with_grad = sorted(n for n, q in model.named_parameters() if q.grad is not None)

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.seen:
            return
        named = list(model.named_parameters())
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.seen = {
            "args_bf16": args.bf16,
            "args_ckpt": args.activation_checkpointing,
            "ckpt_kwargs": args.activation_checkpointing_kwargs,
            "ckpt_layers": [
                m.gradient_checkpointing for m in base.modules() if type(m).__name__ == "LlamaDecoderLayer"
            ],
            "trainable": sorted(n for n, q in named if q.requires_grad),
            "trainable_dtypes": {q.dtype for _, q in named if q.requires_grad},
            "frozen_dtypes": {q.dtype for _, q in named if not q.requires_grad},
        }


def _lora_params(**kw):
    base = dict(lora=True, lora_r=4, lora_alpha=8, learning_rate=1e-2, max_steps=3, batch_size=4, logging_steps=1)
    return rm_params_of(load_section("rm"), **{**base, **kw})


def _is_lora_target(name: str) -> bool:
    """A saved key of a projection LoRA targets (saved names read ``language_model.model.layers...``)."""
    return re.fullmatch(LORA_TARGETS + r"\.weight", name) is not None


def _tensors(rm_dir) -> dict:
    with safe_open(str(rm_dir / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_lora_trains_only_adapters_and_head_then_saves_a_plain_model(world, tiny_dirs, tmp_path):
    """rm.lora: only the adapters on the language model's projections and the score head train; the merged
    directory has exactly the keys of a fully fine-tuned RM (no peft key), loads unchanged, and every weight
    LoRA does not target is bitwise the untrained one's."""
    rows = povid_recipe(world, n=16, seed=0)
    probe = Probe()
    out = tmp_path / "rm"
    metrics = train_reward_model(tiny_dirs[0], rows, world, out, _lora_params(), seed=0, callbacks=[probe])
    assert metrics["steps"] == 3 and all(math.isfinite(x) for x in metrics["losses"])
    assert metrics["params"]["lora"] is True
    trainable = probe.seen["trainable"]
    assert trainable and all(
        ("lora_A" in n or "lora_B" in n) and "language_model" in n or "score" in n for n in trainable
    )
    assert any("score" in n and "modules_to_save" in n for n in trainable)  # the head is trained fully
    assert probe.with_grad == trainable  # gradients reach exactly the adapters and the head
    assert not any("vision_tower" in n or "multi_modal_projector" in n or "embed" in n for n in trainable)
    assert probe.seen["args_ckpt"] is False and probe.seen["args_bf16"] is False

    untrained, processor = reward_model_from_backbone(tiny_dirs[0], seed=0)  # the same start (head seed 0)
    save_reward_model(untrained, processor, tmp_path / "untrained")  # today's format: full fine-tuning saves this
    init, saved = _tensors(tmp_path / "untrained"), _tensors(out)
    assert set(saved) == set(init)  # the plain reward model's keys: nothing of peft
    assert not any(s in k for k in saved for s in ("lora_", "base_model", "modules_to_save", "original_module"))
    assert {f.name for f in out.iterdir()} == {f.name for f in (tmp_path / "untrained").iterdir()}
    config = lambda d: json.loads((d / "config.json").read_text())
    assert config(out) == config(tmp_path / "untrained")
    moved = {k for k in saved if not torch.equal(saved[k], init[k])}
    assert "score.weight" in moved
    assert any(_is_lora_target(k) for k in moved)  # merged adapters changed the targeted projections
    assert all(k == "score.weight" or _is_lora_target(k) for k in moved), sorted(moved)  # the rest is frozen
    assert not any("vision_tower" in k or "multi_modal_projector" in k for k in moved)

    model, processor = load_reward_model(out)
    assert type(model).__name__ == "LlavaRewardModel" and all(q.dtype == torch.float32 for q in model.parameters())
    imgs = [world.image(r["scene_id"]) for r in rows[:6]]
    prompts, answers = [r["prompt"] for r in rows[:6]], [r["chosen"] for r in rows[:6]]
    after = reward_scores(model, processor, imgs, prompts, answers)
    before = reward_scores(untrained, processor, imgs, prompts, answers)
    assert all(math.isfinite(x) for x in after)
    assert max(abs(a - b) for a, b in zip(after, before)) > 1e-3  # the trained RM is not the untrained head


def test_prepare_reward_model_sets_what_trains_and_its_precision(tiny_dirs):
    """Full fine-tuning trains every weight in fp32; LoRA trains adapters + head; bf16 casts only frozen weights."""
    full, _ = reward_model_from_backbone(tiny_dirs[0])
    n_full = sum(q.requires_grad for q in full.parameters())
    full = prepare_reward_model(full, rm_params_of(load_section("rm")))
    assert sum(q.requires_grad for q in full.parameters()) == n_full == len(list(full.parameters()))
    assert {q.dtype for q in full.parameters()} == {torch.float32}
    if not BF16:
        pytest.skip("this machine cannot run bfloat16")
    lora, _ = reward_model_from_backbone(tiny_dirs[0])
    lora = prepare_reward_model(lora, _lora_params(bf16=True))
    named = list(lora.named_parameters())
    assert {q.dtype for _, q in named if q.requires_grad} == {torch.float32}
    assert {q.dtype for _, q in named if not q.requires_grad} == {torch.bfloat16}
    full_bf16, _ = reward_model_from_backbone(tiny_dirs[0])  # full FT: every weight trains, so all stay fp32
    full_bf16 = prepare_reward_model(full_bf16, rm_params_of(load_section("rm"), bf16=True))
    assert {q.dtype for q in full_bf16.parameters()} == {torch.float32}


@pytest.mark.skipif(not BF16, reason="this machine cannot run bfloat16")
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_bf16_and_checkpointing_train_a_llava_next_rm_with_finite_loss(
    lora, world, spec, save_tiny_llava_next, tmp_path
):
    """The `gpu` profile's rm switches (bf16, activation checkpointing; with LoRA as there, and under full
    fine-tuning) on a tiny LLaVA-NeXT (anyres): the trainer runs bf16 autocast with non-reentrant checkpointing
    in every decoder layer, trained weights in fp32 and frozen ones in bf16; gradients reach the trained
    weights (all of them but the vision tower's unused last ones); the loss is finite; the merged model scores in process (bf16 backbone, fp32 head, no
    autocast) and loads back as a plain reward model."""
    ckpt = save_tiny_llava_next(tmp_path / "next", spec, text_layers=2)
    rows = povid_recipe(world, n=8, seed=0)
    probe = Probe()
    out = tmp_path / "rm"
    p = _lora_params(lora=lora, bf16=True, gradient_checkpointing=True, max_steps=2)
    metrics = train_reward_model(ckpt, rows, world, out, p, seed=0, eval_rows=rows, callbacks=[probe])
    assert metrics["steps"] == 2 and all(math.isfinite(x) for x in metrics["losses"])
    assert math.isfinite(metrics["train_loss"]) and 0 <= metrics["eval_accuracy"] <= 1
    s = probe.seen
    assert s["args_bf16"] is True and s["args_ckpt"] is True and s["ckpt_kwargs"] == {"use_reentrant": False}
    assert s["ckpt_layers"] == [True, True]
    assert s["trainable_dtypes"] == {torch.float32}
    assert s["frozen_dtypes"] == ({torch.bfloat16} if lora else set())  # full fine-tuning: nothing frozen
    missing = set(s["trainable"]) - set(probe.with_grad)  # the CLIP layers after vision_feature_layer get none
    assert set(probe.with_grad) <= set(s["trainable"]) and all("vision_tower" in n for n in missing)
    assert not missing if lora else any("post_layernorm" in n for n in missing)
    assert not any("lora_" in k or "modules_to_save" in k for k in _tensors(out))
    model, processor = load_reward_model(out)
    assert type(model).__name__ == "LlavaNextRewardModel"
    scores = reward_scores(
        model, processor, [world.image(rows[0]["scene_id"])], [rows[0]["prompt"]], [rows[0]["chosen"]]
    )
    assert math.isfinite(scores[0])


def test_rm_switches_reach_the_reward_config_and_are_checked(monkeypatch, world, tiny_dirs, tmp_path):
    """rm.bf16 / rm.gradient_checkpointing become RewardConfig's bf16 / activation_checkpointing (non-reentrant;
    off by default, although RewardConfig defaults both on); bf16 where it cannot run is refused naming rm.bf16."""
    off = reward_config(rm_params_of(load_section("rm")), tmp_path / "w", 0)
    assert off.bf16 is False and off.activation_checkpointing is False and off.gradient_checkpointing is False
    ckpt = reward_config(rm_params_of(load_section("rm"), gradient_checkpointing=True), tmp_path / "w", 0)
    assert ckpt.activation_checkpointing is True and ckpt.activation_checkpointing_kwargs == {"use_reentrant": False}
    if BF16:
        assert reward_config(rm_params_of(load_section("rm"), bf16=True), tmp_path / "w", 0).bf16 is True
    from study.align import common

    monkeypatch.setattr(common, "bf16_available", lambda: False)
    p = rm_params_of(load_section("rm"), bf16=True)
    with pytest.raises(RMParamsError, match=r"rm\.bf16 is true but this (CPU|GPU).*set rm\.bf16: false"):
        reward_config(p, tmp_path / "w", 0)
    with pytest.raises(RMParamsError, match=r"rm\.bf16"):
        train_reward_model(tiny_dirs[0], povid_recipe(world, n=4, seed=0), world, tmp_path / "rm", p)
    assert not (tmp_path / "rm").exists()
    with pytest.raises(RMParamsError, match=r"rm\.lora_r must be >= 1"):
        check_rm_params(rm_params_of(load_section("rm"), lora=True, lora_r=0))
    with pytest.raises(RMParamsError, match=r"rm\.lora_alpha must be > 0"):
        check_rm_params(rm_params_of(load_section("rm"), lora=True, lora_alpha=0))


def test_gpu_profile_trains_reward_models_as_align_base():
    """`profiles.gpu.rm` mirrors `profiles.gpu.align.base` (LoRA 128/256, bf16, checkpointing); the CPU study's
    rm switches are all off (full fine-tuning in fp32, as before the knobs existed)."""
    import yaml

    from study.config import ParamsError, resolve

    raw = yaml.safe_load(open("params.yaml"))
    gpu = resolve(raw, "gpu")
    r, a = gpu.rm, gpu.align_params("dpo")
    knobs = ("lora", "lora_r", "lora_alpha", "bf16", "gradient_checkpointing")
    assert tuple(getattr(r, k) for k in knobs) == (True, 128, 256, True, True) == tuple(getattr(a, k) for k in knobs)
    q = resolve(raw, "quick").rm
    assert (q.lora, q.bf16, q.gradient_checkpointing) == (False, False, False)
    raw["profiles"]["gpu"]["rm"]["lora_r"] = 0
    with pytest.raises(ParamsError, match=r"profiles\.gpu\.rm\.lora_r"):
        resolve(raw, "gpu")
