"""Alignment params: each method's validated config, built from ``params.yaml``'s knob groups, and the input
checks that run BEFORE any training.

A method's config (:attr:`study.align.methods.Method.config`) is :class:`~study.align.knobs.AlignParams` plus
the knob groups it reads (:mod:`study.align.knobs`). :func:`method_knobs` gathers its values from
``params.yaml``: ``align.base``, the shared groups (``align.pair``, ``align.sampling``, ``align.online``,
``align.judge``, ``align.rl``), its own ``align.methods.<method>``, and for Online-BDHS the ``bdhs`` section.
A run of ``align.runs`` (:func:`run_params`) overrides some of them; a knob its method does not read is refused.

Validation happens at construction: an unknown or missing key, a wrong type or an out-of-range value raises
:class:`AlignParamsError` naming the key where it is written and its allowed range (``align.pair.beta must
be > 0, got -1``). Types are strict: a boolean knob takes only a boolean (``"no"``, ``1`` are refused), an
integer knob only an integer (``true``, ``8.0`` are refused), a float knob a float or an integer.
Cross-field rules (a reward model path that must be named, a pairwise-only annotator asked to give RL
rewards, ...) are checked too. A run also needs an identifier as its name and a ``data`` path inside
``artifacts/prefs``.

Loss of each pairwise method (h = log-ratio margin, see :mod:`study.align.losses`)::

    method     TRL loss_type   per-pair loss
    dpo        sigmoid         -log sigma(beta * h)
    ipo        ipo             (h_len - 1 / (2 beta))^2    (TRL length-normalises h, see losses.py)
    slic       hinge           max(0, 1 - beta * h)

``avg_dpo``, ``online_dpo``, ``online_bdhs`` and ``mixed_dpo`` apply the loss named by their ``pair_loss``.
:func:`check_columns` checks a preference dataset (rows, pandas or ``datasets``) for the columns a method
needs and raises :class:`AlignDataError` naming the missing column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from study.align import methods as registry
from study.align.knobs import AlignParams, Group
from study.align.knobs import Rule as _Rule

METHODS = registry.names()  # the methods built in (study.align.methods); a registered one joins REGISTRY
OFFLINE = tuple(n for n in registry.names("offline") if registry.get(n).loss)  # DPO / IPO / SLiC objectives

# The paper's learning-rate search grid (App. A): the values searched for offline
# DPO/IPO/SLiC, Online-DPO and Mixed-DPO on LLaVA-1.6-7B (LoRA r=128, alpha=256). The chosen value per
# method is NOT reported, so the `gpu` profile picks grid members and a sweep is
# `dvc exp run -S align.base.learning_rate=<value>` over these choices.
PAPER_LR_GRID = {
    "learning_rate": (1e-7, 5e-7, 1e-6, 5e-6),  # LoRA / language-model LR
    "projector_lr": (2e-5, 2e-6, 2e-7),  # multi_modal_projector LR (its own AdamW group)
}


class AlignParamsError(ValueError):
    """A bad alignment parameter; the message names it and what is allowed.

    ``issues``: ``(key, text)`` per problem, the message being ``invalid alignment params: `` + the
    ``key + text`` joined by ``; `` (empty for an error raised with a message only)."""

    def __init__(self, message: str, issues: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])

    @classmethod
    def of(cls, issues: list[tuple[str, str]]) -> "AlignParamsError":
        return cls("invalid alignment params: " + "; ".join(k + t for k, t in issues), issues)


class AlignDataError(ValueError):
    """A preference dataset the method cannot use; the message names the column (and the row)."""


_OPS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def check_reward_model(p: AlignParams, prefix: str = "align") -> None:
    """Raise :class:`AlignParamsError` if ``p`` scores with a reward model whose directory does not exist
    (or has no ``config.json``). Called by :func:`study.align.train` before the policy is loaded; not part
    of :class:`AlignParams` validation because in the pipeline the reward models are outputs of the
    ``reward_models`` stage, which runs after the params are first validated."""
    if not p.needs_annotator or p.annotator != "reward_model":
        return
    d = Path(p.reward_model_path)
    if not (d.is_dir() and (d / "config.json").is_file()):
        raise AlignParamsError(
            f"invalid alignment params: {prefix}.reward_model_path: {p.reward_model_path!r} does "
            "not exist or has no config.json (train one with the `reward_models` stage or "
            "study.prefs.reward_model.train_reward_model)"
        )


def _issues(err: ValidationError, method: str) -> list[tuple[str, str]]:
    """``(param, text)`` per error of a validation of ``method``'s config; ``param`` is the knob's dotted
    location inside it ("" for the whole mapping)."""
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        got = e.get("input")
        ctx = e.get("ctx") or {}
        t = e["type"]
        cause = ctx.get("error")
        if isinstance(cause, _Rule):  # cross-field rule: it names its knob
            out.append((cause.param, cause.text))
        elif t == "extra_forbidden":
            out.append((loc, f" is not read by method {method!r}"))
        elif t == "missing":
            out.append((loc, f" is missing: method {method!r} reads it (params.yaml holds every knob)"))
        elif t in _OPS:
            bound = next(iter(ctx.values()))
            bound = f"{bound:g}" if isinstance(bound, float) else bound
            out.append((loc, f" must be {_OPS[t]} {bound}, got {got!r}"))
        elif t == "literal_error":
            out.append((loc, f" must be one of {ctx.get('expected')}, got {got!r}"))
        else:
            out.append((loc, f": {e['msg']} (got {got!r})"))
    return out


def _keyed(prefix: str, param: str) -> str:
    return f"{prefix}.{param}" if param else prefix


def make_params(raw: AlignParams | Mapping[str, Any] | None = None, prefix: str = "align", **overrides) -> AlignParams:
    """The validated config of ``raw["method"]`` (a complete mapping of its knobs, e.g. :func:`method_knobs`'
    values, or a config to copy) with ``overrides``; errors name ``<prefix>.<knob>``."""
    if isinstance(raw, AlignParams):
        raw = raw.model_dump()
    data = {**(raw or {}), **overrides}
    method = data.get("method")
    if method not in registry.REGISTRY:
        raise AlignParamsError.of([(f"{prefix}.method", f" must be one of {list(registry.REGISTRY)}, got {method!r}")])
    try:
        return registry.get(method).config.model_validate(data)
    except ValidationError as e:
        raise AlignParamsError.of([(_keyed(prefix, p), t) for p, t in _issues(e, method)]) from None


def _group_sections() -> dict[str, type[Group]]:
    """``align.<section>`` -> the group class whose knobs it holds (the shared groups and ``base``)."""
    out: dict[str, type[Group]] = {AlignParams.SECTION: AlignParams}
    for m in registry.REGISTRY.values():
        out.update({g.SECTION: g for g in m.groups if g.SECTION not in (None, "bdhs")})
    return out


def _own_fields(cls: type[Group]) -> list[str]:
    return [f for f in cls.model_fields if f != "method"]


def method_knobs(method: str, align: Mapping[str, Any], bdhs: Mapping[str, Any]) -> tuple[dict, dict]:
    """``(values, where)``: the knobs ``method`` reads, from ``params.yaml``'s ``align`` groups (and ``bdhs``
    for the BDHS group), and for each the params key it came from (what an error names)."""
    m = registry.get(method)
    values: dict[str, Any] = {"method": method}
    where: dict[str, str] = {"method": "method"}
    for cls in (AlignParams, *m.groups):
        src, top = (bdhs, "bdhs") if cls.SECTION == "bdhs" else (align.get(cls.SECTION) or {}, f"align.{cls.SECTION}")
        for f in _own_fields(cls):
            key = cls.SOURCE.get(f, f)
            if key in src:
                values[f], where[f] = src[key], f"{top}.{key}"
    for f, v in ((align.get("methods") or {}).get(method) or {}).items():
        values[f], where[f] = v, f"align.methods.{method}.{f}"
    return values, where


def check_layout(align: Mapping[str, Any]) -> None:
    """Every key of a knob group of ``align`` is a knob of that group, and ``align.methods`` names registered
    methods with their own knobs only (a misplaced knob would be silently unread)."""
    issues = []
    for section, cls in _group_sections().items():
        known = _own_fields(cls)
        for key in align.get(section) or {}:
            if key not in known:
                issues.append((f"align.{section}.{key}", f" is not a knob of align.{section} (its knobs: {known})"))
    for method, own in (align.get("methods") or {}).items():
        if method not in registry.REGISTRY:
            issues.append((f"align.methods.{method}", f": not a registered method {list(registry.REGISTRY)}"))
            continue
        known = _own_fields(registry.get(method).own)
        for key in own or {}:
            if key not in known:
                issues.append(
                    (f"align.methods.{method}.{key}", f" is not a knob of method {method!r} (its own: {known})")
                )
    if issues:
        raise AlignParamsError.of(issues)


def knob_home(method: str, knob: str) -> str:
    """The params key where ``method``'s ``knob`` is written: ``align.<group>.<knob>``,
    ``align.methods.<method>.<knob>`` or, for the BDHS group, ``bdhs.<name>``."""
    m = registry.get(method)
    for cls in (AlignParams, *m.groups):
        if knob in _own_fields(cls):
            return (
                f"{cls.SECTION}.{cls.SOURCE.get(knob, knob)}"
                if cls.SECTION == "bdhs"
                else f"align.{cls.SECTION}.{knob}"
            )
    return f"align.methods.{method}.{knob}"


def _issues_where(err: ValidationError, method: str, where: Mapping[str, str], run_where: str | None) -> list:
    """:func:`_issues` with each knob named where its value is written (``where``), a missing one where it
    belongs (:func:`knob_home`), and ``(in <run>)`` when the value is not the run's own."""
    out = []
    for p, t in _issues(err, method):
        top = p.split(".")[0]
        key = where.get(top)
        if key is None and top in registry.get(method).reads:  # missing: name its home
            out.append((knob_home(method, top) + p[len(top) :], t + (f" (in {run_where})" if run_where else "")))
        elif key is None:
            out.append((_keyed(run_where or "align", p), t))
        elif run_where is not None and not key.startswith(run_where + "."):
            out.append((key + p[len(top) :], f"{t} (in {run_where})"))
        else:
            out.append((key + p[len(top) :], t))
    return out


def method_params(method: str, align: Mapping[str, Any], bdhs: Mapping[str, Any], **overrides) -> AlignParams:
    """The validated config of ``method`` from params' ``align`` and ``bdhs`` sections, with ``overrides``;
    errors name the params key each value came from."""
    values, where = method_knobs(method, align, bdhs)
    try:
        return registry.get(method).config.model_validate({**values, **overrides})
    except ValidationError as e:
        raise AlignParamsError.of(_issues_where(e, method, where, None)) from None


RUN_KEYS = ("method", "data", "seeds")
RUN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DATA_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_seeds(seeds: Any, key: str) -> list[int]:
    """A non-empty list of distinct integer seeds >= 0; errors name ``key``."""
    if (
        not isinstance(seeds, (list, tuple))
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise AlignParamsError.of([(key, f" must be a non-empty list of integers >= 0, got {seeds!r}")])
    if len(set(seeds)) != len(seeds):
        raise AlignParamsError.of([(key, f" has repeated seeds: {list(seeds)}")])
    return [int(s) for s in seeds]


def check_run_name(name: Any, section: str = "runs") -> str:
    """A run name (a key of ``align.runs`` / ``align.rm_runs``) names a DVC stage, its output directories
    and metrics file: a letter, then letters, digits, ``_`` or ``-``."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise AlignParamsError.of(
            [
                (
                    f"align.{section}",
                    f": run name {name!r} must start with a letter and hold only letters, digits, `_` and `-`",
                )
            ]
        )
    return name


def check_data_path(data: Any, key: str) -> str:
    """A run's ``data``: a relative path inside ``artifacts/prefs`` (``recipes/povid`` names
    ``artifacts/prefs/recipes/povid.parquet``, :func:`study.stages.prefs_file`); no ``..``, no absolute path,
    no hidden or empty part."""
    parts = data.split("/") if isinstance(data, str) else []
    if not parts or not all(_DATA_PART.fullmatch(x) for x in parts):
        from study.stages import prefs_file

        raise AlignParamsError.of(
            [
                (
                    key,
                    f" must be a path inside {prefs_file('<data>').rsplit('/', 1)[0]} (it names {prefs_file('<data>')}): "
                    "parts of letters, digits, `_`, `-` and `.` joined by `/`, no `..`, not absolute; "
                    f"got {data!r}",
                )
            ]
        )
    return data


def run_params(
    name: str, run: Mapping[str, Any], align: Mapping[str, Any], bdhs: Mapping[str, Any], section: str = "runs"
) -> tuple[AlignParams, str, list[int] | None]:
    """One entry of ``params.yaml: align.<section>`` (``runs`` or ``rm_runs``): ``(config, data, seeds or
    None)``.

    The run's knobs other than :data:`RUN_KEYS` override the values :func:`method_knobs` gathers; errors
    name the key as written: ``align.<section>.<name>.<key>`` for the run's own knobs, ``align.<group>.<key>
    (in align.<section>.<name>)`` for a group's knob that breaks a rule in this run. ``seeds`` (optional)
    replaces ``align.seeds`` for this run. ``name`` must be an identifier (:func:`check_run_name`) and
    ``data`` a path inside ``artifacts/prefs`` (:func:`check_data_path`).
    """
    check_run_name(name, section)
    where_run = f"align.{section}.{name}"
    for key in ("method", "data"):
        if key not in run:
            raise AlignParamsError.of([(where_run, f" needs `{key}`")])
    data = check_data_path(run["data"], f"{where_run}.data")
    if run["method"] not in registry.REGISTRY:
        raise AlignParamsError.of(
            [(f"{where_run}.method", f" must be one of {list(registry.REGISTRY)}, got {run['method']!r}")]
        )
    method = registry.get(run["method"])
    knobs = {k: v for k, v in run.items() if k not in RUN_KEYS}
    every = set().union(*(m.reads for m in registry.REGISTRY.values()))
    unread = sorted(k for k in knobs if k not in method.reads)
    if unread:  # a knob its method never reads would be silently ignored
        raise AlignParamsError.of(
            [
                (
                    f"{where_run}.{k}",
                    f" is not read by method {method.name!r} (its knobs beyond align.base: {list(method.knobs)})"
                    if k in every
                    else " is not a known parameter",
                )
                for k in unread
            ]
        )
    values, where = method_knobs(method.name, align, bdhs)
    where.update({k: f"{where_run}.{k}" for k in knobs})
    try:
        params = method.config.model_validate({**values, **knobs})
    except ValidationError as e:
        raise AlignParamsError.of(_issues_where(e, method.name, where, where_run)) from None
    seeds = check_seeds(run["seeds"], f"{where_run}.seeds") if "seeds" in run else None
    return params, data, seeds


def _columns_and_first(data) -> tuple[list[str], list[dict]]:
    if hasattr(data, "column_names") and hasattr(data, "num_rows"):  # datasets.Dataset
        return list(data.column_names), []
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # pandas
        return [str(c) for c in data.columns], data.to_dict(orient="records")
    rows = list(data)
    cols: list[str] = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    return cols, rows


def check_columns(data, method: str) -> int:
    """Raise :class:`AlignDataError` unless ``data`` has every column ``method`` needs; return the row count.

    ``data``: preference rows (list of dicts, pandas) in the :mod:`study.prefs.schema` format, or a ready TRL
    vision preference ``datasets.Dataset`` (offline methods). Every row must have every required column
    with a non-empty string (``rejected_2`` included for Avg-DPO).
    """
    if method not in registry.REGISTRY:
        raise AlignParamsError(
            f"invalid alignment params: align.method must be one of {list(registry.REGISTRY)}, got {method!r}"
        )
    spec = registry.get(method)
    if data is None:
        raise AlignDataError(f"method {method!r} needs a preference/prompt dataset, got None")
    cols, rows = _columns_and_first(data)
    is_trl = hasattr(data, "column_names") and "images" in cols
    if is_trl and spec.trl_columns is None:
        raise AlignDataError(
            f"method {method!r} needs preference rows (prompt/scene_id strings, the study.prefs "
            "schema), not a TRL vision dataset"
        )
    need = spec.trl_columns if is_trl else spec.columns
    n = data.num_rows if hasattr(data, "num_rows") else len(rows)
    if n == 0:
        raise AlignDataError(f"the dataset for method {method!r} is empty")
    for c in need:
        if c not in cols:
            raise AlignDataError(
                f"the dataset has no column {c!r}, which method {method!r} needs "
                f"(required: {list(need)}; found: {cols})"
            )
    for i, r in enumerate(rows):
        for c in need:
            v = r.get(c)
            if not isinstance(v, str) or not v.strip():
                raise AlignDataError(f"row {i}: column {c!r} is missing or empty (method {method!r} needs it)")
    return n
