"""Where an SFT step's time goes, and what a step costs under a few speed options, on the workspace's model.

    python benchmarks/sft_speed.py --steps 60                    # baseline: data share and step time
    python benchmarks/sft_speed.py --steps 60 --variant bf16     # bfloat16 autocast on the CPU
    python benchmarks/sft_speed.py --steps 60 --variant threads1 # one torch thread
    python benchmarks/sft_speed.py --steps 60 --warmup 30 --variant compile  # torch.compile (inductor)
    python benchmarks/sft_speed.py --steps 60 --variant eager    # eager attention instead of SDPA

It reads the ``lm`` stage's model (``artifacts/models/lm``, the SFT stage's starting point) and the world
(``artifacts/world``), builds the SFT stage's own trainer (:func:`study.model.sft.sft_trainer`: the same frozen tower,
corpus, collator, config and seed) in a scratch directory, and measures, in one process:

- **data**: the seconds to draw ``--steps`` batches from the trainer's own dataloader (image rendering, chat
  template, tokenization, the image processor and padding: everything before the model);
- **step**: the seconds per optimizer step of ``trainer.train()`` over ``--steps`` steps (data included),
  after ``--warmup`` steps that are not timed.

The data share is data / (steps x step). Prints the CPU (model, AVX-512) and the torch thread count; nothing
DVC tracks is touched. Time on a quiet machine: two multi-threaded jobs on the 2 cores slow each other 4-15x.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("baseline", "bf16", "threads1", "compile", "eager")


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
    return f"{model}, AVX-512: {'avx512f' in info}, AVX-512 BF16: {'avx512_bf16' in info}"


def _trainer(args, work: Path):
    import torch

    from study.config import load_params
    from study.model.load import load_model
    from study.model.sft import sft_trainer
    from study.model.stage import sft_params_of
    from study.world.corpus import World

    params = load_params(ROOT / "params.yaml")
    world = World(ROOT / "artifacts" / "world")
    net, processor = load_model(ROOT / "artifacts" / "models" / "lm")
    net.train()
    overrides = dict(max_steps=args.warmup + args.steps, eval_strategy="no", disable_tqdm=True, logging_steps=10**6)
    if args.variant == "bf16":
        overrides["bf16"] = True
    if args.variant == "threads1":
        torch.set_num_threads(1)
    if args.variant == "compile":  # the Trainer compiles the model; a new sequence length may recompile
        overrides["torch_compile"] = True
    if args.variant == "eager":
        net.set_attn_implementation("eager")
    return sft_trainer(net, processor, world, sft_params_of(params.sft), work, params.seed, evaluate=False, **overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60, help="timed optimizer steps (and batches drawn), >= 1")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first, >= 0")
    ap.add_argument("--variant", choices=VARIANTS, default="baseline")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be >= 1 and --warmup >= 0")

    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Wall time of the optimizer steps after the warm-up."""

        def __init__(self, warmup: int):
            self.warmup, self.start, self.end = warmup, None, None

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == self.warmup:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(args, Path(tmp))
        loader = trainer.get_train_dataloader()
        t0 = time.perf_counter()
        lengths = []
        for i, batch in enumerate(loader):
            lengths.append(tuple(batch["input_ids"].shape))
            if i + 1 == args.steps:
                break
        data_s = time.perf_counter() - t0
        clock = StepClock(args.warmup)
        trainer.add_callback(clock)
        trainer.train()
        step_s = (clock.end - clock.start) / args.steps
    tokens = sum(b * t for b, t in lengths) / len(lengths)
    print(f"CPU: {_cpu()}; torch threads: {torch.get_num_threads()}; variant: {args.variant}")
    print(f"batches drawn: {len(lengths)}, mean padded tokens per batch: {tokens:.0f}")
    print(f"data: {data_s / len(lengths) * 1000:.1f} ms per batch")
    print(f"step: {step_s * 1000:.1f} ms per optimizer step (data included), {1 / step_s:.2f} it/s")
    print(f"data share of a step: {data_s / len(lengths) / step_s:.1%}")


if __name__ == "__main__":
    main()
