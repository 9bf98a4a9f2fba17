"""benchmarks/gpu_check.py: refuses without CUDA, counts FLOPs from the shapes, runs end to end at tiny size."""

import json

import pytest
import torch


@pytest.fixture(scope="module")
def check(script_module):
    return script_module("benchmarks/gpu_check.py")


def test_refuses_without_cuda(check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check.main([]) == 2
    assert "needs a CUDA GPU and none is visible" in capsys.readouterr().err
    assert check.main(["--tiny"]) == 2  # --tiny alone does not run on CPU


def test_flops_follow_the_7b_shapes(check):
    text = check.SHAPES["7b"]["text"]
    # LLaMA-7B's published parameter count: matmuls + input embedding (vocab 32,000) + 65 RMSNorm vectors
    assert check.lm_matmul_params(text, 32000) + 32000 * 4096 + 65 * 4096 == 6_738_415_616
    n, L, d = check.lm_matmul_params(text, 32064), 32, 4096
    assert check.lm_forward_flops(text, 32064, 1000) == 2 * n * 1000 + 4 * L * d * 1000**2
    v = check.SHAPES["7b"]["vision"]
    one = check.vision_forward_flops(v, 4096, 336, 14, 1)
    assert check.vision_forward_flops(v, 4096, 336, 14, 5) == pytest.approx(5 * one)
    assert 2 * 0.30e9 * 577 < one < 2 * 0.34e9 * 577 * 1.2  # ViT-L/14 (~0.30 B params) + projector (~21 M)
    step = check.dpo_step_flops(text, v, 32064, 336, 14, [2000, 2000], 5)
    assert step == pytest.approx(2 * (3 * check.lm_forward_flops(text, 32064, 2000) + 2 * 5 * one))
    assert check.peak_tflops("NVIDIA H200") == 989.0 and check.peak_tflops("Tesla T4") is None


def test_tiny_run_on_cpu_prints_figures(check, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert check.main(["--tiny", "--allow-cpu", "--steps", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    d = r["dpo"]
    assert d["steps"] == 2 and len(d["step_s"]) == 2 and d["tokens_per_s"] > 0 and d["mfu"] is None
    assert r["loss_moved"] and d["margin_first"] == 0.0 != d["margin_last"]
    assert r["online_dpo_round"]["rounds"] == 1 and r["online_dpo_round"]["wall_s"] > 0
    assert d["losses"][-1] < d["losses"][0]
    assert d["model_tflops_per_step"] > 0 and d["image_tiles"] >= 1
    text = capsys.readouterr().out
    assert "tokens/s" in text and "MFU n/a" in text
