"""End to end with a pretrained base: the GPU user's path (``model.base_path`` set, LoRA, bf16 autocast,
activation checkpointing) through the real DVC + papermill pipeline at the smoke size, in a scratch copy of
the project, with a tiny random LLaVA-NeXT (anyres tiling) as the checkpoint and two more as the answer
pool's declared weaker members (``prefs.pool_models``). The ``gpu`` profile is this path at a 7B's sizes;
its own sizes need a GPU and a 7B and are not run here."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory, spec, save_tiny_llava_next):
    repo = tmp_path_factory.mktemp("study_base")
    ckpt = tmp_path_factory.mktemp("checkpoints")
    base = save_tiny_llava_next(ckpt / "base", spec, seed=0)
    weaker = [str(save_tiny_llava_next(ckpt / f"weaker{i}", spec, seed=i)) for i in (1, 2)]
    for name in ("data", "notebooks", "study"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["model"]["base_path"] = str(base)
    params["prefs"]["pool_models"] = weaker
    gpu = params["profiles"]["gpu"]["align"]["base"]  # the gpu profile's training switches, at smoke sizes
    smoke = params["profiles"]["smoke"]["align"]["base"]
    smoke.update({k: gpu[k] for k in ("lora", "bf16", "gradient_checkpointing")}, lora_r=8, lora_alpha=16)
    rm = params["profiles"]["gpu"]["rm"]  # the reward_models stage too, as the gpu profile trains it
    params["profiles"]["smoke"].setdefault("rm", {}).update(
        {k: rm[k] for k in ("lora", "bf16", "gradient_checkpointing")}, lora_r=8, lora_alpha=16
    )
    params["profiles"]["smoke"]["align"].update(
        seeds=[0], decisive_seeds=[0]
    )  # one seed: CI time (the smoke e2e runs two)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for args in (["dvc", "init", "--no-scm", "-q"], ["dvc", "repro"]):
        r = subprocess.run(args, cwd=repo, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return repo, base, weaker


def _json(repo, rel):
    return json.loads((repo / rel).read_text())


@pytest.mark.slow
def test_a_pretrained_base_runs_the_whole_study_with_lora_bf16_and_checkpointing(base_repo):
    repo, base, weaker = base_repo
    for stage in ("vision", "lm"):
        assert "model.base_path is set" in _json(repo, f"metrics/{stage}.json")["skipped"]
    sft = _json(repo, "metrics/sft.json")
    assert sft["base_path"] == str(base.resolve()) and "eval_loss" not in sft  # nothing trained
    assert [f.name for f in (repo / "artifacts/models/sft").iterdir()] == ["base_pointer.json"]
    assert list((repo / "artifacts/models/pool").iterdir()) == []  # the pool is the declared checkpoints
    assert "SFT skipped" in (repo / "reports/01_sft.html").read_text()
    org = _json(repo, "metrics/organism.json")
    assert org["sft_seeds"] == [0] and org["gates"]["seeds_passing"]["status"] == "not measured"
    # one checkpoint, no further SFT draw: the sft_seeds and replicates stages train nothing, the findings use it alone
    assert (
        _json(repo, "metrics/sft_seeds.json")["seeds"] == [] and _json(repo, "metrics/replicates.json")["seeds"] == []
    )
    assert set(map(tuple, _json(repo, "metrics/paper.json")["draws"].values())) == {(0,)}
    ev = _json(repo, "metrics/eval_sft.json")
    assert 0 <= ev["pope_random"]["accuracy"]["value"] <= 1 and "chair_i" in ev["describe"]
    from study.prefs import load_prefs

    vlf = load_prefs(repo / "artifacts/prefs/recipes/vlfeedback.parquet")
    assert vlf and {r["recipe"] for r in vlf} == {"vlfeedback"}
    rlhfv = load_prefs(repo / "artifacts/prefs/recipes/rlhfv.parquet")
    assert rlhfv and {json.loads(r["source_ids"])["rejected"].split(":")[1] for r in rlhfv} == {Path(weaker[-1]).name}
    # RLHF-V corrects the last declared pool member's answers; VLFeedback ranks the SFT model's and both members'
    assert json.loads(vlf[0]["source_ids"])["pool"] == ["artifacts/models/sft", *weaker]
    assert _json(repo, "metrics/prefs.json")["recipes"]["rlhfv"]["rows"] == len(rlhfv)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profiles"]["smoke"]["rm"]["lora"] and params["profiles"]["smoke"]["rm"]["bf16"]
    rms = _json(repo, "metrics/reward_models.json")
    for name, tm in rms["train"].items():  # LoRA + bf16 + checkpointing reward models trained and were scored
        assert tm["steps"] > 0 and tm["train_loss"] == tm["train_loss"], name
        assert all(0 <= a["value"] <= 1 for a in rms["accuracy"][name].values()), name
    runs = {**params["align"]["runs"], **params["align"]["rm_runs"]}
    seeds = params["profiles"]["smoke"]["align"]["seeds"]
    for run in runs:
        al = _json(repo, f"metrics/align/{run}.json")
        assert al["_meta"]["seeds"] == seeds and len(al["describe"]["chair_i"]["per_seed"]) == len(seeds), run
        meta = _json(repo, f"artifacts/models/align/{run}/seed{seeds[0]}/align.json")
        assert (meta["params"]["lora"], meta["params"]["bf16"], meta["params"]["gradient_checkpointing"]) == (
            True,
            True,
            True,
        ), run
        cfg = _json(repo, f"artifacts/models/align/{run}/seed{seeds[0]}/config.json")
        assert cfg["model_type"] == "llava_next", run  # the policy is the base's architecture, saved whole
    assert "dpo_bdhs" in (repo / "paper/tables/main.md").read_text()
    assert (repo / "reports/08_paper.html").stat().st_size > 10_000
