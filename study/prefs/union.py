"""Two rejected answers per prompt: the paper's "external y- ∪ policy y~-" datasets (paper Table 6).

Table 6 pairs the GPT-4V-built POVID rejection y-_1 with a second rejection y-_2 made from the policy
(POVID-style image distortion, or BDHS) and trains with Avg-DPO (Eq. 5, gamma = 0.5). Here y-_1 is the
POVID-style corruption of :mod:`study.prefs.povid` and y-_2 comes from a second dataset built on the
same items. :func:`second_rejected` joins the two on ``(scene_id, prompt, chosen)``:

    for every row r of ``primary`` whose key also appears in ``secondary`` (first match):
        r.rejected_2 = secondary.rejected

so both arms of an ablation can be built on exactly the same rows (:func:`matched_pair`): same prompts,
same chosen answers, same y-_1; only y-_2 differs. Rows without a partner are dropped (the recipes
subsample independently, so the overlap is usually large but not complete); the count is returned.
"""

from __future__ import annotations

import json

from study.prefs.schema import validate_rows


def _key(r: dict) -> tuple[str, str, str]:
    return (r["scene_id"], r["prompt"], r["chosen"].strip())


def second_rejected(primary: list[dict], secondary: list[dict], recipe: str) -> list[dict]:
    """Rows of ``primary`` with ``rejected_2`` = the matching ``secondary`` row's ``rejected`` (module doc)."""
    sec: dict[tuple, dict] = {}
    for r in secondary:
        sec.setdefault(_key(r), r)
    out = []
    for r in primary:
        s = sec.get(_key(r))
        if s is None or s["rejected"].strip() in (r["chosen"].strip(), r["rejected"].strip()):
            continue
        src = {
            "primary": json.loads(r["source_ids"]),
            "secondary": json.loads(s["source_ids"]),
            "rejected": r["recipe"],
            "rejected_2": s["recipe"],
        }
        out.append({**r, "rejected_2": s["rejected"], "recipe": recipe, "source_ids": json.dumps(src, sort_keys=True)})
    return validate_rows(out)


def matched_pair(
    primary: list[dict], secondary: list[dict], recipe_own: str, recipe_union: str
) -> tuple[list[dict], list[dict]]:
    """The two arms of the Table-6 ablation on the same rows.

    ``own``: the primary rows (keeping their own ``rejected_2``, e.g. POVID's noisy-image answer) restricted
    to the rows that have a partner in ``secondary``; ``union``: the same rows with ``rejected_2`` taken
    from ``secondary`` (e.g. BDHS). Rows whose own ``rejected_2`` is empty are dropped from both.
    """
    union = second_rejected(primary, secondary, recipe_union)
    keys = {_key(r) for r in union}
    own = [{**r, "recipe": recipe_own} for r in primary if _key(r) in keys and r["rejected_2"].strip()]
    own_keys = {_key(r) for r in own}
    union = [r for r in union if _key(r) in own_keys]
    return validate_rows(own), union
