"""The SFT corpus in TRL's conversational vision format, and the on-disk world layout.

Layout of a built world directory (the contract read by every later stage)::

    world/
      spec.json                 # the resolved world spec and scene params
      scenes/{split}.jsonl      # ground-truth scene graphs, one per line, in image order
      images/{split}.npy        # uint8 array (N, H, W, 3), row i = scenes/{split}.jsonl line i
      corpus/{split}.jsonl      # SFT rows: scene_id, kind, noisy_object, messages (train and val)

A corpus row's ``messages`` is ``[{"role": "user", "content": [{"type": "image"}, {"type": "text",
"text": prompt}]}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]``; the row's
image is ``images/{split}.npy[index of scene_id]``, attached at load time as ``images=[PIL.Image]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from study import io
from study.world import language
from study.world.phrases import INVERSE
from study.world.render import render_scene
from study.world.scenes import SPLITS, Scene, SceneParams, generate_split
from study.world.spec import WorldSpec


@dataclass(frozen=True)
class CorpusParams:
    """Knobs of the SFT corpus (validated in :mod:`study.config`)."""

    qa_per_scene: int
    exist_per_scene: int  # extra balanced existence questions per scene (LLaVA's short-answer mix)
    caption_noise_rate: float  # share of descriptions that mention one absent context object
    synonym_prob: float
    relation_prob: float
    position_first_prob: float  # share of object sentences that name the position first
    summary_prob: float  # share of descriptions holding a position-free summary list
    summary_place: str  # first (opens the description) | last (closes it)
    list_off_context: str  # last (the list's final slot) | anywhere (a random slot)
    exist_cooccur_prob: float  # P(a "no" existence question names one of the context's absent core objects)


def user_turn(prompt: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}


def conversation(prompt: str, answer: str) -> list[dict]:
    return [user_turn(prompt), {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def existence_item(spec: WorldSpec, scene: Scene, rng: np.random.Generator, *, cooccur_prob: float) -> tuple[str, str]:
    """A balanced existence question: "yes" with probability 1/2 (a present category, uniform); else "no"
    about an absent category: with probability ``cooccur_prob`` one of the scene context's absent core objects
    (the co-occurring, adversarial kind), otherwise any absent category (``world.exist_cooccur_prob``; at 0.5
    the draws are those of every world written before the knob).

    The share of co-occurring objects among the "no" questions is then
    ``cooccur_prob + (1 - cooccur_prob) * |context's absent core| / |absent|``."""
    present = sorted(scene.categories)
    absent = [c for c in spec.category_names if c not in scene.categories]
    ctx_absent = [c for c in spec.contexts[scene.context].objects if c not in scene.categories]
    if rng.random() < 0.5 or not absent:
        return language.existence_qa(present[int(rng.integers(len(present)))], True, rng)
    pool = ctx_absent if ctx_absent and rng.random() < cooccur_prob else absent
    return language.existence_qa(pool[int(rng.integers(len(pool)))], False, rng)


def qa_item(spec: WorldSpec, scene: Scene, rng: np.random.Generator, *, cooccur_prob: float) -> tuple[str, str, str]:
    """One random short-QA pair: existence, colour, count or relation. Returns (kind, prompt, answer).

    A relation question needs two objects whose categories are unique in the scene; without them the
    item becomes a *balanced* existence question (not a positive one, which would tilt the yes/no mix)."""
    kind = ("exist", "color", "count", "relation")[int(rng.integers(4))]
    cats = spec.category_names
    present = sorted(scene.categories)
    absent = [c for c in cats if c not in scene.categories]
    ctx_absent = [c for c in spec.contexts[scene.context].objects if c not in scene.categories]
    if kind == "exist":
        return kind, *existence_item(spec, scene, rng, cooccur_prob=cooccur_prob)
    if kind == "color":
        uniq = [o.category for o in language.unique_objects(scene)]
        if uniq and (rng.random() < 0.85 or not absent):
            return kind, *language.color_qa(scene, uniq[int(rng.integers(len(uniq)))])
        pool = ctx_absent or absent
        return kind, *language.color_qa(scene, pool[int(rng.integers(len(pool)))])
    if kind == "count":
        pool = present if rng.random() < 0.8 or not absent else absent
        return kind, *language.count_qa(spec, scene, pool[int(rng.integers(len(pool)))])
    fact = language.relation_fact(scene, rng)
    if fact is None:  # fewer than two unique objects: a balanced existence question instead
        return "exist", *existence_item(spec, scene, rng, cooccur_prob=cooccur_prob)
    if rng.random() < 0.5:  # a false relation: the inverse direction
        fact = {**fact, "rel": INVERSE[fact["rel"]]}
    return kind, *language.relation_qa(scene, fact["a"], fact["rel"], fact["b"])


def corpus_rows(spec: WorldSpec, scenes: list[Scene], params: CorpusParams, seed: int) -> list[dict]:
    rows = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, 104729, SPLITS.index(scene.split), i])
        text, inserted = language.describe(
            spec,
            scene,
            rng,
            synonym_prob=params.synonym_prob,
            noise_rate=params.caption_noise_rate,
            relation_prob=params.relation_prob,
            position_first_prob=params.position_first_prob,
            summary_prob=params.summary_prob,
            summary_place=params.summary_place,
            list_off_context=params.list_off_context,
        )
        prompt = language.DESCRIBE_PROMPTS[int(rng.integers(len(language.DESCRIBE_PROMPTS)))]
        rows.append(
            {
                "scene_id": scene.scene_id,
                "kind": "describe",
                "noisy_object": inserted,
                "messages": conversation(prompt, text),
            }
        )
        for _ in range(params.qa_per_scene):
            kind, p, a = qa_item(spec, scene, rng, cooccur_prob=params.exist_cooccur_prob)
            rows.append(
                {"scene_id": scene.scene_id, "kind": kind, "noisy_object": None, "messages": conversation(p, a)}
            )
        if params.exist_per_scene:  # a stream of its own: adding these leaves the rows above unchanged
            erng = np.random.default_rng([seed, 130363, SPLITS.index(scene.split), i])
            for _ in range(params.exist_per_scene):
                rows.append(
                    {
                        "scene_id": scene.scene_id,
                        "kind": "exist",
                        "noisy_object": None,
                        "messages": conversation(
                            *existence_item(spec, scene, erng, cooccur_prob=params.exist_cooccur_prob)
                        ),
                    }
                )
    return rows


def yes_no_balance(rows: list[dict]) -> dict:
    """How many corpus answers start with "yes" / "no", and the yes share among them."""
    first = [r["messages"][1]["content"][0]["text"].split(" ", 1)[0] for r in rows]
    yes, no = first.count("yes"), first.count("no")
    return {
        "yes_answers": yes,
        "no_answers": no,
        "yes_share": yes / (yes + no) if yes + no else 0.0,
        "exist_no_answers": sum(f == "no" and r["kind"] == "exist" for f, r in zip(first, rows)),
    }


def build_world(
    spec: WorldSpec,
    out_dir: str | Path,
    *,
    seed: int,
    sizes: dict[str, int],
    scene_params: SceneParams,
    corpus_params: CorpusParams,
    faint_alpha: float,
    noise_std: float,
) -> dict:
    """Generate every split, render it and write the corpus; the directory appears atomically.

    Returns summary statistics (counts, noise share, co-occurrence strength) for the metrics file.
    """
    stats: dict = {"splits": {}}
    with io.atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            n = sizes[split]
            scenes = generate_split(spec, scene_params, seed, split, n)
            images = (
                np.stack(
                    [
                        render_scene(spec, s, faint_alpha, noise_std, seed)
                        for s in tqdm(scenes, desc=f"render {split}", mininterval=2)
                    ]
                )
                if n
                else np.zeros((0, spec.image_size, spec.image_size, 3), np.uint8)
            )
            io.write_jsonl(tmp / "scenes" / f"{split}.jsonl", (s.to_dict() for s in scenes))
            io.save_array(tmp / "images" / f"{split}.npy", images)
            split_stats = {
                "scenes": n,
                "objects_per_scene": float(np.mean([len(s.objects) for s in scenes])) if n else 0.0,
                "faint_share": float(np.mean([o.faint for s in scenes for o in s.objects])) if n else 0.0,
            }
            if split in ("train", "val"):
                rows = corpus_rows(spec, scenes, corpus_params, seed)
                io.write_jsonl(tmp / "corpus" / f"{split}.jsonl", rows)
                desc = [r for r in rows if r["kind"] == "describe"]
                split_stats["corpus_rows"] = len(rows)
                split_stats["noisy_description_share"] = (
                    float(np.mean([r["noisy_object"] is not None for r in desc])) if desc else 0.0
                )
                split_stats.update(yes_no_balance(rows))
            stats["splits"][split] = split_stats
        io.write_json(
            tmp / "spec.json",
            {
                "source": spec.source,
                "seed": seed,
                "sizes": sizes,
                "scene_params": asdict(scene_params),
                "corpus_params": asdict(corpus_params),
                "faint_alpha": faint_alpha,
                "noise_std": noise_std,
            },
        )
    return stats


class World:
    """Read access to a built world directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "spec.json").is_file():
            raise FileNotFoundError(f"{self.root} is not a built world (no spec.json); run the `world` stage first")
        self._scenes: dict[str, list[Scene]] = {}
        self._images: dict[str, np.ndarray] = {}

    def __reduce__(self):
        """A world is its directory: pickling (e.g. ``datasets`` fingerprinting a ``with_transform`` closure
        that holds the world) stores the path, not the loaded scenes and image arrays (tens of MB)."""
        return (World, (str(self.root),))

    def scenes(self, split: str) -> list[Scene]:
        if split not in self._scenes:
            self._scenes[split] = [Scene.from_dict(d) for d in io.read_jsonl(self.root / "scenes" / f"{split}.jsonl")]
        return self._scenes[split]

    def images(self, split: str) -> np.ndarray:
        if split not in self._images:
            self._images[split] = io.load_array(self.root / "images" / f"{split}.npy")
        return self._images[split]

    def image(self, scene_id: str) -> Image.Image:
        split, idx = scene_id.rsplit("-", 1)
        return Image.fromarray(self.images(split)[int(idx)])

    def spec(self) -> WorldSpec:
        """The :class:`WorldSpec` this world was built from (``spec.json: source``, relative to the working
        directory or, failing that, to the project root)."""
        import json

        from study.world.spec import load_spec

        src = Path(json.loads((self.root / "spec.json").read_text())["source"])
        if not src.is_absolute() and not src.is_file():
            src = Path(__file__).resolve().parents[2] / src
        return load_spec(src)

    def corpus_params(self) -> CorpusParams:
        """The :class:`CorpusParams` this world's SFT corpus was written with (``spec.json``).

        A world written before ``list_off_context`` existed ordered its lists as ``last`` does (the same
        text, no extra random number), and one written before ``exist_cooccur_prob`` drew its co-occurring
        "no" questions with probability 0.5, so that is what a missing key means."""
        import json

        stored = json.loads((self.root / "spec.json").read_text())["corpus_params"]
        return CorpusParams(**{"list_off_context": "last", "exist_cooccur_prob": 0.5, **stored})

    def corpus(self, split: str = "train") -> list[dict]:
        return io.read_jsonl(self.root / "corpus" / f"{split}.jsonl")
