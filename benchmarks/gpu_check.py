"""One-command GPU device check: a LLaVA-NeXT with LLaVA-1.6-7B's shapes through the study's own trainers.

    python benchmarks/gpu_check.py                 # one CUDA GPU; <= 8 min on an H100/H200, nothing downloaded
    python benchmarks/gpu_check.py --json out.json # also write the figures

What it does:
1. builds a small procedural world (48 x 48 images, 64 train scenes) in a temporary directory and
   preference pairs from its descriptions (chosen = the true description, rejected = one object swapped);
2. builds a LLaVA-NeXT from a config written here with the 7B's shapes (Vicuna-7B: 32 layers, hidden 4096,
   32 heads, MLP 11008, vocabulary 32,064; CLIP ViT-L/14 at 336 px: 24 layers, hidden 1024; anyres tiling
   with LLaVA-1.6's grid pinpoints), randomly initialised in bf16 on the GPU. The tokenizer is the world's
   word-level one padded with dummy tokens to the 7B's vocabulary size, so the embedding, the LM head and
   the logits have the real sizes;
3. runs ``--steps`` DPO steps through :func:`study.align.train` with the ``gpu`` profile's knobs (LoRA r128,
   alpha 256, bf16, activation checkpointing, batch 2 pairs), every step on the same two pairs at a learning
   rate of 1e-4, then one Online-DPO round (8 prompts, oracle judge);
4. prints tokens/s, step time, peak GPU memory and model FLOPs utilisation, and fails (exit 1) unless the
   loss moved: the DPO reward margin on the repeated pairs (0 at the start of every DPO run) must rise by
   more than ``MIN_MARGIN_GAIN`` and the last logged loss must be below the first.

FLOPs (counted from the shapes, per training sequence of T language-model tokens, image tokens included;
``N`` = the language model's matmul parameters per token, L layers of width d; ``F_v`` = the vision tower's
and projector's forward FLOPs for the sequence's image tiles, counted the same way over 577 tokens a tile):

    F_lm(T) = 2 N T + 4 L d T^2                       (matmuls; attention scores and values, causal mask not discounted)
    DPO step = sum over the step's sequences (chosen and rejected of each pair) of
               2 F_lm(T)      policy forward + input gradients (frozen weights need no weight gradients;
                              LoRA's own weight gradients, < 4 % of this at r128, are not counted)
             + F_lm(T)        reference forward (the base with adapters disabled)
             + 2 F_v          vision tower, policy and reference (frozen: forward only)

Activation-checkpointing recomputation is not counted (the MFU convention: model FLOPs, not hardware
FLOPs). Sequence lengths are measured with the processor on every pair and averaged, so tokens per step =
2 x batch pairs x mean length; padding is not counted, so padding lowers the reported MFU, as it should.
MFU = FLOPs per step / step time / peak dense bf16 FLOP/s (H100 and H200: 989 TFLOP/s; A100: 312;
otherwise pass ``--peak-tflops``). Step time is the median over the steps after the first, each timed
between CUDA synchronisations.

Without CUDA it refuses (exit 2). ``--tiny --allow-cpu`` runs the same code on a tiny LLaVA-NeXT on CPU;
it exists for the tests, and its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from study.config import align_params, load_section
from study.world.stage import corpus_params_of, scene_params_of

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PINPOINTS_7B = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
SHAPES = {
    "7b": dict(
        text=dict(
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            intermediate_size=11008,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        ),
        vocab=32064,
        image=336,
        patch=14,
        pinpoints=PINPOINTS_7B,
        vision=dict(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, projection_dim=768
        ),
    ),
    "tiny": dict(
        text=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=4096,
        ),
        vocab=None,
        image=32,
        patch=8,
        pinpoints=[[32, 64], [64, 32], [64, 64]],
        vision=dict(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, projection_dim=16
        ),
    ),
}
MIN_MARGIN_GAIN = (
    1e-4  # the check passes when the DPO margin on the repeated pairs rose by more than this and the loss fell
)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
DPO_LR = {"7b": 1e-4, "tiny": 1e-2}  # high enough that a few steps on the same pairs move the margin


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU (by name), else None."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def lm_matmul_params(text: dict, vocab: int) -> int:
    """Matmul parameters per token of a Llama decoder: q, k, v, o, gate, up, down per layer, plus the LM head."""
    d, ff, L = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    kv = d // text["num_attention_heads"] * text["num_key_value_heads"]
    return L * (2 * d * d + 2 * d * kv + 3 * d * ff) + d * vocab


def lm_forward_flops(text: dict, vocab: int, tokens: int) -> float:
    """F_lm(T) = 2 N T + 4 L d T^2 (module docstring)."""
    L, d = text["num_hidden_layers"], text["hidden_size"]
    return 2.0 * lm_matmul_params(text, vocab) * tokens + 4.0 * L * d * tokens**2


def vision_forward_flops(vision: dict, text_hidden: int, image: int, patch: int, tiles: int) -> float:
    """CLIP tower (every layer) and the 2-layer projector over ``tiles`` tiles of (image/patch)^2 + 1 tokens."""
    t = (image // patch) ** 2 + 1
    d, ff, L = vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"]
    tower = 2.0 * L * (4 * d * d + 2 * d * ff) * t + 4.0 * L * d * t**2 + 2.0 * 3 * patch * patch * d * t
    projector = 2.0 * (d * text_hidden + text_hidden * text_hidden) * (t - 1)
    return tiles * (tower + projector)


def dpo_step_flops(
    text: dict, vision: dict, vocab: int, image: int, patch: int, seq_lens: list[int], tiles: int
) -> float:
    """Model FLOPs of one DPO step over sequences of the given lengths (module docstring)."""
    fv = vision_forward_flops(vision, text["hidden_size"], image, patch, tiles)
    return sum(3.0 * lm_forward_flops(text, vocab, T) + 2.0 * fv for T in seq_lens)


def build_processor(spec, shapes: dict):
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    from study.model.processor import CHAT_TEMPLATE, build_tokenizer
    from study.world.language import vocabulary

    words = vocabulary(spec)
    tok = build_tokenizer(words)
    if shapes["vocab"] is not None and len(tok) < shapes["vocab"]:  # pad to the 7B's vocabulary size
        tok = build_tokenizer(words + [f"<extra_{i}>" for i in range(shapes["vocab"] - len(tok))])
    ip = LlavaNextImageProcessorPil(
        size={"shortest_edge": shapes["image"]},
        crop_size={"height": shapes["image"], "width": shapes["image"]},
        image_grid_pinpoints=shapes["pinpoints"],
    )
    return LlavaNextProcessor(
        image_processor=ip,
        tokenizer=tok,
        patch_size=shapes["patch"],
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )


def build_model(processor, shapes: dict, device: str, dtype):
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    tok = processor.tokenizer
    text = dict(
        model_type="llama",
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **shapes["text"],
    )
    vision = dict(
        model_type="clip_vision_model", image_size=shapes["image"], patch_size=shapes["patch"], **shapes["vision"]
    )
    cfg = LlavaNextConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=shapes["pinpoints"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaNextForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(old)
    return model


def preference_rows(world, spec) -> list[dict]:
    """Chosen = a train scene's true description; rejected = the same with its first object word swapped."""
    lexicon, names, rows = spec.word_to_category(), sorted(spec.category_names), []
    for r in world.corpus("train"):
        if r["kind"] != "describe":
            continue
        chosen = r["messages"][1]["content"][0]["text"]
        words = chosen.split()
        i = next((k for k, w in enumerate(words) if w in lexicon), None)
        if i is None:
            continue
        words[i] = next(n for n in names if n != lexicon[words[i]] and n not in words)
        rows.append(
            {
                "prompt": r["messages"][0]["content"][1]["text"],
                "chosen": chosen,
                "rejected": " ".join(words),
                "scene_id": r["scene_id"],
                "recipe": "gpu_check",
                "seed": 0,
                "source_ids": "{}",
            }
        )
    return rows


def sequence_lengths(processor, world, rows) -> tuple[list[int], int]:
    """Language-model tokens (image tokens included) of every chosen and rejected sequence, and tiles per image."""
    from study.world.corpus import conversation

    lens, tiles = [], 0
    for r in rows:
        img = world.image(r["scene_id"])
        for ans in (r["chosen"], r["rejected"]):
            text = processor.apply_chat_template(conversation(r["prompt"], ans))
            enc = processor(images=[img], text=[text], return_tensors="pt")
            lens.append(int(enc["input_ids"].shape[1]))
            tiles = int(enc["pixel_values"].shape[1])
    return lens, tiles


def make_timer(sync):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.losses, self._t = [], [], None

        def on_step_begin(self, args, state, control, **kw):
            sync()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.times.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepTimer()


def run_check(*, tiny: bool, device: str, steps: int, peak: float | None, work: Path) -> dict:
    import torch

    from study.align import train
    from study.world.corpus import World, build_world
    from study.world.spec import load_spec

    shapes = SHAPES["tiny" if tiny else "7b"]
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    bf16 = cuda  # the tiny CPU run stays in fp32
    dtype = torch.bfloat16 if bf16 else torch.float32
    t0 = time.perf_counter()
    spec = load_spec(ROOT / "data" / "world_spec.yaml")
    build_world(
        spec,
        work / "world",
        seed=0,
        sizes={"train": 64, "val": 4, "test": 4, "ood": 4},
        scene_params=scene_params_of(load_section("world")),
        corpus_params=corpus_params_of(load_section("world"), exist_per_scene=0),
        faint_alpha=0.3,
        noise_std=6.0,
    )
    world = World(work / "world")
    batch = 2
    rows = preference_rows(world, spec)[:batch]  # the same pairs every step: the margin must rise on them
    processor = build_processor(spec, shapes)
    lens, tiles = sequence_lengths(processor, world, rows)
    model = build_model(processor, shapes, device, dtype)
    build_s = time.perf_counter() - t0
    knobs = dict(
        lora=True,
        lora_r=4 if tiny else 128,
        lora_alpha=8 if tiny else 256,
        bf16=bf16,
        gradient_checkpointing=True,
        learning_rate=DPO_LR["tiny" if tiny else "7b"],
        projector_lr=2e-6,
        epochs=float(steps),
        batch_size=batch,
        grad_accum=1,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        logging_steps=1,
        save_steps=100_000,
    )
    timer = make_timer(sync)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    m = train(
        "dpo",
        policy=(model, processor),
        world=world,
        data=rows,
        params=align_params("dpo", **knobs),
        out_dir=work / "dpo",
        callbacks=[timer],
    )
    dpo_s = time.perf_counter() - t1
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    step_s = statistics.median(timer.times[1:] or timer.times)
    mean_len = sum(lens) / len(lens)
    tokens_per_step = 2 * batch * mean_len
    flops = dpo_step_flops(
        shapes["text"],
        shapes["vision"],
        len(processor.tokenizer),
        shapes["image"],
        shapes["patch"],
        [round(mean_len)] * (2 * batch),
        tiles,
    )
    del model
    # one Online-DPO round: 8 prompts sampled, judged by the oracle, one DPO pass over the preferred pairs
    model = build_model(processor, shapes, device, dtype)
    online = align_params(
        "online_dpo", **dict(knobs, epochs=1.0, round_size=8, gen_batch_size=8, max_new_tokens=8 if tiny else 32)
    )
    t2 = time.perf_counter()
    mo = train(
        "online_dpo",
        policy=(model, processor),
        world=world,
        data=preference_rows(world, spec)[:8],
        params=online,
        out_dir=work / "online",
    )
    online_s = time.perf_counter() - t2
    moved = (
        m["rewards/margins_last"] > m["rewards/margins_first"] + MIN_MARGIN_GAIN and timer.losses[-1] < timer.losses[0]
    )
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "shapes": "tiny" if tiny else "llava-1.6-7b",
        "dtype": str(dtype).replace("torch.", ""),
        "build_s": build_s,
        "dpo": {
            "steps": m["steps"],
            "step_s_median": step_s,
            "step_s": timer.times,
            "tokens_per_step": tokens_per_step,
            "tokens_per_s": tokens_per_step / step_s,
            "mean_seq_len": mean_len,
            "image_tiles": tiles,
            "model_tflops_per_step": flops / 1e12,
            "achieved_tflops": flops / step_s / 1e12,
            "mfu": flops / step_s / (peak * 1e12) if peak else None,
            "peak_mem_gib": peak_mem,
            "wall_s": dpo_s,
            "losses": timer.losses,
            "margin_first": m["rewards/margins_first"],
            "margin_last": m["rewards/margins_last"],
            "trainable_params": m["trainable_params"],
        },
        "online_dpo_round": {"wall_s": online_s, "rounds": mo["rounds"], "pairs": mo["pairs"], "ties": mo["ties"]},
        "loss_moved": bool(moved),
        "total_s": time.perf_counter() - t0,
    }


def report(r: dict) -> str:
    d = r["dpo"]
    mfu = f"{100 * d['mfu']:.1f} %" if d["mfu"] is not None else "n/a (unknown peak; pass --peak-tflops)"
    mem = f"{d['peak_mem_gib']:.1f} GiB" if d["peak_mem_gib"] is not None else "n/a (CPU)"
    return "\n".join(
        [
            f"device: {r['device']}  shapes: {r['shapes']}  dtype: {r['dtype']}",
            f"DPO: {d['steps']} steps, median step {d['step_s_median']:.3f} s, {d['tokens_per_s']:.0f} tokens/s "
            f"({d['tokens_per_step']:.0f} tokens/step, mean sequence {d['mean_seq_len']:.0f} incl. {d['image_tiles']} image tiles)",
            f"     {d['model_tflops_per_step']:.1f} model TFLOP/step, {d['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}",
            f"     peak GPU memory {mem}; margin {d['margin_first']:.4f} -> {d['margin_last']:.4f}; "
            f"loss {['%.4f' % x for x in d['losses']]}",
            f"Online-DPO: {r['online_dpo_round']['rounds']} round, {r['online_dpo_round']['wall_s']:.1f} s "
            f"({r['online_dpo_round']['pairs']} pairs trained, {r['online_dpo_round']['ties']} ties skipped)",
            f"build {r['build_s']:.1f} s, total {r['total_s']:.1f} s; loss moved: {r['loss_moved']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6, help="DPO steps (>= 2; the first is not timed)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, for MFU on an unlisted GPU")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (tests)")
    ap.add_argument("--allow-cpu", action="store_true", help="with --tiny: run on CPU (tests)")
    args = ap.parse_args(argv)
    if args.steps < 2:
        print("error: --steps must be >= 2", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        if not (args.tiny and args.allow_cpu):
            print(
                "error: this device check needs a CUDA GPU and none is visible (torch.cuda.is_available() is "
                f"False; torch {torch.__version__}). Run it on a GPU machine with a CUDA build of torch.",
                file=sys.stderr,
            )
            return 2
        device = "cpu"
    else:
        device = "cuda"
    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name()) if device == "cuda" else None)
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp:
        r = run_check(tiny=args.tiny, device=device, steps=args.steps, peak=peak, work=Path(tmp))
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0 if r["loss_moved"] else 1


if __name__ == "__main__":
    sys.exit(main())
