"""Shared fixtures of the evaluation tests: the world spec, hand-made scenes and an oracle model."""

import numpy as np
import pytest

from study.world import language


@pytest.fixture(scope="session")
def oracle_answer_fn(spec):
    """``oracle_answer_fn(scenes)``: an answer_fn that answers every suite's prompt truthfully."""
    return lambda scenes: _oracle(spec, scenes)


def _oracle(spec, scenes):
    by_id = {s.scene_id: s for s in scenes}
    lexicon = spec.word_to_category()

    def answer(scene_ids, prompts):
        out = []
        for sid, p in zip(scene_ids, prompts):
            scene, t = by_id[sid], p.split()
            if p in language.DESCRIBE_PROMPTS:
                out.append(language.describe(spec, scene, np.random.default_rng(len(out)), noise_rate=0.0)[0])
            elif p.startswith("is there a"):
                out.append(language.existence_qa(t[3], t[3] in scene.categories)[1])
            elif p.startswith("what color is the"):
                out.append(language.color_qa(scene, t[4])[1])
            elif p.startswith("how many"):
                out.append(language.count_qa(spec, scene, lexicon[t[2]])[1])
            elif p.startswith("is the"):
                out.append(language.relation_qa(scene, t[2], " ".join(t[3:-3]), t[-2])[1])
            else:
                raise AssertionError(f"oracle cannot answer {p!r}")
        return out

    return answer
