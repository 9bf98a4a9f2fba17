"""Object-HalBench-style CHAIR: object hallucination of free descriptions of COCO images.

Inputs (all local):

    questions     one JSON object a line: {"question_id": .., "image": "COCO_val2014_....jpg", "text": "Describe ..."}
    instances     COCO's ``instances_val2014.json`` ({"images", "annotations", "categories"}): the ground-truth
                  objects of an image are the categories of its instance annotations;
    captions      optional, COCO's ``captions_val2014.json``: objects named in an image's reference captions
                  are added to its ground truth (CHAIR's rule, so a correct mention of an unannotated object
                  is not a hallucination);
    image dir     the images named by ``image``.

Mentions. ``study/bench/coco_objects.txt`` maps words to the 80 COCO categories. An answer is split into
lower-cased words (:func:`study.bench.files.words`: alphanumeric runs); each word is reduced to a listed
word if it is one or if dropping ``s`` / ``es`` or ``ies`` -> ``y`` makes it one; phrases are matched longest first ("hot dog"
is not also "dog"). The mentioned set M_a of an answer is the distinct categories it names. As in CHAIR,
negation is not parsed ("there is no dog" mentions dog) and an ambiguous word (``orange``, ``mouse``)
counts as the object.

Metrics (G_a: the ground-truth categories of the answer's image):

    CHAIR_i = sum |M_a \\ G_a| / sum |M_a|      CHAIR_s = share of answers with M_a \\ G_a non-empty
    recall  = sum |M_a & G_a| / sum |G_a|       length  = mean words per answer

with 95 % CIs from a bootstrap over images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from study.bench.files import (
    BenchmarkFileError,
    check_images,
    read_json,
    read_json_lines,
    require_fields,
    singular_candidates,
    words,
)
from study.bench.plan import Plan, score_by_plan
from study.eval.bootstrap import ratio

LEXICON_FILE = Path(__file__).with_name("coco_objects.txt")


class CocoLexicon:
    """Word -> COCO category, with plural reduction and longest-phrase-first matching."""

    def __init__(self, path: str | Path = LEXICON_FILE):
        self.phrases: dict[tuple[str, ...], str] = {}
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            if ":" not in line:
                raise BenchmarkFileError(f"{path}:{n}: expected 'category: word, word, ...'")
            cat, words = line.split(":", 1)
            cat = cat.strip()
            for w in [cat, *(x.strip() for x in words.split(",") if x.strip())]:
                key = tuple(w.split())
                if key in self.phrases and self.phrases[key] != cat:
                    raise BenchmarkFileError(f"{path}:{n}: {w!r} already names {self.phrases[key]!r}")
                self.phrases[key] = cat
        self.categories = sorted(set(self.phrases.values()))
        self.words = {w for p in self.phrases for w in p}
        self.longest = max(len(p) for p in self.phrases)

    def _reduce(self, tok: str) -> str:
        return next((c for c in singular_candidates(tok) if c in self.words), tok)

    def mentions(self, text: str) -> list[str]:
        """Categories named in ``text``, in order of mention, with repeats."""
        toks = [self._reduce(t) for t in words(text)]
        out, i = [], 0
        while i < len(toks):
            for k in range(min(self.longest, len(toks) - i), 0, -1):
                cat = self.phrases.get(tuple(toks[i : i + k]))
                if cat is not None:
                    out.append(cat)
                    i += k
                    break
            else:
                i += 1
        return out


def ground_truth(
    instances_path: str | Path, captions_path: str | Path | None = None, lexicon: CocoLexicon | None = None
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """``({file_name: GT categories}, {file_name: image id})`` from COCO's annotation files."""
    lexicon = lexicon or CocoLexicon()
    inst = read_json(instances_path, "COCO instance annotations ({images, annotations, categories})")
    for key in ("images", "annotations", "categories"):
        if not isinstance(inst, dict) or key not in inst:
            raise BenchmarkFileError(f"{instances_path}: missing top-level key {key!r}")
    names = {c["id"]: c["name"] for c in inst["categories"]}
    unknown = sorted(set(names.values()) - set(lexicon.categories))
    if unknown:
        raise BenchmarkFileError(f"{instances_path}: categories not in {LEXICON_FILE.name}: {unknown[:5]}")
    ids = {im["file_name"]: im["id"] for im in inst["images"]}
    by_id: dict[int, set[str]] = {i: set() for i in ids.values()}
    for k, a in enumerate(inst["annotations"]):
        if a.get("category_id") not in names or a.get("image_id") not in by_id:
            raise BenchmarkFileError(f"{instances_path}: annotation {k} names an unknown image or category")
        by_id[a["image_id"]].add(names[a["category_id"]])
    if captions_path:
        caps = read_json(captions_path, "COCO reference captions ({annotations: [{image_id, caption}]})")
        if not isinstance(caps, dict) or not isinstance(caps.get("annotations"), list):
            raise BenchmarkFileError(f'{captions_path}: expected {{"annotations": [{{image_id, caption}}, ...]}}')
        for a in caps["annotations"]:
            if a.get("image_id") in by_id:
                by_id[a["image_id"]].update(lexicon.mentions(a["caption"]))
    return {f: by_id[i] for f, i in ids.items()}, ids


def load_halbench(questions_path: str | Path, image_dir: str | Path, *, limit: int | None = None) -> list[dict]:
    """Evaluation items (suite ``halbench``) of an Object-HalBench question file."""
    rows = read_json_lines(questions_path, "Object-HalBench questions, one {question_id, image, text} a line")
    items, seen = [], {}
    for n, obj in rows[:limit] if limit is not None else rows:
        where = f"{questions_path}:{n}"
        require_fields(obj, ("question_id", "image", "text"), where)
        if obj["question_id"] in seen:
            raise BenchmarkFileError(
                f"{where}: question_id {obj['question_id']!r} repeats line {seen[obj['question_id']]}"
            )
        seen[obj["question_id"]] = n
        items.append(
            {
                "item_id": f"halbench:{obj['question_id']}",
                "suite": "halbench",
                "scene_id": str(obj["image"]),
                "image": str(obj["image"]),
                "prompt": str(obj["text"]),
            }
        )
    check_images(image_dir, [it["image"] for it in items], "Object-HalBench")
    return items


def chair_counts(answer: str, truth: set[str], lexicon: CocoLexicon) -> dict[str, int]:
    mentioned = set(lexicon.mentions(answer))
    wrong = mentioned - truth
    return {
        "answers": 1,
        "mentioned": len(mentioned),
        "hallucinated": len(wrong),
        "any_hallucinated": int(bool(wrong)),
        "truth": len(truth),
        "covered": len(mentioned & truth),
        "tokens": len(words(answer)),
    }


HALBENCH_METRICS = {
    "chair_i": lambda s: ratio(s["hallucinated"], s["mentioned"]),
    "chair_s": lambda s: ratio(s["any_hallucinated"], s["answers"]),
    "recall": lambda s: ratio(s["covered"], s["truth"]),
    "length": lambda s: ratio(s["tokens"], s["answers"]),
}


def halbench_plan(rows: Sequence[dict], truth: dict[str, set[str]], lexicon: CocoLexicon | None = None) -> Plan:
    """One suite, ``halbench`` (:mod:`study.bench.plan`); an image without annotations is an error naming it."""
    lexicon = lexicon or CocoLexicon()
    missing = [r["image"] for r in rows if r["image"] not in truth]
    if missing:
        raise BenchmarkFileError(
            f"image {missing[0]!r} has no entry in the COCO instances file ({len(missing)} such answers)"
        )
    stats = lambda r: chair_counts(r["answer"], truth[r["image"]], lexicon)  # noqa: E731
    return {"halbench": (list(range(len(rows))), stats, HALBENCH_METRICS)}


def score_halbench(
    rows: Sequence[dict],
    truth: dict[str, set[str]],
    *,
    lexicon: CocoLexicon | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """``{"halbench": {metric: {"value", "ci95"}}}``; an image without annotations is an error naming it."""
    return score_by_plan(rows, halbench_plan(rows, truth, lexicon), n_boot=n_boot, seed=seed)
