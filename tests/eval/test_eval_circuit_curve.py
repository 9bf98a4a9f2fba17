"""The circuit-formation curve: yes/no AUROC recorded during SFT on fixed POPE items, ending on the trained model."""

import torch

from study.config import load_section
from study.eval.circuit_curve import CircuitCurve
from study.eval.grounding import auroc, yes_no_margins
from study.model.build import build_model
from study.model.processor import build_processor
from study.model.sft import train_sft
from study.model.stage import model_params_of, sft_params_of
from study.world.language import vocabulary

TINY = model_params_of(
    load_section("model"), text_hidden=32, text_layers=1, vision_hidden=16, vision_layers=1, text_intermediate=64
)


def test_curve_records_every_n_steps_and_its_last_point_is_the_trained_model(pretrain_world, spec, tmp_path):
    torch.set_num_threads(1)
    proc = build_processor(vocabulary(spec), 48, 6)
    model = build_model(proc, 48, TINY, seed=0)
    lines = []
    curve = CircuitCurve(proc, pretrain_world, spec, split="val", n_scenes=8, every=3, seed=0, log=lines.append)
    assert len(curve.prompts) == len(curve.labels) > 0 and 0 < sum(curve.labels) < len(curve.labels)
    m = train_sft(
        model,
        proc,
        pretrain_world,
        sft_params_of(load_section("sft"), epochs=1, batch_size=64, val_rows=8, freeze_vision=False),
        tmp_path / "sft",
        None,
        seed=0,
        callbacks=[curve],
    )
    steps = [q["step"] for q in curve.points]
    assert steps == sorted(set(steps)) and steps[0] == 3 and all(s % 3 == 0 for s in steps[:-1])
    assert all(0 <= q["auroc"] <= 1 and 0 <= q["auroc_masked"] <= 1 for q in curve.points)
    model.eval()
    final = auroc(yes_no_margins(model, proc, curve.images, curve.prompts), curve.labels)
    assert curve.points[-1]["auroc"] == final and m["train_rows"] > 0
    assert len(lines) == len(curve.points) and lines[0].startswith("circuit curve: step 3: yes/no AUROC ")
