"""Bad input fails before training, with a message naming the parameter / column and what is allowed."""

from unittest import mock

import pytest

from study.align import METHODS, AlignDataError, AlignParamsError, check_columns, make_params, train
from study.align import methods as registry
from study.align.config import AlignParams, check_data_path, check_layout, method_params, run_params
from study.config import align_params, load_section


def groups() -> dict:
    return load_section("align").groups()


BDHS = load_section("bdhs").model_dump()


def full(method: str = "dpo", **kw) -> dict:
    """Every knob ``method`` reads, from params.yaml, with ``kw`` over them (a complete mapping)."""
    return {**align_params(method).model_dump(), **kw}


def test_registry_covers_every_method_and_loss_types_map():
    assert set(METHODS) == {"dpo", "ipo", "slic", "avg_dpo", "online_dpo", "online_bdhs", "mixed_dpo", "rloo", "ppo"}
    assert [align_params(m).loss_type for m in ("dpo", "ipo", "slic")] == ["sigmoid", "ipo", "hinge"]
    assert align_params("mixed_dpo", pair_loss="ipo", beta=0.9).loss_type == "ipo"


def test_each_method_reads_its_groups_only():
    reads = {m: registry.get(m).reads for m in METHODS}
    assert "rloo_k" in reads["rloo"] and "rloo_k" not in reads["ppo"]
    assert "reward_norm_samples" in reads["ppo"] and "reward_norm_samples" in reads["rloo"]
    assert not {"annotator", "temperature", "round_size", "kl_coef"} & reads["dpo"]
    assert "beta" not in reads["rloo"] and "kl_coef" in reads["rloo"]  # RL's KL coefficient is not a pair beta
    assert {"bdhs_rho_th", "regen_every"} <= reads["online_bdhs"] and "annotator" not in reads["online_bdhs"]
    assert [m for m in METHODS if registry.get(m).needs_annotator] == ["online_dpo", "mixed_dpo", "rloo", "ppo"]
    assert "p" in reads["mixed_dpo"] and "p" not in reads["online_dpo"]
    for m in METHODS:  # every method's config is complete from params.yaml alone
        assert set(align_params(m).model_dump()) == reads[m]


@pytest.mark.parametrize(
    "method,kw,needle",
    [
        ("kto", {}, "align.method must be one of"),
        ("dpo", {"beta": 0}, "align.beta must be > 0"),
        ("dpo", {"beta": -1.0}, "align.beta must be > 0, got -1.0"),
        ("mixed_dpo", {"p": 1.5}, "align.p must be <= 1"),
        ("mixed_dpo", {"p": -0.1}, "align.p must be >= 0"),
        ("avg_dpo", {"gamma": 2}, "align.gamma must be <= 1"),
        ("online_dpo", {"annotator": "gpt4"}, "align.annotator must be one of"),
        ("online_dpo", {"annotator_accuracy": 0.3}, "align.annotator_accuracy must be >= 0.5"),
        ("rloo", {"rloo_k": 1}, "align.rloo_k must be >= 2"),
        ("online_bdhs", {"regen_every": 0}, "align.regen_every must be >= 1"),
        ("dpo", {"betta": 0.1}, "align.betta is not read by method 'dpo'"),
        ("dpo", {"rloo_k": 4}, "align.rloo_k is not read by method 'dpo'"),
        ("rloo", {"annotator": "reward_model", "reward_model_path": ""}, "align.reward_model_path: must name"),
        ("ppo", {"annotator": "noisy_oracle"}, "align.annotator: 'noisy_oracle' is a pairwise judge"),
        ("dpo", {"lora": True, "train_vision_tower": True}, "align.train_vision_tower"),
        ("ppo", {"batch_size": 4, "ppo_minibatch": 8}, "align.ppo_minibatch: must be <= batch_size (4), got 8"),
    ],
)
def test_bad_params_name_the_parameter_and_range(method, kw, needle):
    raw = full("dpo" if method == "kto" else method, **kw)
    with pytest.raises(AlignParamsError) as e:
        make_params({**raw, "method": method})
    assert needle in str(e.value)


def test_a_missing_knob_is_named_not_defaulted():
    raw = full("rloo")
    del raw["kl_coef"]
    with pytest.raises(AlignParamsError) as e:
        make_params(raw)
    assert str(e.value) == (
        "invalid alignment params: align.kl_coef is missing: method 'rloo' reads it (params.yaml holds every knob)"
    )


def test_errors_name_the_group_where_the_value_is_written():
    g = groups()
    g["pair"]["beta_by_loss"]["ipo"] = -1.0
    with pytest.raises(AlignParamsError) as e:
        method_params("ipo", g, BDHS)
    assert str(e.value) == "invalid alignment params: align.pair.beta_by_loss.ipo must be > 0, got -1.0"
    g = groups()
    g["sampling"]["temperature"] = 0
    with pytest.raises(AlignParamsError, match=r"align\.sampling\.temperature must be > 0, got 0"):
        method_params("rloo", g, BDHS)
    with pytest.raises(AlignParamsError, match=r"bdhs\.rho_th must be <= 1, got 2"):
        method_params("online_bdhs", groups(), {**BDHS, "rho_th": 2.0})


def test_a_misplaced_knob_is_refused_where_it_is_written():
    g = groups()
    g["base"]["round_size"] = 8  # an online knob put in the shared base would be read by no one
    g["methods"]["dpo"] = {"gamma": 0.5}
    g["methods"]["kto"] = {}
    with pytest.raises(AlignParamsError) as e:
        check_layout(g)
    msg = str(e.value)
    assert "align.base.round_size is not a knob of align.base" in msg
    assert "align.methods.dpo.gamma is not a knob of method 'dpo' (its own: [])" in msg
    assert "align.methods.kto: not a registered method" in msg
    check_layout(groups())  # params.yaml's layout is valid


def test_params_are_frozen_and_accept_their_own_dump():
    p = align_params("ipo", beta=0.2)
    assert make_params(p) == p and p.beta == 0.2
    with pytest.raises(Exception):
        p.beta = 1.0  # type: ignore[misc]
    assert isinstance(p, AlignParams) and type(p).__name__ == "IpoConfig"


def test_missing_or_empty_column_is_named(rows):
    no_rej = [{k: v for k, v in r.items() if k != "rejected"} for r in rows]
    with pytest.raises(AlignDataError, match="no column 'rejected', which method 'dpo' needs"):
        check_columns(no_rej, "dpo")
    empty2 = [dict(r, rejected_2="") for r in rows]
    with pytest.raises(AlignDataError, match="row 0: column 'rejected_2' is missing or empty"):
        check_columns(empty2, "avg_dpo")
    no_chosen = [{"prompt": r["prompt"], "scene_id": r["scene_id"]} for r in rows]
    assert check_columns(no_chosen, "online_dpo") == len(rows)  # prompts suffice for online sampling
    with pytest.raises(AlignDataError, match="no column 'chosen'"):
        check_columns(no_chosen, "online_bdhs")
    with pytest.raises(AlignDataError, match="empty"):
        check_columns([], "rloo")


def test_reward_model_path_is_checked_when_training_starts_not_at_params_load(tmp_path):
    from study.align.config import check_reward_model

    # params name a reward model the pipeline has not trained yet: valid params ...
    p = align_params("rloo", annotator="reward_model", reward_model_path=str(tmp_path / "rm"))
    # ... but training refuses to start until the directory holds a model
    with pytest.raises(AlignParamsError, match=r"align.reward_model_path: '.*rm' does not exist"):
        check_reward_model(p)
    (tmp_path / "rm").mkdir()
    with pytest.raises(AlignParamsError, match="no config.json"):
        check_reward_model(p)
    (tmp_path / "rm" / "config.json").write_text("{}")
    check_reward_model(p)  # exists now
    check_reward_model(align_params("dpo"))  # offline: no judge, nothing to check


def test_train_fails_before_touching_the_model(rows, world, tmp_path):
    model = mock.MagicMock()
    cases = [
        ("kto", rows, {}, AlignParamsError, "align.method must be one of"),
        ("dpo", rows, {"beta": 0.0}, AlignParamsError, "align.beta must be > 0"),
        ("mixed_dpo", rows, {"p": 1.2}, AlignParamsError, "align.p must be <= 1"),
        ("dpo", [{k: v for k, v in r.items() if k != "chosen"} for r in rows], {}, AlignDataError, "'chosen'"),
        (
            "online_dpo",
            rows,
            {"annotator": "reward_model", "reward_model_path": str(tmp_path / "rm")},
            AlignParamsError,
            "reward_model_path",
        ),
    ]
    for method, data, params, err, needle in cases:
        with pytest.raises(err, match=needle):
            train(
                method,
                policy=(model, mock.MagicMock()),
                world=world,
                data=data,
                params=full("dpo" if method == "kto" else method, **params),
                out_dir=tmp_path / "out",
            )
    assert model.method_calls == [] and not (tmp_path / "out").exists()
    with pytest.raises(AlignDataError, match="preference file not found"):
        train(
            "dpo",
            policy=(model, None),
            world=world,
            data=tmp_path / "missing.parquet",
            params=align_params("dpo"),
            out_dir=tmp_path / "o",
        )


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"lora": "no"}, "align.lora: Input should be a valid boolean (got 'no')"),
        ({"lora": 0}, "align.lora: Input should be a valid boolean (got 0)"),
        ({"bf16": "true"}, "align.bf16: Input should be a valid boolean (got 'true')"),
        ({"batch_size": True}, "align.batch_size: Input should be a valid integer (got True)"),
        ({"lora_r": 8.0}, "align.lora_r: Input should be a valid integer (got 8.0)"),
        ({"beta": "0.1"}, "align.beta: Input should be a valid number (got '0.1')"),
        ({"beta": False}, "align.beta: Input should be a valid number (got False)"),
    ],
)
def test_knob_types_are_strict(kw, msg):
    with pytest.raises(AlignParamsError) as e:
        make_params(full("dpo", **kw))
    assert str(e.value) == f"invalid alignment params: {msg}"
    assert [k for k, _ in e.value.issues] == [msg.split(":")[0]]  # the key, for study.config to name


def test_floats_take_integers_and_exponent_strings():
    p = make_params(full("dpo", epochs=2, learning_rate="5e-06", lora=False))
    assert (p.epochs, p.learning_rate, p.lora) == (2.0, 5e-6, False) and type(p.epochs) is float


def test_run_params_names_the_key_as_written():
    g = groups()
    g["base"]["batch_size"] = 4
    with pytest.raises(AlignParamsError) as e:  # a group's knob breaking a rule of this run: named in its group
        run_params("ppo", {"method": "ppo", "data": "recipes/povid"}, g, BDHS)
    assert str(e.value) == (
        "invalid alignment params: align.methods.ppo.ppo_minibatch: must be <= batch_size (4), got 8 (in align.runs.ppo)"
    )
    with pytest.raises(AlignParamsError) as e:  # the run's own knob: named in the run
        run_params("ppo", {"method": "ppo", "data": "recipes/povid", "ppo_minibatch": 8, "batch_size": 4}, g, BDHS)
    assert str(e.value) == "invalid alignment params: align.runs.ppo.ppo_minibatch: must be <= batch_size (4), got 8"
    with pytest.raises(AlignParamsError) as e:  # a knob its method never reads would be silently ignored
        run_params("x", {"method": "ppo", "data": "recipes/povid", "rloo_k": 8, "betta": 1}, g, BDHS)
    assert "align.runs.x.betta is not a known parameter" in str(e.value)
    assert "align.runs.x.rloo_k is not read by method 'ppo'" in str(e.value)


@pytest.mark.parametrize("name", ["my/run", "my run", "1run", "_x", "a.b", "", 3])
def test_run_names_must_be_identifiers(name):
    with pytest.raises(AlignParamsError) as e:
        run_params(name, {"method": "dpo", "data": "bdhs"}, groups(), BDHS)
    assert str(e.value) == (
        f"invalid alignment params: align.runs: run name {name!r} must start with a letter and "
        "hold only letters, digits, `_` and `-`"
    )
    from study.align.config import check_run_name

    assert check_run_name("dpo_bdhs-2") == "dpo_bdhs-2"


@pytest.mark.parametrize(
    "data", ["../../..", "recipes/../../x", "/abs/path", "recipes//povid", ".hidden", "a\\b", "", None, ["bdhs"]]
)
def test_run_data_must_stay_inside_artifacts_prefs(data):
    with pytest.raises(AlignParamsError) as e:
        run_params("dpo_x", {"method": "dpo", "data": data}, groups(), BDHS, section="rm_runs")
    assert str(e.value) == (
        "invalid alignment params: align.rm_runs.dpo_x.data must be a path inside artifacts/prefs "
        "(it names artifacts/prefs/<data>.parquet): parts of letters, digits, `_`, `-` and `.` "
        f"joined by `/`, no `..`, not absolute; got {data!r}"
    )
    for ok in ("bdhs", "recipes/povid", "union/povid_bdhs", "recipes/v1.2"):
        assert check_data_path(ok, "k") == ok
