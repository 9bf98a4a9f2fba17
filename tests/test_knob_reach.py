"""One place per knob: every field of the objects the code reads comes from a params.yaml section, and turning
a section's knob changes exactly that field (the converters study uses between a section and its code).

For each (section, converter, object): every object field is named like a section knob (no knob that exists
only in code), and setting each such knob to a new valid value arrives in the object unchanged.
"""

from dataclasses import fields

import pytest

from study.bdhs.stage import bdhs_params
from study.config import load_section
from study.model.lm_pretrain import LMPretrainParams
from study.model.projector_align import ProjectorAlignParams
from study.model.stage import model_params_of, sft_params_of, vision_params_of
from study.prefs.rm_transfer import rm_params_of
from study.world.stage import corpus_params_of, scene_params_of

CONVERTERS = {
    "scene": ("world", scene_params_of),
    "corpus": ("world", corpus_params_of),
    "model": ("model", model_params_of),
    "sft": ("sft", sft_params_of),
    "vision": ("vision", vision_params_of),
    "lm": ("lm", lambda s: LMPretrainParams(**s.model_dump())),
    "projector": ("projector", lambda s: ProjectorAlignParams(**s.model_dump())),
    "rm": ("rm", rm_params_of),
    "bdhs": ("bdhs", bdhs_params),
}
SECTION_ONLY = {  # section knobs the object does not hold because another reader takes them
    "bdhs": {"encoder_path", "n_pairs", "sweep_rho", "sweep_n", "threads"},  # the bdhs stage and its sweep
    "model": {"base_path"},  # study.model.stage.base_model: a checkpoint instead of the organism
    "sft": {"on_base"},  # study.model.stage.run_sft: whether a base checkpoint is trained or passed through
    "vision": {"objective", "scenes", "n_scenes"},  # study.model.stage.pretrain_tower picks the objective and data
    "rm": {"recipes", "threads"},  # study.prefs.rm_transfer.run_reward_models
}


def _turned(value, double_ints=False):
    """A different value of the same type that every range here accepts (the organism's shapes must divide
    each other, so its integers are doubled)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 5 if value < 0 else 2 * value if double_ints else value + 1
    if isinstance(value, float):
        return value / 2 if value > 0 else 0.25
    if value is None:
        return 0.5
    if isinstance(value, str):
        return {"cosine": "constant", "constant": "cosine", "none": "context"}.get(value)
    if isinstance(value, (list, tuple)) and all(isinstance(x, float) for x in value):
        return [x / 2 for x in value]
    return None


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_every_field_is_a_section_knob(name):
    section_name, convert = CONVERTERS[name]
    section = load_section(section_name)
    obj = convert(section)
    knobs = set(type(section).model_fields)
    assert {f.name for f in fields(obj)} <= knobs, f"{name}: fields only in code"


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_each_knob_arrives_where_it_acts(name):
    section_name, convert = CONVERTERS[name]
    section = load_section(section_name)
    held = {f.name for f in fields(convert(section))}
    turned = 0
    for knob, value in section.model_dump().items():
        if knob not in held:
            assert knob in SECTION_ONLY.get(name, set()) or name in ("scene", "corpus"), (name, knob)
            continue
        new = _turned(value, double_ints=name == "model")
        if new is None:
            continue
        obj = convert(load_section(section_name, **{knob: new}))
        got = getattr(obj, knob)
        assert (list(got) if isinstance(got, tuple) else got) == new, (name, knob, got, new)
        turned += 1
    assert turned >= 3, name


def test_reward_model_training_switches_reach_rm_params():
    """The reward_models stage's GPU switches (rm.lora, lora_r, lora_alpha, bf16, gradient_checkpointing) are knobs
    the generic check above turns: held by RMParams, each arriving turned (and none only in code)."""
    switches = {"lora", "lora_r", "lora_alpha", "bf16", "gradient_checkpointing"}
    assert switches <= {f.name for f in fields(rm_params_of(load_section("rm")))}
    assert switches <= set(type(load_section("rm")).model_fields) and not switches & SECTION_ONLY["rm"]
    for knob in sorted(switches):
        value = getattr(load_section("rm"), knob)
        assert getattr(rm_params_of(load_section("rm", **{knob: _turned(value)})), knob) == _turned(value) != value


def test_world_knobs_each_reach_scenes_corpus_or_the_renderer():
    """The world section feeds three readers: scene sampling, the corpus and the renderer (faint_alpha, noise_std
    go to study.world.corpus.build_world) and the split sizes; no knob is read by none."""
    world = load_section("world")
    scene = {f.name for f in fields(scene_params_of(world))}
    corpus = {f.name for f in fields(corpus_params_of(world))}
    others = {"spec", "n_train", "n_val", "n_test", "n_ood", "faint_alpha", "noise_std"}
    assert set(type(world).model_fields) == scene | corpus | others
    assert not scene & corpus


def test_online_bdhs_samples_with_the_bdhs_sections_noise_steps():
    """bdhs.noise_steps reaches Online-BDHS too (it used the sampler's built-in 0 whatever params said)."""
    import yaml

    from study.align.online import bdhs_params as online_bdhs_params
    from study.config import resolve

    raw = yaml.safe_load(open("params.yaml"))
    raw["bdhs"]["noise_steps"] = 250
    ap, _, _ = resolve(raw, "quick").align_run("online_bdhs")
    assert online_bdhs_params(ap).noise_steps == 250
