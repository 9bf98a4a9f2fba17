"""The GPU path, tested on CPU: the `gpu` profile's knobs (LoRA, bf16, activation checkpointing) on a tiny
random LLaVA-NeXT checkpoint built offline, through the same ``study.align.train`` call a GPU run makes;
the `gpu` profile, the accelerate configs and ``scripts/align_gpu.py``."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from study.align import common, train
from study.align.config import PAPER_LR_GRID, AlignParamsError
from study.config import ParamsError, align_params, resolve
from study.model.load import ModelPathError, check_model_dir, load_model

ROOT = Path(__file__).resolve().parents[2]
# what this CPU can do (AVX-512 BF16 here): bf16 is tested where it runs, refused where it does not
BF16 = common.bf16_available()


@pytest.fixture(scope="module")
def llava_next_dir(tmp_path_factory, spec, save_tiny_llava_next):
    """A tiny random LLaVA-NeXT checkpoint (anyres tiling, image_newline) saved with safetensors."""
    return save_tiny_llava_next(tmp_path_factory.mktemp("llava_next_gpu"), spec, text_layers=2)


GPU_BASE = dict(  # the `gpu` profile's align.base, LoRA shrunk for speed (high LR so 2 steps move the adapters)
    lora=True,
    lora_r=4,
    lora_alpha=8,
    bf16=BF16,
    gradient_checkpointing=True,
    learning_rate=1e-2,
    projector_lr=PAPER_LR_GRID["projector_lr"][1],
    epochs=1.0,
    batch_size=4,
    grad_accum=1,
    warmup_ratio=0.0,
    lr_scheduler="constant",
    logging_steps=1,
    save_steps=1000,
)


def gpu_knobs(method: str = "dpo", **kw):
    """``method``'s config with :data:`GPU_BASE` and those of ``kw`` it reads (one set of tiny knobs serves
    every method)."""
    from study.align import methods

    reads = methods.get(method).reads
    return align_params(method, **{**GPU_BASE, **{k: v for k, v in kw.items() if k in reads}})


class Probe(TrainerCallback):
    """Records, mid-training, what precision and checkpointing the trainer really ran with."""

    def __init__(self):
        self.seen = {}

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.seen:
            return
        base = model.get_base_model()
        layers = [m for m in base.modules() if type(m).__name__ == "LlamaDecoderLayer"]
        named = list(model.named_parameters())
        self.seen = {
            "args_bf16": args.bf16,
            "args_ckpt": args.activation_checkpointing,
            "ckpt_layers": [m.gradient_checkpointing for m in layers],
            "trainable": {q.dtype for _, q in named if q.requires_grad},
            "frozen_lm": {q.dtype for n, q in named if not q.requires_grad and "language_model" in n},
            "projector_copy": {q.dtype for n, q in named if "modules_to_save" in n},
            "lora_b_max": max(float(q.detach().abs().max()) for n, q in named if "lora_B" in n),
        }


def test_gpu_knobs_train_lora_dpo_on_llava_next(llava_next_dir, world, rows, tmp_path):
    probe = Probe()
    m = train(
        "dpo",
        policy=str(llava_next_dir),
        world=world,
        data=rows[:8],
        params=gpu_knobs(),
        out_dir=tmp_path / "out",
        live_dir=tmp_path / "live",
        callbacks=[probe],
    )
    assert m["steps"] == 2 and m["rewards/margins_last"] > m["rewards/margins_first"] == 0.0
    s = probe.seen
    assert s["args_ckpt"] and len(s["ckpt_layers"]) == 2 and all(s["ckpt_layers"])  # checkpointing really on
    assert s["lora_b_max"] > 0  # LoRA B starts at 0: gradients reached the adapters through the checkpoints
    assert s["trainable"] == {torch.float32} and s["projector_copy"] == {torch.float32}  # AdamW master weights
    assert s["args_bf16"] is BF16 and s["frozen_lm"] == {torch.bfloat16 if BF16 else torch.float32}

    out = tmp_path / "out"
    files = sorted(f.name for f in out.iterdir())
    assert any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    assert json.loads((out / "align.json").read_text())["params"]["bf16"] is BF16
    trained, _ = load_model(out)
    assert type(trained).__name__ == "LlavaNextForConditionalGeneration"
    initial, _ = load_model(llava_next_dir, dtype=torch.bfloat16 if BF16 else None)  # what training started from
    sd0, sd1 = {k: v.float() for k, v in initial.state_dict().items()}, trained.state_dict()
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(sd0[q], sd1[q])  # LoRA merged into the base weight
    for k in sd0:
        if "vision_tower" in k or "embed_tokens" in k or k == "model.image_newline":
            assert torch.equal(sd0[k], sd1[k]), k  # frozen
    # the projector trains at the paper's 2e-6 from a bf16 start: in bf16 most of these steps would round away
    w = "model.multi_modal_projector.linear_1.weight"
    assert (sd0[w] != sd1[w]).float().mean() > 0.9


@pytest.mark.parametrize("method", ["avg_dpo", "online_dpo", "rloo", "ppo"])
def test_other_methods_run_the_gpu_knobs_on_llava_next(method, llava_next_dir, world, rows, good_words, tmp_path):
    """Same knobs through the other trainers/loops (TRL's RLOO, the online rounds, the compact PPO)."""
    knobs = gpu_knobs(
        method,
        batch_size=2,
        max_new_tokens=6,
        round_size=4,
        gen_batch_size=8,
        reward_norm_prompts=0,
        ppo_minibatch=2,
        rloo_k=2,
    )
    train(
        method,
        policy=str(llava_next_dir),
        world=world,
        data=rows[:4],
        params=knobs,
        out_dir=tmp_path / "out",
        annotator=good_words,
    )
    assert any(f.suffix == ".safetensors" for f in (tmp_path / "out").iterdir())
    trained, _ = load_model(tmp_path / "out")
    initial, _ = load_model(llava_next_dir, dtype=torch.bfloat16 if BF16 else None)
    sd0, sd1 = {k: v.float() for k, v in initial.state_dict().items()}, trained.state_dict()
    q = "model.language_model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(sd0[q], sd1[q])  # the adapters trained and were merged
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0 if "vision_tower" in k)


def test_bf16_detection_matches_this_machine():
    """This CPU (AVX-512 BF16) runs the bf16 variant of these tests; so does any bf16 GPU or native-bf16 CPU."""
    if torch.cuda.is_available():
        assert BF16 == torch.cuda.is_bf16_supported()
        return
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if not any(f in flags for f in ("avx512_bf16", "amx_bf16")):
        pytest.skip("no native bf16 on this CPU: bf16 may or may not be emulated")
    assert BF16


def test_bf16_is_refused_where_it_cannot_run(monkeypatch, llava_next_dir, world, rows, tmp_path):
    monkeypatch.setattr(common, "bf16_available", lambda: False)
    model, proc = load_model(llava_next_dir)
    with pytest.raises(AlignParamsError, match=r"align\.bf16 is true"):
        train(
            "dpo",
            policy=(model, proc),
            world=world,
            data=rows[:4],
            params=gpu_knobs(bf16=True),
            out_dir=tmp_path / "out",
        )
    assert {q.dtype for q in model.parameters()} == {torch.float32}  # refused before the model was touched
    assert not (tmp_path / "out").exists()


def test_precision_args_reach_the_trl_configs(tmp_path):
    from study.align.rl import rloo_args

    p, r = gpu_knobs(bf16=True, gradient_checkpointing=True), gpu_knobs("rloo", bf16=True, gradient_checkpointing=True)
    for args in (common.dpo_args(p, tmp_path, 0), rloo_args(r, tmp_path, 0)):
        assert args.bf16 and args.mixed_precision == "bf16"
        assert args.activation_checkpointing and args.activation_checkpointing_kwargs == {"use_reentrant": False}
    off = common.dpo_args(gpu_knobs(bf16=False, gradient_checkpointing=False), tmp_path, 0)
    assert not off.bf16 and not off.activation_checkpointing  # TRL's own defaults (True/True) are overridden


def test_bf16_policy_generates_outside_autocast(llava_next_dir, world):
    """Online sampling runs the half-trained model (bf16 tower, fp32 projector copy) without autocast."""
    from study.model.generate import generate

    if not BF16:
        pytest.skip("bf16 does not run on this machine")
    model, proc = load_model(llava_next_dir)
    p = gpu_knobs()
    model = common.wrap_lora(common.prepare_model(model, p), p)
    assert common.upcast_trainable(model) > 0
    sid = world.scenes("train")[0].scene_id
    out = generate(model, proc, [world.image(sid)], ["describe the image in detail ."], max_new_tokens=4)
    assert len(out) == 1 and isinstance(out[0], str)


# ------------------------------------------------------------------------------- profile and launch


def gpu_profile() -> dict:
    """The `gpu` block of params.yaml's `profiles`."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "gpu" in (raw.get("profiles") or {}), "params.yaml has no `gpu` profile"
    return raw["profiles"]["gpu"]


def params_with_gpu(block: dict | None = None) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.setdefault("profiles", {})["gpu"] = gpu_profile() if block is None else block
    return raw


def test_gpu_profile_resolves_to_the_paper_settings():
    p = resolve(params_with_gpu(), profile="gpu")
    assert p.profile == "gpu" and p.model.base_path.endswith("llava-v1.6-vicuna-7b-hf")
    a = p.align_params("dpo")
    assert (a.lora, a.lora_r, a.lora_alpha, a.bf16, a.gradient_checkpointing) == (True, 128, 256, True, True)
    assert a.learning_rate in PAPER_LR_GRID["learning_rate"] and a.projector_lr in PAPER_LR_GRID["projector_lr"]
    assert a.epochs in (3, 5, 7) and a.batch_size * a.grad_accum in (16, 32, 48)
    assert len(p.align.seeds) >= 2
    for n in (1, 2, 4, 8):  # the global batch splits evenly over the usual GPU counts
        assert a.grad_accum % n == 0
    # resolve checks the knobs, not the checkpoint: the placeholder path is only refused when loaded
    with pytest.raises(ModelPathError, match="does not exist locally"):
        check_model_dir(ROOT / p.model.base_path)


def test_gpu_profile_knobs_are_validated():
    bad = json.loads(json.dumps(gpu_profile()))
    bad["align"]["base"]["bf16"] = "sometimes"
    with pytest.raises(ParamsError, match=r"profiles\.gpu\.align.*bf16"):
        resolve(params_with_gpu(bad), profile="quick")  # every profile is checked, not only the selected one
    bad = json.loads(json.dumps(gpu_profile()))
    bad["align"]["base"]["lora_r"] = 0
    with pytest.raises(ParamsError, match=r"lora_r must be >= 1"):
        resolve(params_with_gpu(bad), profile="gpu")


def test_accelerate_configs():
    from accelerate.commands.config.config_args import load_config_from_file

    multi = load_config_from_file(str(ROOT / "configs/accelerate/multi_gpu.yaml"))
    single = load_config_from_file(str(ROOT / "configs/accelerate/single_gpu.yaml"))
    assert multi.distributed_type == "MULTI_GPU" and multi.num_processes > 1 and not multi.use_cpu
    assert single.distributed_type == "NO" and single.num_processes == 1
    assert multi.mixed_precision == single.mixed_precision == "bf16"


@pytest.fixture(scope="module")
def script(script_module):
    return script_module("scripts/align_gpu.py")


@pytest.fixture
def params_file(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(params_with_gpu()))
    return f


def test_script_plan_validates_and_keeps_the_global_batch(script, params_file, monkeypatch, capsys):
    argv = ["--params", str(params_file), "--run", "dpo_povid", "--profile", "gpu", "--dry-run"]
    assert script.main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["method"] == "dpo" and plan["policy"].endswith("llava-v1.6-vicuna-7b-hf")
    assert plan["global_batch"] == 16 and plan["align"]["grad_accum"] == 8 and plan["seeds"] == [0, 1, 2]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert script.main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["processes"] == 4 and plan["align"]["grad_accum"] == 2 and plan["global_batch"] == 16
    # refused: a non-distributed loop on 4 processes; autocast that the params did not ask for; a bad profile
    assert script.main(["--params", str(params_file), "--run", "ppo", "--profile", "gpu", "--dry-run"]) == 2
    assert "one process only" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert script.main(["--params", str(params_file), "--run", "dpo_povid", "--profile", "quick", "--dry-run"]) == 2
    assert "mixed_precision='bf16' but align.bf16 is False" in capsys.readouterr().err
    assert script.main(["--params", str(params_file), "--run", "dpo_povid", "--profile", "nope", "--dry-run"]) == 2
    assert "`profile` must be one of" in capsys.readouterr().err
    # an RL run rewarded by a reward model that has not been trained here: refused before any model loads
    monkeypatch.chdir(params_file.parent)
    assert (
        script.main(["--params", str(params_file), "--run", "rloo_rm_vlfeedback", "--profile", "gpu", "--dry-run"]) == 2
    )
    assert (
        "align.rm_runs.rloo_rm_vlfeedback.reward_model_path: 'artifacts/models/rm/vlfeedback' does not exist"
        in capsys.readouterr().err
    )


def _artifacts(tmp_path, world, rows) -> Path:
    """The CPU pipeline's inputs of an align run: the world and a preference parquet."""
    from study.prefs.schema import save_prefs

    art = tmp_path / "artifacts"
    save_prefs(rows[:8], art / "prefs" / "recipes" / "povid.parquet", world)
    (art / "world").symlink_to(world.root, target_is_directory=True)
    return art


def _tiny_params(tmp_path, **knobs) -> Path:
    """params.yaml with a `gpu` profile whose knobs are the tiny ones, seed 3, a 2-scene evaluation."""
    tiny = {**gpu_profile(), "eval": {"n_scenes": 2, "n_boot": 10, "max_new_tokens": 4, "batch_size": 4}}
    tiny["align"] = {
        "base": {**gpu_profile()["align"]["base"], **GPU_BASE, **knobs},
        "methods": {"ppo": {"ppo_minibatch": 2}},
        "seeds": [3],
        "decisive_seeds": [3],
    }
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(params_with_gpu(tiny)))
    return f


def test_script_runs_one_seed_end_to_end(script, llava_next_dir, world, rows, tmp_path, capsys):
    art, f = _artifacts(tmp_path, world, rows), _tiny_params(tmp_path)
    rc = script.main(
        [
            "--params",
            str(f),
            "--run",
            "dpo_povid",
            "--profile",
            "gpu",
            "--policy",
            str(llava_next_dir),
            "--artifacts",
            str(art),
            "--out-root",
            str(tmp_path / "gpu"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    model_dir = tmp_path / "gpu" / "models" / "dpo_povid" / "seed3"
    assert (model_dir / "model.safetensors").is_file() and not (tmp_path / "gpu" / "models" / "dpo_povid.work").exists()
    metrics = json.loads((tmp_path / "gpu" / "metrics" / "dpo_povid.json").read_text())
    assert metrics["_meta"]["seeds"] == [3] and metrics["_meta"]["policy"] == str(llava_next_dir)
    assert metrics["_meta"]["dtype"] == ("bfloat16" if BF16 else "float32") and metrics["_meta"]["global_batch"] == 4
    ev = tmp_path / "gpu" / "eval" / "dpo_povid" / "seed3"
    assert (ev / "predictions.jsonl").is_file()
    # the align stage's own evaluation path: scenes for paired comparisons, the training summary
    from study.eval.paired import load_predictions

    preds, scenes = load_predictions(ev.parent)
    assert len(scenes) == 2 and {r["scene_id"] for r in preds[0]} <= {s["scene_id"] for s in scenes}
    assert isinstance(metrics["train"], dict) and metrics["train"]


def _like_one_process(tmp_path) -> tuple[dict, dict]:
    """The one- and two-process runs' training metrics, after checking that two processes with grad_accum
    split between them took the same steps to the same loss."""
    info = [
        json.loads((tmp_path / d / "models" / "dpo_povid" / "seed3" / "align.json").read_text()) for d in ("one", "two")
    ]
    assert [i["params"]["grad_accum"] for i in info] == [2, 1]
    one, two = (i["metrics"] for i in info)
    assert one["steps"] == two["steps"] == 2
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=1e-3)
    return one, two


def test_script_two_processes_train_like_one(script, llava_next_dir, world, rows, tmp_path):
    """Two DDP processes (torchrun, gloo on CPU) with grad_accum split between them take the same steps to the
    same loss as one process; the policy is written once, by the main process."""
    art, f = _artifacts(tmp_path, world, rows), _tiny_params(tmp_path, batch_size=2, grad_accum=2)
    args = [
        "--run",
        "dpo_povid",
        "--profile",
        "gpu",
        "--params",
        str(f),
        "--policy",
        str(llava_next_dir),
        "--artifacts",
        str(art),
        "--no-eval",
    ]
    assert script.main([*args, "--out-root", str(tmp_path / "one")]) == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_MIXED_PRECISION"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        str(ROOT / "scripts" / "align_gpu.py"),
        "--",
        *args,
        "--out-root",
        str(tmp_path / "two"),
    ]
    r = subprocess.run(
        cmd, cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _like_one_process(tmp_path)
    assert (one["distributed"], two["distributed"]) == ("NO", "MULTI_CPU")
    assert r.stdout.count('"processes": 2') == 1  # the plan is printed by the main process only
    assert '"sharding": "ddp"' in r.stdout


def test_fsdp_config_two_cpu_processes_train_like_one(script, llava_next_dir, world, rows, tmp_path):
    """FSDP beside DDP, the same script: ``configs/accelerate/fsdp.yaml`` through ``accelerate launch`` on two
    CPU processes (gloo) takes the same steps to the same loss as one process, and the main process writes
    the whole policy."""
    art, f = _artifacts(tmp_path, world, rows), _tiny_params(tmp_path, batch_size=2, grad_accum=2)
    args = ["--run", "dpo_povid", "--profile", "gpu", "--params", str(f), "--policy", str(llava_next_dir)]
    args += ["--artifacts", str(art), "--no-eval"]
    assert script.main([*args, "--out-root", str(tmp_path / "one")]) == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FSDP_"))}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "configs/accelerate/fsdp.yaml"),
    ]
    cmd += ["--num_processes", "2", "--main_process_port", str(port), "--mixed_precision", "bf16" if BF16 else "no"]
    cmd += [str(ROOT / "scripts" / "align_gpu.py"), *args, "--out-root", str(tmp_path / "two")]
    r = subprocess.run(
        cmd, cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    one, two = _like_one_process(tmp_path)
    # accelerate 1.16 shards only on accelerators (its state enables FSDP for MULTI_GPU-like types, not
    # MULTI_CPU), so on CPU the FSDP launch trains as DDP; what is checked here is the launch, the plan and the
    # wrap classes, which must exist in the policy
    assert (
        r.stdout.count('"sharding": "fsdp"') == 1 and "fsdp wraps ['LlamaDecoderLayer', 'CLIPEncoderLayer']" in r.stdout
    )
    assert (one["distributed"], two["distributed"]) == ("NO", "MULTI_CPU")
    from safetensors import safe_open

    shapes = []
    for d in ("one", "two"):
        with safe_open(str(tmp_path / d / "models" / "dpo_povid" / "seed3" / "model.safetensors"), "pt") as st:
            shapes.append({k: tuple(st.get_slice(k).get_shape()) for k in st.keys()})
    assert shapes[0] == shapes[1]  # the main process wrote the whole policy, not its shard


def test_fsdp_wrap_classes_the_policy_lacks_are_refused(
    script, llava_next_dir, world, rows, tmp_path, monkeypatch, capsys
):
    art, f = _artifacts(tmp_path, world, rows), _tiny_params(tmp_path)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "LlamaDecoderLayer,SiglipEncoderLayer")
    argv = ["--run", "dpo_povid", "--profile", "gpu", "--params", str(f), "--policy", str(llava_next_dir)]
    assert script.main([*argv, "--artifacts", str(art), "--no-eval", "--out-root", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "FSDP wraps ['SiglipEncoderLayer']" in err and "CLIPEncoderLayer" in err  # names what it has
    assert not (tmp_path / "o" / "models" / "dpo_povid" / "seed3").exists()
