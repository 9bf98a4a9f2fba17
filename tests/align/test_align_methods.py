"""The method registry: a new method is one module plus one register() call, and each method owns its knobs."""

import copy
import sys
import textwrap

import pytest
import yaml

from study.align import methods, train
from study.align.config import AlignParamsError, make_params, run_params
from study.config import ParamsError, load_section, resolve

DUMMY = '''
"""A method that trains nothing: it records what it was given and saves the policy unchanged."""
from pydantic import Field

from study import io
from study.align.knobs import Group
from study.config import Float


class DummyKnobs(Group):
    """The dummy's own knob (params.yaml: align.methods.dummy)."""

    gamma: Float = Field(ge=0, le=1)


def train_dummy(model, processor, world, rows, params, out_dir, *, live_dir=None, work_dir=None, seed=0,
                annotator=None, **kw):
    with io.atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return {"rows": len(rows), "gamma": params.gamma, "seed": seed, "method": params.method}
'''


@pytest.fixture
def dummy(tmp_path, monkeypatch):
    """The one module and the one registry line of a new method."""
    (tmp_path / "dummy_align.py").write_text(textwrap.dedent(DUMMY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import dummy_align

    methods.register(
        methods.Method(
            "dummy", "dummy_align:train_dummy", "offline", (), methods.PAIR_COLUMNS, own=dummy_align.DummyKnobs
        )
    )
    yield
    methods.REGISTRY.pop("dummy")
    sys.modules.pop("dummy_align", None)


def test_a_registered_method_validates_trains_and_owns_its_knobs(
    dummy, fast, make_model, processor, rows, world, tmp_path
):
    groups, bdhs = load_section("align").groups(), load_section("bdhs").model_dump()
    p, data, _ = run_params("dummy_run", {"method": "dummy", "data": "bdhs", "gamma": 0.3}, groups, bdhs)
    assert p.gamma == 0.3 and data == "bdhs" and type(p).__name__ == "DummyConfig"
    assert set(p.model_dump()) == set(load_section("align").base) | {"method", "gamma"}  # base + its own knob
    assert make_params(p).method == "dummy"
    with pytest.raises(AlignParamsError, match=r"align.runs.dummy_run.round_size is not read by method 'dummy'"):
        run_params("dummy_run", {"method": "dummy", "data": "bdhs", "round_size": 8}, groups, bdhs)
    with pytest.raises(AlignParamsError, match=r"align.methods.dummy.gamma is missing: method 'dummy' reads it"):
        run_params("dummy_run", {"method": "dummy", "data": "bdhs"}, groups, bdhs)
    m = train(
        "dummy",
        policy=(make_model(), processor),
        world=world,
        data=rows[:5],
        params=fast("dummy", gamma=0.25),
        out_dir=tmp_path / "out",
        seed=3,
    )
    assert m == {"rows": 5, "gamma": 0.25, "seed": 3, "method": "dummy"}
    assert (tmp_path / "out" / "config.json").is_file()
    with pytest.raises(Exception, match="no column 'rejected'"):  # its declared columns are checked before it runs
        train(
            "dummy",
            policy=(make_model(), processor),
            world=world,
            data=[{k: v for k, v in r.items() if k != "rejected"} for r in rows[:2]],
            params=fast("dummy", gamma=0.25),
            out_dir=tmp_path / "out2",
        )


def test_a_registered_method_is_a_valid_run_of_params_yaml(dummy):
    raw = yaml.safe_load(open("params.yaml"))
    edited = copy.deepcopy(raw)
    edited["align"]["runs"]["dummy_povid"] = {"method": "dummy", "data": "recipes/povid"}
    with pytest.raises(ParamsError, match=r"align.methods.dummy.gamma is missing: method 'dummy' reads it"):
        resolve(edited)  # its own knob has no value yet: an error at params load, not a default
    edited["align"]["methods"]["dummy"] = {"gamma": 0.5}
    assert resolve(edited).align_run("dummy_povid")[0].gamma == 0.5
    edited["align"]["runs"]["dummy_povid"]["gamma"] = 0.4
    assert resolve(edited).align_run("dummy_povid")[0].gamma == 0.4
    edited["align"]["methods"]["dummy"] = {"gamma": 0.5, "beta": 0.1}
    with pytest.raises(ParamsError, match=r"align.methods.dummy.beta is not a knob of method 'dummy'"):
        resolve(edited)


def test_a_knob_two_groups_declare_is_refused():
    from pydantic import Field

    from study.align.knobs import Group, Sampling

    class Clash(Group):
        temperature: float = Field(gt=0)  # already the sampling group's

    with pytest.raises(ValueError, match="knob 'temperature' is declared by Sampling and Clash"):
        methods.Method("clash", "x:y", "online", (Sampling,), methods.PAIR_COLUMNS, own=Clash)
    assert "clash" not in methods.REGISTRY


def test_every_built_in_method_reads_what_its_trainer_reads():
    """The knob groups are not decoration: a run may set a knob only if its method reads it."""
    for name, own in (("dpo", set()), ("avg_dpo", {"gamma", "pair_loss"}), ("ppo", {"clip_range", "vf_coef"})):
        assert own <= set(methods.get(name).knobs)
    assert "round_size" not in methods.get("rloo").reads and "round_size" in methods.get("online_dpo").reads
    assert {"bdhs_rho_th", "bdhs_noise_steps"} <= methods.get("online_bdhs").reads
    assert methods.names("rl") == ("rloo", "ppo") and set(methods.names("offline")) >= {"dpo", "ipo", "slic"}
