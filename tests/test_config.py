import copy
import re

import pytest
import yaml

from study.config import ParamsError, load_params, resolve

RAW = yaml.safe_load(open("params.yaml"))


def test_every_profile_of_params_yaml_is_valid():
    for name in RAW["profiles"]:
        p = resolve(RAW, name)
        assert p.profile == name
    assert resolve(RAW, "full").world.n_train > resolve(RAW, "quick").world.n_train


def test_profile_overrides_only_what_it_names():
    p = resolve(RAW, "smoke")
    assert p.world.n_train == RAW["profiles"]["smoke"]["world"]["n_train"]
    assert p.world.faint_alpha == RAW["world"]["faint_alpha"]


@pytest.mark.parametrize(
    "path,value,needle",
    [
        (("world", "n_train"), 0, "world.n_train"),
        (("world", "faint_prob"), 1.5, "world.faint_prob"),
        (("sft", "learning_rate"), -1, "sft.learning_rate"),
        (("eval", "split"), "train", "eval.split"),
        (("world", "n_trian"), 5, "world.n_trian` is not a known parameter"),
        (("sft", "epochs"), "many", "sft.epochs"),
        (("vision", "objective"), "mae", "vision.objective"),
        (("vision", "epochs"), -1, "vision.epochs"),
        (("world", "exist_per_scene"), 11, "world.exist_per_scene"),
        (("organism", "gate_split"), "ood", "organism.gate_split"),
        (("organism", "sft_seeds"), [0, 0, 1], "organism.sft_seeds"),
    ],
)
def test_bad_values_name_the_key(path, value, needle):
    raw = yaml.safe_load(open("params.yaml"))
    raw[path[0]][path[1]] = value
    with pytest.raises(ParamsError) as e:
        resolve(raw)
    assert needle in str(e.value)


def test_bad_profile_and_bad_override_are_named():
    raw = yaml.safe_load(open("params.yaml"))
    with pytest.raises(ParamsError, match="profile"):
        resolve(raw, "huge")
    raw["profiles"]["full"]["world"]["n_train"] = -3
    with pytest.raises(ParamsError, match="profiles.full.world.n_train"):
        resolve(raw, "quick")  # every profile is validated, not only the selected one


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_bad_alignment_run_is_named_at_load_time():
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["runs"]["dpo_bdhs"]["beta"] = -1
    with pytest.raises(ParamsError, match=r"align.runs.dpo_bdhs.beta must be > 0"):
        resolve(raw)
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["runs"]["no_data"] = {"method": "dpo"}
    with pytest.raises(ParamsError, match=r"align.runs.no_data needs `data`"):
        resolve(raw)


@pytest.mark.parametrize(
    "seeds,msg", [([], "non-empty list"), ([0, -1], "integers >= 0"), ([1, 1], "repeated"), ("0", "valid list")]
)
def test_bad_alignment_seeds_are_named(seeds, msg):
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["seeds"] = seeds
    with pytest.raises(ParamsError, match=rf"align.seeds.*{msg}"):
        resolve(raw)
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["runs"]["dpo_bdhs"]["seeds"] = seeds
    with pytest.raises(ParamsError, match=r"align.runs.dpo_bdhs.seeds"):
        resolve(raw)


def test_full_profile_trains_three_models_where_a_finding_rests_one_per_sft_draw_and_one_elsewhere():
    from study.align.replicates import replicate_params, replicate_seeds

    full = load_params(profile="full")
    decisive = full.decisive_runs()
    assert decisive == {r for rs in full.report.findings.named().values() for r in rs} and len(decisive) >= 8
    assert full.replicates.enabled and replicate_seeds(full) == [1, 2] and full.organism.sft_seeds == [0, 1, 2]
    for run in full.align.all_runs():  # the main SFT model: one training of every run
        assert full.align_run(run)[2] == [0], run
    for k in (1, 2):  # each further SFT draw: one training of every decisive run, with that seed
        rep = replicate_params(full, k, "rm_dir")
        for run in full.align.all_runs():
            assert rep.align_run(run)[2] == ([k] if run in decisive else [0]), (k, run)
    quick = load_params(profile="quick")
    assert not quick.replicates.enabled and replicate_seeds(quick) == []
    assert all(quick.align_run(r)[2] == [0] for r in full.align.all_runs())
    raw = copy.deepcopy(RAW)
    raw["profiles"]["full"]["align"]["decisive_seeds"] = [0, 1, 2]  # several trainings per SFT model
    raw["align"]["runs"]["ipo_povid"]["seeds"] = [4, 5]  # a run's own seeds win
    raw["report"]["findings"]["offline_dpo"] = "slic_povid"  # the role moves: so do the three seeds
    p = resolve(raw, "full")
    assert p.align_run("ipo_povid")[2] == [4, 5]
    assert p.align_run("slic_povid")[2] == [0, 1, 2] and p.align_run("dpo_povid")[2] == [0]


@pytest.mark.parametrize(
    "edit,needle",
    [
        (
            lambda a: a["rm_runs"]["rloo_rm_povid"].pop("reward_model_path"),
            r"align.judge.reward_model_path: must name .*\(in align.rm_runs.rloo_rm_povid\)",
        ),
        (
            lambda a: a["rm_runs"]["rloo_rm_povid"].update(annotator="oracle"),
            r"align.rm_runs.rloo_rm_povid must set annotator",
        ),
        (
            lambda a: a["rm_runs"]["rloo_rm_povid"].update(kl_coef=-1),
            r"align.rm_runs.rloo_rm_povid.kl_coef must be >= 0",
        ),
        (lambda a: a["rm_runs"].update(ppo=a["rm_runs"]["ppo_rm_povid"]), r"run names must differ.*'ppo'"),
        (
            lambda a: a["rm_runs"]["ppo_rm_povid"].update(reward_model_path="artifacts/models/rm/random_corruption"),
            r"`align.rm_runs.ppo_rm_povid.reward_model_path`: .*random_corruption is not trained by the reward_models stage",
        ),
    ],
)
def test_bad_reward_model_runs_are_named_at_load_time(edit, needle):
    raw = yaml.safe_load(open("params.yaml"))
    edit(raw["align"])
    with pytest.raises(ParamsError, match=needle):
        resolve(raw)


def test_reward_model_runs_are_valid_before_their_reward_models_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no artifacts/models/rm here: the params still load (checked at train time)
    p = resolve(RAW)
    assert p.align.rm_runs and all(r["annotator"] == "reward_model" for r in p.align.rm_runs.values())
    assert set(p.align.all_runs()) == set(p.align.runs) | set(p.align.rm_runs)


def test_organism_seeds_must_include_the_pipeline_seed():
    raw = yaml.safe_load(open("params.yaml"))
    raw["organism"]["sft_seeds"] = [1, 2, 3]
    with pytest.raises(ParamsError, match="organism.sft_seeds"):
        resolve(raw)


def test_overrides_apply_after_the_profile():
    p = load_params("params.yaml", profile="smoke", overrides={"vision": {"epochs": 3.0}, "sft": {"epochs": 2.0}})
    assert p.vision.epochs == 3.0 and p.sft.epochs == 2.0
    assert p.world.n_train == RAW["profiles"]["smoke"]["world"]["n_train"]


# --------------------------------------------------------------------------------------------------
# errors name the key as the user wrote it: exact messages


def error_of(edit, profile=None) -> str:
    raw = copy.deepcopy(RAW)
    edit(raw)
    with pytest.raises(ParamsError) as e:
        resolve(raw, profile)
    return str(e.value)


def test_base_of_params_yaml_is_valid_without_any_profile():
    raw = {k: v for k, v in RAW.items() if k != "profiles"}
    assert resolve(raw).profile == "quick"


@pytest.mark.parametrize("profile", sorted(RAW["profiles"]))
def test_a_base_error_names_the_plain_key_whatever_the_profile(profile):
    assert error_of(lambda r: r["world"].update(faint_prob=1.5), profile) == (
        "invalid params: `world.faint_prob`: Input should be less than or equal to 1 (got 1.5)"
    )


@pytest.mark.parametrize(
    "edit,msg",
    [
        (
            lambda r: r["profiles"]["smoke"]["world"].update(faint_prob=1.5),
            "invalid params: `profiles.smoke.world.faint_prob`: Input should be less than or equal to 1 (got 1.5)",
        ),
        (
            lambda r: r["profiles"]["smoke"]["organism"].update(sft_seeds=[1]),
            "invalid params: `profiles.smoke.organism.sft_seeds`: [1] must contain `seed` (0): the pipeline's SFT model is "
            "the first of them",
        ),
        (
            lambda r: r["profiles"]["gpu"]["align"].update(pair={"beta": -1}),
            "invalid params: profiles.gpu.align.pair.beta must be > 0, got -1",
        ),
        (
            lambda r: r["profiles"]["full"].update(model={"text_kv_heads": 3}),  # the second key of a two-key rule
            "invalid params: `profiles.full.model.text_kv_heads`: 3 must divide model.text_heads (4) (grouped-query attention)",
        ),
    ],
)
def test_a_profile_override_error_names_the_profile_key(edit, msg):
    assert error_of(edit, "quick") == msg  # every profile is checked, not only the selected one


def test_a_group_value_failing_only_with_a_profile_names_its_key_and_the_profile():
    # smoke's align.base.batch_size 4 with the quick ppo_minibatch (8): PPO's config breaks only under smoke
    assert error_of(lambda r: r["profiles"]["smoke"]["align"].pop("methods")) == (
        "invalid params: align.methods.ppo.ppo_minibatch (with profile smoke): must be <= batch_size (4), got 8"
    )


def test_a_bad_align_knob_names_the_group_it_is_written_in():
    assert (
        error_of(lambda r: r["align"]["pair"].update(beta=-1)) == "invalid params: align.pair.beta must be > 0, got -1"
    )
    assert error_of(lambda r: r["align"]["methods"]["ppo"].update(ppo_minibatch=32)) == (
        "invalid params: align.methods.ppo.ppo_minibatch: must be <= batch_size (16), got 32"
    )
    assert error_of(lambda r: r["align"]["base"].update(ppo_minibatch=2)) == (
        "invalid params: align.base.ppo_minibatch is not a knob of align.base (its knobs: "
        + str([k for k in RAW["align"]["base"]])
        + ")"
    )


def test_profiles_must_be_mappings():
    assert error_of(lambda r: r["profiles"].update(smoke=5)) == (
        "invalid params: `profiles.smoke` must be a mapping of the keys it overrides, got 5"
    )


# --------------------------------------------------------------------------------------------------
# strict types, fitting shapes, paths inside the project, identifier names


@pytest.mark.parametrize(
    "section,key,value,msg",
    [
        ("world", "n_train", True, "`world.n_train`: Input should be a valid integer (got True)"),
        ("world", "n_train", 3000.0, "`world.n_train`: Input should be a valid integer (got 3000.0)"),
        ("sft", "freeze_vision", "no", "`sft.freeze_vision`: Input should be a valid boolean (got 'no')"),
        ("sft", "freeze_vision", 1, "`sft.freeze_vision`: Input should be a valid boolean (got 1)"),
        ("eval", "n_boot", "1000", "`eval.n_boot`: Input should be a valid integer (got '1000')"),
        ("sft", "learning_rate", "0.002", "`sft.learning_rate`: Input should be a valid number (got '0.002')"),
        ("organism", "sft_seeds", [False, 1, 2], "`organism.sft_seeds.0`: Input should be a valid integer (got False)"),
    ],
)
def test_types_are_strict(section, key, value, msg):
    assert error_of(lambda r: r[section].update({key: value})) == f"invalid params: {msg}"


def test_floats_accept_integers_and_exponents_yaml_reads_as_strings():
    raw = copy.deepcopy(RAW)
    raw["sft"]["learning_rate"], raw["sft"]["epochs"] = "1e-3", 2  # PyYAML reads `1e-3` (no dot) as a string
    raw["align"]["base"]["learning_rate"] = "5e-06"  # as `dvc exp run -S` writes it
    p = resolve(raw)
    assert (p.sft.learning_rate, p.sft.epochs) == (1e-3, 2.0) and type(p.sft.epochs) is float
    assert p.align_params("dpo").learning_rate == 5e-6


@pytest.mark.parametrize(
    "where,value,msg",
    [
        (("align", "base", "lora"), "no", "align.base.lora: Input should be a valid boolean (got 'no')"),
        (
            ("align", "runs", "dpo_bdhs", "lora"),
            "no",
            "align.runs.dpo_bdhs.lora: Input should be a valid boolean (got 'no')",
        ),
        (
            ("align", "runs", "dpo_bdhs", "batch_size"),
            True,
            "align.runs.dpo_bdhs.batch_size: Input should be a valid integer (got True)",
        ),
    ],
)
def test_alignment_knobs_are_strict(where, value, msg):
    def edit(r):
        node = r
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = value

    assert error_of(edit) == f"invalid params: {msg}"


def test_patch_size_must_divide_the_world_image_size():
    assert yaml.safe_load(open(RAW["world"]["spec"]))["image_size"] == 48
    assert error_of(lambda r: r["model"].update(patch_size=7)) == (
        "invalid params: `model.patch_size`: 7 must divide the world's image_size (48, world.spec "
        "data/world_spec.yaml); allowed: [1, 2, 3, 4, 6, 8, 12, 16, 24, 48]"
    )
    assert error_of(lambda r: r["profiles"]["smoke"]["model"].update(patch_size=5), "quick").startswith(
        "invalid params: `profiles.smoke.model.patch_size`: 5 must divide the world's image_size (48, "
    )
    raw = copy.deepcopy(RAW)
    raw["profiles"]["gpu"]["model"]["patch_size"] = 7  # a checkpoint brings its own architecture: not used
    assert resolve(raw, "gpu").model.patch_size == 7


@pytest.mark.parametrize(
    "model,msg",
    [
        ({"vision_heads": 3}, "`model.vision_hidden`: 64 must be divisible by model.vision_heads (3)"),
        ({"text_hidden": 130}, "`model.text_hidden`: 130 must be divisible by model.text_heads (4)"),
        (
            {"text_hidden": 12, "text_intermediate": 64},
            "`model.text_hidden`: 12 / model.text_heads (4) gives attention "
            "heads of size 3, which must be even (rotary position embeddings rotate pairs of dimensions)",
        ),
        (
            {"text_kv_heads": 3},
            "`model.text_heads`: 4 must be a multiple of model.text_kv_heads (3) (grouped-query attention)",
        ),
    ],
)
def test_attention_shapes_must_divide(model, msg):
    assert error_of(lambda r: r["model"].update(model)) == f"invalid params: {msg}"


@pytest.mark.parametrize("data", ["../../..", "/etc/passwd", "recipes/../../../x", "", 5])
def test_a_run_data_path_stays_inside_artifacts_prefs(data):
    assert error_of(lambda r: r["align"]["runs"]["dpo_bdhs"].update(data=data)) == (
        "invalid params: align.runs.dpo_bdhs.data must be a path inside artifacts/prefs (it names "
        "artifacts/prefs/<data>.parquet): parts of letters, digits, `_`, `-` and `.` joined by `/`, no `..`, not "
        f"absolute; got {data!r}"
    )


@pytest.mark.parametrize(
    "section,name", [("runs", "my/run"), ("runs", "my run"), ("rm_runs", "1run"), ("runs", "_dpo"), ("runs", "dpo.x")]
)
def test_run_names_are_identifiers(section, name):
    run = {"method": "dpo", "data": "bdhs"} if section == "runs" else dict(RAW["align"]["rm_runs"]["ppo_rm_povid"])
    assert error_of(lambda r: r["align"][section].update({name: run})) == (
        f"invalid params: align.{section}: run name {name!r} must start with a letter and hold only letters, digits, "
        "`_` and `-`"
    )


def test_every_run_name_and_data_path_of_params_yaml_passes():
    for section in ("runs", "rm_runs"):
        for name, run in RAW["align"][section].items():
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name), name
            assert ".." not in run["data"].split("/") and not run["data"].startswith("/")


# --------------------------------------------------------------------------------------------------
# run names: the report names runs only through params (report.tables, report.findings)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (
            lambda r: r["report"]["tables"]["table2_recipes"]["runs"].append("dpo_nowhere"),
            r"`report.tables.table2_recipes.runs`: 'dpo_nowhere' is not a run of align.runs / align.rm_runs",
        ),
        (
            lambda r: r["report"]["findings"].update(bdhs_dpo="dpo_bdsh"),
            r"`report.findings.bdhs_dpo`: 'dpo_bdsh' is not a run",
        ),
        (lambda r: r["report"]["findings"].pop("mixed_dpo"), r"report.findings.mixed_dpo"),
        (lambda r: r["report"]["tables"]["table8_rl"].update(runs=[]), r"report.tables.table8_rl.runs"),
    ],
)
def test_report_names_only_declared_runs(edit, needle):
    assert re.search(needle, error_of(edit)), error_of(edit)


def test_renaming_a_run_in_params_renames_it_in_the_report():
    raw = copy.deepcopy(RAW)
    raw["align"]["runs"]["dpo_bdhs_v2"] = raw["align"]["runs"].pop("dpo_bdhs")
    for tab in raw["report"]["tables"].values():
        tab["runs"] = ["dpo_bdhs_v2" if r == "dpo_bdhs" else r for r in tab["runs"]]
    raw["report"]["findings"]["bdhs_dpo"] = "dpo_bdhs_v2"
    p = resolve(raw)
    assert p.report.findings.bdhs_dpo == "dpo_bdhs_v2"
    assert "dpo_bdhs_v2" in p.report.tables["table2_recipes"].runs
    from study.report import findings

    def compare(a, b, col):
        return "better" if (a, b, col) == ("dpo_bdhs_v2", "SFT", "CHAIR_i") else "not resolved"

    assert findings.f1(compare, p.report.findings)["status"] == "reproduced"
