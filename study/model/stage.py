"""The ``vision``, ``lm`` and ``sft`` stages: the organism's training before alignment, in LLaVA's order.

``vision`` builds the base model (a fresh organism from ``model``, or the local checkpoint of
``model.base_path``), pretrains the organism's vision tower (:mod:`study.model.vision_pretrain`; skipped
for a pretrained checkpoint and when ``vision.epochs`` is 0) and saves it; ``lm`` pretrains its language
model on text (:mod:`study.model.lm_pretrain`, the organism's Vicuna) and aligns the projector to it with
tower and LM frozen (:mod:`study.model.projector_align`, LLaVA's stage 1); ``sft`` instruction-tunes that
model with TRL's SFTTrainer (LLaVA's stage 2)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from study import io
from study.config import LMSection, ModelSection, ProjectorSection, SFTSection, VisionSection
from study.model.build import ModelParams, build_model, n_parameters
from study.model.load import load_model
from study.model.processor import build_processor
from study.model.sft import SFTParams, train_sft
from study.model.vision_pretrain import VisionPretrainParams
from study.resume import default_work_dir
from study.world.corpus import World
from study.world.language import vocabulary
from study.world.spec import load_spec

if TYPE_CHECKING:
    from study.pipeline import StageContext


def base_model(model: ModelSection, spec, seed: int):
    """The starting point: a local LLaVA checkpoint if ``model.base_path`` is set, else a fresh organism."""
    if model.base_path:
        return load_model(model.base_path)
    mp = model_params_of(model)
    processor = build_processor(vocabulary(spec), spec.image_size, mp.patch_size)
    return build_model(processor, spec.image_size, mp, seed), processor


def model_params_of(model: ModelSection, **overrides) -> ModelParams:
    """The organism's architecture knobs of the ``model`` section (``overrides`` replace some)."""
    keys = ModelParams.__dataclass_fields__
    return ModelParams(**{**{k: getattr(model, k) for k in keys}, **overrides})


def sft_params_of(sp: SFTSection, **overrides) -> SFTParams:
    """The SFT knobs of the ``sft`` section (``overrides`` replace some)."""
    knobs = sp.model_dump(exclude={"on_base"})  # on_base is run_sft's: whether a base checkpoint trains at all
    return SFTParams(**{**knobs, "pool_fractions": tuple(sp.pool_fractions), **overrides})


def vision_params_of(vp: VisionSection) -> VisionPretrainParams:
    return VisionPretrainParams(
        epochs=vp.epochs, learning_rate=vp.learning_rate, batch_size=vp.batch_size, weight_decay=vp.weight_decay
    )


def pretrain_tower(vp: VisionSection, net, processor, world: World, spec, seed: int) -> dict:
    """Pretrain ``net``'s vision tower in place with ``vision.objective`` on ``vision.scenes`` (the world's
    train split, or uniform scenes without co-occurrence, :mod:`study.world.uniform`); returns its metrics,
    with the tower's presence probe on the world's ``val`` and ``ood`` splits
    (:func:`study.model.vision_pretrain.tower_presence_report`)."""
    from study.model.clip_pretrain import pretrain_clip
    from study.model.dense_pretrain import pretrain_dense
    from study.model.vision_pretrain import pretrain_vision, tower_presence_report
    from study.world.uniform import UniformScenes

    source = world if vp.scenes == "world" else UniformScenes.like(world, spec, n_train=vp.n_scenes, n_val=200)
    fn = {"presence": pretrain_vision, "clip": pretrain_clip, "dense": pretrain_dense}[vp.objective]
    metrics = fn(net, processor, source, spec, vision_params_of(vp), seed)
    metrics["scenes"] = vp.scenes
    metrics["tower_probe"] = tower_presence_report(net, processor, source, world, spec, vp.batch_size)
    return metrics


def pretrain_language_model(lm: LMSection, net, processor, world: World, spec, seed: int, work_dir) -> dict:
    """Text-only pretraining of ``net``'s language model in place (``lm``; the corpus knobs are the world's)."""
    from study.model.lm_pretrain import LMPretrainParams, pretrain_language

    lp = LMPretrainParams(**lm.model_dump())
    return pretrain_language(net, processor, world, spec, lp, seed, work_dir)


def align_projector_of(pp: ProjectorSection, net, processor, world: World, seed: int, work_dir) -> dict:
    """LLaVA's stage 1 on ``net`` in place: only the projector trains (``projector``)."""
    from study.model.projector_align import ProjectorAlignParams, align_projector

    return align_projector(net, processor, world, ProjectorAlignParams(**pp.model_dump()), seed, work_dir)


def _skip_stage(reason: str, out_dir: str, metrics_path: str) -> dict:
    """A stage with nothing to train: its output directory holds only ``skipped.json`` (the reason)."""
    metrics = {"skipped": reason}
    with io.atomic_dir(out_dir) as tmp:
        io.write_json(tmp / "skipped.json", metrics)
    io.write_json(metrics_path, metrics)
    return metrics


def _pass_base(base_path: str, out_dir, pool_dir, live_dir, metrics_path) -> dict:
    """``sft.on_base: pass``: the checkpoint at ``model.base_path`` is the SFT model. ``out_dir`` gets a
    :mod:`study.model.pointer` to it (checked first: a missing checkpoint fails here, naming the key), the
    pool and the curves directory stay empty (weaker pool members then come from ``prefs.pool_models``)."""
    from study.model.load import ModelPathError, check_model_dir
    from study.model.pointer import write_pointer

    try:
        check_model_dir(base_path)
    except ModelPathError as e:
        raise ModelPathError(f"model.base_path: {e}") from None
    with io.atomic_dir(out_dir) as tmp:
        pointer = write_pointer(tmp, base_path)
    if pool_dir is not None:
        with io.atomic_dir(pool_dir):
            pass
    if live_dir is not None:
        with io.atomic_dir(live_dir) as tmp:
            (tmp / "plots" / "metrics").mkdir(parents=True)  # DVCLive's layout, no curve in it
    metrics = {"skipped": "model.base_path is set and sft.on_base is pass: the checkpoint is the SFT model", **pointer}
    io.write_json(metrics_path, metrics)
    return metrics


def run_vision(ctx: StageContext) -> dict:
    """Build the base model, pretrain its vision tower, save model + processor to ``paths.out_dir``."""
    mp, vp, seed, world_spec = ctx.params.model, ctx.params.vision, ctx.params.seed, ctx.params.world.spec
    world_dir, out_dir, metrics_path = ctx.paths.world_dir, ctx.paths.out_dir, ctx.paths.metrics_path
    if mp.base_path:  # a real checkpoint: its tower is pretrained already, and SFT reads base_path itself
        return _skip_stage("model.base_path is set: its vision tower is already pretrained", out_dir, metrics_path)
    spec = load_spec(world_spec)
    net, processor = base_model(mp, spec, seed)
    if vp.epochs == 0:
        metrics = {"skipped": "vision.epochs is 0: the tower is trained only through SFT"}
    else:
        metrics = pretrain_tower(vp, net, processor, World(world_dir), spec, seed)
    metrics["objective"] = vp.objective
    with io.atomic_dir(out_dir) as tmp:
        net.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    io.write_json(metrics_path, metrics)
    return metrics


def run_lm(ctx: StageContext) -> dict:
    """Text-pretrain the ``vision`` stage's model's language model (``lm``), then align its projector with
    tower and LM frozen (``projector``, LLaVA's stage 1); save model + processor to ``paths.out_dir``."""
    p, x = ctx.params, ctx.paths
    mp, lp, pp, seed, world_spec = p.model, p.lm, p.projector, p.seed, p.world.spec
    world_dir, init_dir, out_dir, metrics_path = x.world_dir, x.init_dir, x.out_dir, x.metrics_path
    if mp.base_path:  # a real checkpoint: its LLM is pretrained and its projector aligned already
        return _skip_stage(
            "model.base_path is set: its language model and projector are trained already", out_dir, metrics_path
        )
    spec, world = load_spec(world_spec), World(world_dir)
    net, processor = load_model(init_dir)
    work = default_work_dir(out_dir)
    metrics: dict = {}
    if lp.epochs > 0:
        metrics["lm"] = pretrain_language_model(lp, net, processor, world, spec, seed, work / "lm")
    else:
        metrics["lm"] = {"skipped": "lm.epochs is 0: the language model learns language only through SFT"}
    if pp.epochs > 0:
        metrics["projector"] = align_projector_of(pp, net, processor, world, seed, work / "projector")
    else:
        metrics["projector"] = {"skipped": "projector.epochs is 0"}
    with io.atomic_dir(out_dir) as tmp:
        net.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    if work.exists():
        shutil.rmtree(work)
    io.write_json(metrics_path, metrics)
    return metrics


def sft_summary(metrics: dict) -> str:
    """One sentence on what the ``sft`` stage did, from its metrics: trained (eval/train loss, minutes,
    parameters) or passed a pretrained checkpoint through (``skipped``: nothing trained, no loss to report)."""
    if "skipped" in metrics:
        return f"SFT skipped: {metrics['skipped']} ({metrics['base_path']})."
    return (
        f"SFT reached eval loss {metrics['eval_loss']:.3f} (train {metrics['train_loss']:.3f}) in "
        f"{metrics['train_runtime_s'] / 60:.1f} min for a {metrics['parameters'] / 1e6:.2f} M-parameter model."
    )


def run_sft(ctx: StageContext) -> dict:
    """Instruction-tune the ``lm`` stage's model (``paths.init_dir``), or ``model.base_path`` when set (without
    either, a freshly built organism). ``paths.pool_dir`` (None: not kept) receives the intermediate checkpoints
    and ``paths.live_dir`` (None: not logged) the DVCLive curves."""
    p, x = ctx.params, ctx.paths
    mp, sp, seed, world_spec = p.model, p.sft, p.seed, p.world.spec
    world_dir, out_dir, metrics_path = x.world_dir, x.out_dir, x.metrics_path
    live_dir, pool_dir, init_dir = x.live_dir, x.pool_dir, x.init_dir
    if mp.base_path and sp.on_base == "pass":
        return _pass_base(mp.base_path, out_dir, pool_dir, live_dir, metrics_path)
    spec = load_spec(world_spec)
    net, processor = load_model(init_dir) if init_dir and not mp.base_path else base_model(mp, spec, seed)
    net.train()
    sft_params = sft_params_of(sp)
    metrics = train_sft(net, processor, World(world_dir), sft_params, out_dir, live_dir, seed, pool_dir=pool_dir)
    metrics["parameters"] = n_parameters(net)
    io.write_json(metrics_path, metrics)
    return metrics
