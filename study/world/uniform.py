"""Scenes without co-occurrence for the vision tower's pretraining: the organism's analog of CLIP's web data.

LLaVA's CLIP tower learned to see from ~400M web image-text pairs, whose statistics are not those of the
instruction data (COCO) that LLaVA is tuned on: a dog is seen in parks, kitchens and offices alike, so
the tower's features name the dog, not the park. A tower pretrained on the world's own train split sees
the world's co-occurrence instead (four core objects per context at 0.55-0.8), and its features encode
the background more than the glyphs (``paper/organism_v2.md``). :class:`UniformScenes` is the other
corpus: the same spec, renderer and scene knobs as the world (``max_objects``, ``typical_color_prob``,
``faint_prob``, ``faint_alpha``, ``noise_std``, read from the built world's ``spec.json``), but every scene
draws ``n ~ U{1..max_objects}`` categories uniformly without replacement and a context (background)
uniformly, independently of each other (the ``ood`` split's sampler).

The scenes come from their own generator, seeded by ``(seed, UNIFORM_STREAM, split, index)``, so they are
disjoint from every split of the world: the world's ``ood`` scenes, on which the grounding gates are
measured, are never among them. Only the tower trains on them; SFT and everything after it see the
world's train split, with its co-occurrence prior, as before.

The object answers :class:`study.world.corpus.World`'s read interface for the splits ``train`` and
``val`` (``scenes``, ``images``, ``image``), so the pretraining objectives read it as they read a world.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from study.world.corpus import World
from study.world.render import render_scene
from study.world.scenes import Scene, SceneParams, sample_scene
from study.world.spec import WorldSpec

UNIFORM_STREAM = 104729
SPLITS = ("train", "val")


class UniformScenes:
    """``n_train`` + ``n_val`` uniform-category scenes rendered like ``world`` (module docstring)."""

    def __init__(
        self,
        spec: WorldSpec,
        scene_params: SceneParams,
        *,
        n_train: int,
        n_val: int,
        seed: int,
        faint_alpha: float,
        noise_std: float,
    ):
        if n_train < 1 or n_val < 1:
            raise ValueError(f"UniformScenes needs n_train >= 1 and n_val >= 1, got {n_train}, {n_val}")
        self.seed = seed
        self._scenes = {
            split: [
                sample_scene(spec, scene_params, seed, split, i, uniform=True, stream=(UNIFORM_STREAM,))
                for i in range(n)
            ]
            for split, n in (("train", n_train), ("val", n_val))
        }
        render_seed = seed + UNIFORM_STREAM  # pixel noise, too, differs from the world's
        self._images = {
            split: np.stack([render_scene(spec, s, faint_alpha, noise_std, render_seed) for s in scenes])
            for split, scenes in self._scenes.items()
        }

    @classmethod
    def like(cls, world: World, spec: WorldSpec, *, n_train: int, n_val: int) -> "UniformScenes":
        """Uniform scenes with ``world``'s seed, scene knobs and rendering (its ``spec.json``)."""
        import json

        meta = json.loads((world.root / "spec.json").read_text())
        return cls(
            spec,
            SceneParams(**meta["scene_params"]),
            n_train=n_train,
            n_val=n_val,
            seed=meta["seed"],
            faint_alpha=meta["faint_alpha"],
            noise_std=meta["noise_std"],
        )

    def _check(self, split: str) -> None:
        if split not in SPLITS:
            raise KeyError(f"UniformScenes has splits {SPLITS}, not {split!r}")

    def scenes(self, split: str) -> list[Scene]:
        self._check(split)
        return self._scenes[split]

    def images(self, split: str) -> np.ndarray:
        self._check(split)
        return self._images[split]

    def image(self, scene_id: str) -> Image.Image:
        split, idx = scene_id.rsplit("-", 1)
        return Image.fromarray(self.images(split)[int(idx)])
