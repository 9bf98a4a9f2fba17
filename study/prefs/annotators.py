"""Annotators: who decides which of two answers is better (oracle, noisy oracle, learned reward model).

Interface (:class:`Annotator`):

    score(scene, prompt, answer) -> float     higher = better (the RL reward)
    prefer(scene, prompt, a, b)  -> 0 | 1     index of the preferred answer
    judge(scene, prompt, a, b, sa, sb) -> 0 | 1 | None   a preference, or None when the judge has none
                                              (online DPO skips such pairs); default: None iff sa == sb
    rank(scene, prompt, answers) -> [float]   scores used to rank a pool (VLFeedback); default = score

``prefer`` compares scores; a tie is broken at random by a generator seeded with (seed, crc32 of the
scene id, prompt and the two answers in sorted order), so the same question always gets the same
answer and ``prefer(a, b)`` and ``prefer(b, a)`` name the same winner.

Oracle (:class:`OracleAnnotator`), exact from the scene graph:

    short QA (existence / colour / count / relation prompts, :func:`study.prefs.facts.parse_prompt`):
        score = +1 correct, -1 hallucinated, 0 unparseable (:func:`study.prefs.facts.qa_grade`, built on
        study.eval.typed_qa.grade and study.eval.pope.pope_parse).
    anything else (descriptions), with
        F = facts stated (:func:`study.eval.helpfulness.helpfulness_stats` ``facts_stated``: each GT object
            mentioned, and each of its colour / size / position stated),
        H = hallucinated object mentions (:func:`study.eval.chair.chair_stats` ``hallucinated``),
        E = other false claims of :func:`study.prefs.facts.check_claims` (wrong colour / size /
            position / count, false relation, false denial, wrong context):

        preference (``judge``, ``prefer``, ``rank``): *Pareto*, as the paper's annotator prompt asks for
            the answer with less hallucination AND more helpful information (the paper's Table 14). With the
            false claims of an answer ``X = H + E``, a dominates b iff ``X_a <= X_b`` and ``F_a >= F_b``,
            one of them strictly. Neither dominating (one says more, the other errs less) is no
            preference: ``judge`` returns None, ``prefer`` breaks the tie at random. So the judge is
            length-neutral: adding a true sentence wins, adding a false one loses, adding one of each is
            a tie -- it never trades a hallucination for coverage or coverage for brevity. ``rank``
            (pool ranking) = answers dominated minus answers dominating.
        score (the scalar RL reward): W_COVERAGE * F / facts - W_HALLUCINATION * H - W_ERROR * E,
            with W_COVERAGE = 1, W_HALLUCINATION = 0.5, W_ERROR = 0.25: one hallucinated object costs as
            much as leaving two of four objects unmentioned. This scalar rewards saying less when the
            policy's precision is low (an empty answer scores 0, one right and one wrong object
            -0.057); it is only the RL reward, and the RL runs report their answer-length drift.

    Before the judge was made length-neutral, the preference, too, compared these scalar scores; Online-DPO
    samples on the organism then shrank from 21 to 17 words and helpfulness fell 2.5 points.

Noisy oracle (:class:`NoisyOracleAnnotator`): the oracle's preference (ties broken at random as above),
flipped with probability ``1 - accuracy`` by a generator seeded with (seed, crc32 of the unordered
pair); so its pairwise accuracy on pairs the oracle separates is ``accuracy`` in expectation, and a
pair always gets the same verdict. ``score`` is the oracle's (noise is pairwise); ``rank`` counts
pairwise wins (Copeland) so that pool rankings see the noise.

Learned reward model (:class:`RewardModelAnnotator`): ``r(image, prompt, answer)`` of a
:class:`study.prefs.reward_model.LlavaRewardModel` (training: :mod:`study.prefs.reward_model`).

:func:`annotator_accuracy` measures the share of held-out pairs whose ``chosen`` is preferred, showing
each pair in a random (seeded) order so that an annotator that always says 0 scores 0.5.
"""

from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np

from study.eval.chair import chair_stats
from study.eval.helpfulness import helpfulness_stats
from study.prefs.facts import check_claims, parse_prompt, qa_grade
from study.world.scenes import Scene
from study.world.spec import WorldSpec

W_COVERAGE = 1.0
W_HALLUCINATION = 0.5
W_ERROR = 0.25


def _pair_rng(seed: int, scene: Scene, prompt: str, a: str, b: str, stream: int) -> np.random.Generator:
    lo, hi = sorted((a, b))
    key = zlib.crc32("\x1f".join((scene.scene_id, prompt, lo, hi)).encode())
    return np.random.default_rng([seed, key, stream])


class Annotator:
    """Base class: subclasses implement :meth:`score`; ``prefer`` compares scores (random tie-break)."""

    name = "annotator"
    seed = 0

    def score(self, scene: Scene, prompt: str, answer: str) -> float:
        raise NotImplementedError

    def score_batch(self, scenes: Sequence[Scene], prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        return [self.score(s, p, a) for s, p, a in zip(scenes, prompts, answers)]

    def prefer_from_scores(self, scene: Scene, prompt: str, a: str, b: str, sa: float, sb: float) -> int:
        k = self.judge(scene, prompt, a, b, sa, sb)
        return self.tie_break(scene, prompt, a, b) if k is None else k

    def tie_break(self, scene: Scene, prompt: str, a: str, b: str) -> int:
        """The seeded coin of the module docstring: ``tie_break(a, b)`` and ``tie_break(b, a)`` name the same answer."""
        lo, _ = sorted((a, b))
        winner_lo = bool(_pair_rng(self.seed, scene, prompt, a, b, 0).random() < 0.5)
        return 0 if (a == lo) == winner_lo else 1

    def judge(self, scene: Scene, prompt: str, a: str, b: str, sa: float, sb: float) -> int | None:
        """0 / 1 = the preferred answer, None = no preference (here: equal scores)."""
        return None if sa == sb else (0 if sa > sb else 1)

    def prefer(self, scene: Scene, prompt: str, a: str, b: str) -> int:
        return self.prefer_from_scores(scene, prompt, a, b, self.score(scene, prompt, a), self.score(scene, prompt, b))

    def prefer_batch(self, scenes, prompts, a_list, b_list) -> list[int]:
        sa = self.score_batch(scenes, prompts, a_list)
        sb = self.score_batch(scenes, prompts, b_list)
        return [
            self.prefer_from_scores(s, p, a, b, x, y)
            for s, p, a, b, x, y in zip(scenes, prompts, a_list, b_list, sa, sb)
        ]

    def rank(self, scene: Scene, prompt: str, answers: Sequence[str]) -> list[float]:
        return self.score_batch([scene] * len(answers), [prompt] * len(answers), list(answers))


class OracleAnnotator(Annotator):
    """Exact scores from the scene graph (module docstring)."""

    name = "oracle"

    def __init__(
        self,
        spec: WorldSpec,
        *,
        w_coverage: float = W_COVERAGE,
        w_hallucination: float = W_HALLUCINATION,
        w_error: float = W_ERROR,
        seed: int = 0,
    ):
        self.spec, self.seed = spec, seed
        self.w_coverage, self.w_hallucination, self.w_error = w_coverage, w_hallucination, w_error

    def description_counts(self, scene: Scene, answer: str) -> dict[str, int]:
        """``F`` (facts stated), ``facts`` (of the scene), ``H`` (hallucinated objects), ``E`` (other false
        claims) of one description (module docstring)."""
        h = helpfulness_stats(answer, scene, self.spec)
        return {
            "F": h["facts_stated"],
            "facts": h["facts"],
            "H": chair_stats(answer, scene, self.spec)["hallucinated"],
            "E": check_claims(answer, scene, self.spec).n_other_errors,
        }

    def description_score(self, scene: Scene, answer: str) -> float:
        c = self.description_counts(scene, answer)
        coverage = c["F"] / c["facts"] if c["facts"] else 0.0
        return self.w_coverage * coverage - self.w_hallucination * c["H"] - self.w_error * c["E"]

    def dominance(self, scene: Scene, a: str, b: str) -> int | None:
        """0 if description ``a`` Pareto-dominates ``b`` (fewer-or-equal false claims, more-or-equal facts, one
        strictly), 1 if ``b`` dominates ``a``, None if neither."""
        ca, cb = self.description_counts(scene, a), self.description_counts(scene, b)
        xa, xb = ca["H"] + ca["E"], cb["H"] + cb["E"]
        if (xa, ca["F"]) == (xb, cb["F"]):
            return None
        if xa <= xb and ca["F"] >= cb["F"]:
            return 0
        if xb <= xa and cb["F"] >= ca["F"]:
            return 1
        return None

    def is_description(self, prompt: str) -> bool:
        return parse_prompt(prompt, self.spec)["kind"] == "describe"

    def score(self, scene: Scene, prompt: str, answer: str) -> float:
        q = parse_prompt(prompt, self.spec)
        if q["kind"] != "describe":
            return float(qa_grade(q, answer, scene, self.spec))
        return float(self.description_score(scene, answer))

    def judge(self, scene: Scene, prompt: str, a: str, b: str, sa: float, sb: float) -> int | None:
        """Pareto on descriptions (:meth:`dominance`), the QA grade otherwise (module docstring)."""
        if self.is_description(prompt):
            return self.dominance(scene, a, b)
        return super().judge(scene, prompt, a, b, sa, sb)

    def rank(self, scene: Scene, prompt: str, answers: Sequence[str]) -> list[float]:
        """Descriptions: answers each one dominates minus answers dominating it; QA: the grade."""
        if not self.is_description(prompt):
            return super().rank(scene, prompt, answers)
        out = [0.0] * len(answers)
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                k = self.dominance(scene, answers[i], answers[j])
                if k is not None:
                    winner, loser = (i, j) if k == 0 else (j, i)
                    out[winner] += 1.0
                    out[loser] -= 1.0
        return out


class NoisyOracleAnnotator(Annotator):
    """The oracle's preference flipped with probability ``1 - accuracy`` (module docstring)."""

    def __init__(self, spec: WorldSpec, accuracy: float, seed: int = 0, oracle: OracleAnnotator | None = None):
        if not 0.5 <= float(accuracy) <= 1.0:
            raise ValueError(f"accuracy must be in [0.5, 1], got {accuracy!r}")
        self.spec, self.accuracy, self.seed = spec, float(accuracy), seed
        self.oracle = oracle or OracleAnnotator(spec, seed=seed)
        self.name = f"noisy_oracle@{self.accuracy:g}"

    def score(self, scene: Scene, prompt: str, answer: str) -> float:
        return self.oracle.score(scene, prompt, answer)

    def _flip(self, scene, prompt, a, b) -> bool:
        return bool(_pair_rng(self.seed, scene, prompt, a, b, 1).random() >= self.accuracy)

    def judge(self, scene, prompt, a, b, sa, sb) -> int | None:
        """The oracle's preference, flipped with probability ``1 - accuracy``; no preference stays none."""
        k = self.oracle.judge(scene, prompt, a, b, sa, sb)
        return None if k is None else (1 - k if self._flip(scene, prompt, a, b) else k)

    def prefer_from_scores(self, scene, prompt, a, b, sa, sb) -> int:
        p = self.oracle.prefer_from_scores(scene, prompt, a, b, sa, sb)
        return 1 - p if self._flip(scene, prompt, a, b) else p

    def rank(self, scene: Scene, prompt: str, answers: Sequence[str]) -> list[float]:
        scores = self.score_batch([scene] * len(answers), [prompt] * len(answers), list(answers))
        wins = [0.0] * len(answers)
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                if answers[i] == answers[j]:
                    wins[i] += 0.5
                    wins[j] += 0.5
                    continue
                k = self.prefer_from_scores(scene, prompt, answers[i], answers[j], scores[i], scores[j])
                wins[i if k == 0 else j] += 1.0
        return wins


class RewardModelAnnotator(Annotator):
    """Scores from a learned reward model; images come from ``world`` (``World.image(scene_id)``)."""

    def __init__(self, model, processor, world, *, batch_size: int = 64, name: str = "reward_model", seed: int = 0):
        self.model, self.processor, self.world = model, processor, world
        self.batch_size, self.name, self.seed = batch_size, name, seed

    def score_batch(self, scenes, prompts, answers) -> list[float]:
        from study.prefs.reward_model import reward_scores

        images = [self.world.image(s.scene_id) for s in scenes]
        return reward_scores(
            self.model, self.processor, images, list(prompts), list(answers), batch_size=self.batch_size
        )

    def score(self, scene: Scene, prompt: str, answer: str) -> float:
        return self.score_batch([scene], [prompt], [answer])[0]


def _scene_lookup(scenes) -> Mapping[str, Scene]:
    if isinstance(scenes, Mapping):
        return scenes
    if hasattr(scenes, "scenes") and hasattr(scenes, "root"):  # a World
        from study.prefs.sources import scene_map

        return scene_map(scenes)
    return {s.scene_id: s for s in scenes}


def annotator_accuracy(annotator: Annotator, pairs, scenes, *, seed: int = 0, return_details: bool = False):
    """Share of ``pairs`` (schema rows: scene_id, prompt, chosen, rejected) where ``chosen`` is preferred.

    Each pair is shown as (chosen, rejected) or (rejected, chosen) at random (``seed``); ``scenes`` is a
    mapping scene_id -> Scene, a list of scenes or a World. With ``return_details`` returns
    ``{"accuracy", "n", "ties"}`` (ties = pairs whose two scores are equal, decided at random).
    """
    lookup = _scene_lookup(scenes)
    rows = list(pairs.to_dict(orient="records") if hasattr(pairs, "to_dict") and hasattr(pairs, "columns") else pairs)
    if not rows:
        raise ValueError("annotator_accuracy needs at least one pair")
    rng = np.random.default_rng(seed)
    swap = rng.random(len(rows)) < 0.5
    sc = [lookup[r["scene_id"]] for r in rows]
    pr = [r["prompt"] for r in rows]
    a = [r["rejected"] if s else r["chosen"] for r, s in zip(rows, swap)]
    b = [r["chosen"] if s else r["rejected"] for r, s in zip(rows, swap)]
    sa = annotator.score_batch(sc, pr, a)
    sb = annotator.score_batch(sc, pr, b)
    picks = [annotator.prefer_from_scores(s, p, x, y, u, v) for s, p, x, y, u, v in zip(sc, pr, a, b, sa, sb)]
    correct = [int(k == (1 if s else 0)) for k, s in zip(picks, swap)]
    acc = float(np.mean(correct))
    if return_details:
        return {"accuracy": acc, "n": len(rows), "ties": int(sum(u == v for u, v in zip(sa, sb)))}
    return acc
