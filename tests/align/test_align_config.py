"""Bad input fails before training, with a message naming the parameter / column and what is allowed."""

from unittest import mock

import pytest

from study.align import METHODS, AlignDataError, AlignParamsError, check_columns, make_params, train
from study.align.config import AlignParams, check_data_path, check_run_name, run_params


def test_registry_covers_every_method_and_loss_types_map():
    assert set(METHODS) == {"dpo", "ipo", "slic", "avg_dpo", "online_dpo", "online_bdhs", "mixed_dpo", "rloo", "ppo"}
    assert [make_params(method=m).loss_type for m in ("dpo", "ipo", "slic")] == ["sigmoid", "ipo", "hinge"]
    assert make_params(method="mixed_dpo", pair_loss="ipo").loss_type == "ipo"
    assert make_params().gamma == 0.5 and make_params().rloo_k == 4


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"method": "kto"}, "align.method must be one of"),
        ({"beta": 0}, "align.beta must be > 0"),
        ({"beta": -1.0}, "align.beta must be > 0, got -1.0"),
        ({"p": 1.5}, "align.p must be <= 1"),
        ({"p": -0.1}, "align.p must be >= 0"),
        ({"gamma": 2}, "align.gamma must be <= 1"),
        ({"annotator": "gpt4"}, "align.annotator must be one of"),
        ({"annotator_accuracy": 0.3}, "align.annotator_accuracy must be >= 0.5"),
        ({"rloo_k": 1}, "align.rloo_k must be >= 2"),
        ({"regen_every": 0}, "align.regen_every must be >= 1"),
        ({"betta": 0.1}, "align.betta is not a known parameter"),
        ({"method": "rloo", "annotator": "reward_model"}, "align.reward_model_path: must name"),
        ({"method": "ppo", "annotator": "noisy_oracle"}, "align.annotator: 'noisy_oracle' is a pairwise judge"),
        ({"lora": True, "train_vision_tower": True}, "align.train_vision_tower"),
    ],
)
def test_bad_params_name_the_parameter_and_range(kw, needle):
    with pytest.raises(AlignParamsError) as e:
        make_params(kw)
    assert needle in str(e.value)


def test_params_are_frozen_and_accept_their_own_dump():
    p = make_params(beta=0.2, method="ipo")
    assert make_params(p) == p
    with pytest.raises(Exception):
        p.beta = 1.0  # type: ignore[misc]
    assert isinstance(p, AlignParams)


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
    p = make_params({"method": "rloo", "annotator": "reward_model", "reward_model_path": str(tmp_path / "rm")})
    # ... but training refuses to start until the directory holds a model
    with pytest.raises(AlignParamsError, match=r"align.reward_model_path: '.*rm' does not exist"):
        check_reward_model(p)
    (tmp_path / "rm").mkdir()
    with pytest.raises(AlignParamsError, match="no config.json"):
        check_reward_model(p)
    (tmp_path / "rm" / "config.json").write_text("{}")
    check_reward_model(p)  # exists now
    check_reward_model(make_params({"method": "dpo", "annotator": "reward_model"}))  # offline: no judge needed


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
                params=params,
                out_dir=tmp_path / "out",
            )
    assert model.method_calls == [] and not (tmp_path / "out").exists()
    with pytest.raises(AlignDataError, match="preference file not found"):
        train("dpo", policy=(model, None), world=world, data=tmp_path / "missing.parquet", out_dir=tmp_path / "o")


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
        make_params(kw)
    assert str(e.value) == f"invalid alignment params: {msg}"
    assert [k for k, _ in e.value.issues] == [msg.split(":")[0]]  # the key, for study.config to name


def test_floats_take_integers_and_exponent_strings():
    p = make_params({"epochs": 2, "learning_rate": "5e-06", "lora": False})
    assert (p.epochs, p.learning_rate, p.lora) == (2.0, 5e-6, False) and type(p.epochs) is float


def test_run_params_names_the_key_as_written():
    base = {"batch_size": 4, "ppo_minibatch": 8}
    with pytest.raises(AlignParamsError) as e:  # a base knob breaking a rule of this run: named in align.base
        run_params("ppo", {"method": "ppo", "data": "recipes/povid"}, base)
    assert str(e.value) == (
        "invalid alignment params: align.base.ppo_minibatch: must be <= batch_size (4), got 8 (in align.runs.ppo)"
    )
    with pytest.raises(AlignParamsError) as e:  # the run's own knob: named in the run
        run_params("ppo", {"method": "ppo", "data": "recipes/povid", "ppo_minibatch": 8}, {"batch_size": 4})
    assert str(e.value) == "invalid alignment params: align.runs.ppo.ppo_minibatch: must be <= batch_size (4), got 8"


@pytest.mark.parametrize("name", ["my/run", "my run", "1run", "_x", "a.b", "", 3])
def test_run_names_must_be_identifiers(name):
    with pytest.raises(AlignParamsError) as e:
        run_params(name, {"method": "dpo", "data": "bdhs"})
    assert str(e.value) == (
        f"invalid alignment params: align.runs: run name {name!r} must start with a letter and "
        "hold only letters, digits, `_` and `-`"
    )
    assert check_run_name("dpo_bdhs-2") == "dpo_bdhs-2"


@pytest.mark.parametrize(
    "data", ["../../..", "recipes/../../x", "/abs/path", "recipes//povid", ".hidden", "a\\b", "", None, ["bdhs"]]
)
def test_run_data_must_stay_inside_artifacts_prefs(data):
    with pytest.raises(AlignParamsError) as e:
        run_params("dpo_x", {"method": "dpo", "data": data}, section="rm_runs")
    assert str(e.value) == (
        "invalid alignment params: align.rm_runs.dpo_x.data must be a path inside artifacts/prefs "
        "(it names artifacts/prefs/<data>.parquet): parts of letters, digits, `_`, `-` and `.` "
        f"joined by `/`, no `..`, not absolute; got {data!r}"
    )
    for ok in ("bdhs", "recipes/povid", "union/povid_bdhs", "recipes/v1.2"):
        assert check_data_path(ok, "k") == ok
