"""Evaluation items: one prompt about one scene, with everything needed to grade its answer.

Suites and their item fields (every item has ``item_id``, ``suite``, ``scene_id``, ``prompt``):

    describe          prompt = DESCRIBE_PROMPTS[0]; graded against the scene graph (CHAIR, helpfulness).
    pope_{random,popular,adversarial}
                      + ``object`` (category asked about), ``label`` ("yes" / "no"); see :mod:`.pope`.
    typed_qa          + ``qtype``, ``object``, ``expected`` (and ``relation`` = [a, rel, b] for relation
                      items); see :mod:`.typed_qa`.

``item_id`` is ``describe:{scene_id}``, ``pope_{type}:{scene_id}:{object}`` or
``typed_qa:{scene_id}:{qtype}``: stable across runs and unique within a build.
"""

from __future__ import annotations

from study.eval.pope import SPLIT_TYPES, pope_questions, train_statistics
from study.eval.typed_qa import typed_questions
from study.world.language import DESCRIBE_PROMPTS
from study.world.scenes import Scene
from study.world.spec import WorldSpec

SUITES = ("describe", *(f"pope_{t}" for t in SPLIT_TYPES), "typed_qa")


def build_items(
    spec: WorldSpec,
    scenes: list[Scene],
    train_scenes: list[Scene],
    n_pos: int = 3,
    seed: int = 0,
    suites: tuple[str, ...] = SUITES,
) -> list[dict]:
    """Every item of ``suites`` for ``scenes``, grouped by suite, in scene order within a suite."""
    unknown = set(suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites {sorted(unknown)}; known: {list(SUITES)}")
    frequency, cooc = train_statistics(spec, train_scenes)
    items: list[dict] = []
    for suite in suites:
        for scene in scenes:
            base = {"suite": suite, "scene_id": scene.scene_id}
            if suite == "describe":
                items.append({"item_id": f"describe:{scene.scene_id}", **base, "prompt": DESCRIBE_PROMPTS[0]})
            elif suite == "typed_qa":
                for q in typed_questions(spec, scene, seed):
                    items.append({"item_id": f"typed_qa:{scene.scene_id}:{q['qtype']}", **base, **q})
            else:
                for q in pope_questions(
                    spec, scene, suite.removeprefix("pope_"), frequency=frequency, cooc=cooc, n_pos=n_pos, seed=seed
                ):
                    items.append({"item_id": f"{suite}:{scene.scene_id}:{q['object']}", **base, **q})
    return items
