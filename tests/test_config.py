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


@pytest.mark.parametrize("path,value,needle", [
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
])
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


@pytest.mark.parametrize("seeds,msg", [([], "non-empty list"), ([0, -1], "integers >= 0"), ([1, 1], "repeated"),
                                       ("0", "valid list")])
def test_bad_alignment_seeds_are_named(seeds, msg):
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["seeds"] = seeds
    with pytest.raises(ParamsError, match=rf"align.seeds.*{msg}"):
        resolve(raw)
    raw = yaml.safe_load(open("params.yaml"))
    raw["align"]["runs"]["dpo_bdhs"]["seeds"] = seeds
    with pytest.raises(ParamsError, match=r"align.runs.dpo_bdhs.seeds"):
        resolve(raw)


def test_full_profile_trains_three_seeds_and_quick_one():
    assert load_params(profile="full").align.seeds == [0, 1, 2]
    assert load_params(profile="quick").align.seeds == [0]


@pytest.mark.parametrize("edit,needle", [
    (lambda a: a["rm_runs"]["rloo_rm_povid"].pop("reward_model_path"), r"align.rm_runs.rloo_rm_povid.*reward_model_path"),
    (lambda a: a["rm_runs"]["rloo_rm_povid"].update(annotator="oracle"), r"align.rm_runs.rloo_rm_povid must set annotator"),
    (lambda a: a["rm_runs"]["rloo_rm_povid"].update(kl_coef=-1), r"align.rm_runs.rloo_rm_povid.kl_coef must be >= 0"),
    (lambda a: a["rm_runs"].update(ppo=a["rm_runs"]["ppo_rm_povid"]), r"run names must differ.*'ppo'"),
    (lambda a: a["rm_runs"]["ppo_rm_povid"].update(reward_model_path="artifacts/models/rm/random_corruption"),
     r"align.rm_runs.ppo_rm_povid.reward_model_path: .*random_corruption is not trained by the reward_models stage"),
])
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
