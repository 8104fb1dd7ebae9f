"""The configuration reference (docs/configuration.md), generated from the config schema.

A test regenerates it and compares with the committed file, so the docs cannot drift from the
code. Regenerate with ``hwnas config --reference > docs/configuration.md``.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hwnas.core.metrics import all_metrics
from hwnas.core.registry import FAMILIES, Entry
from hwnas.experiment.config import KIND_SECTIONS, BudgetConfig, ExperimentConfig
from hwnas.hardware.config import TableColumn
from hwnas.space.config import StageConfig


def _kinds(section: str, plugins: bool) -> list[tuple[str, type[BaseModel]]]:
    """(label, model) per config model of a family, in registration order; a model shared by
    several names (the datasets) is listed once with all of them."""
    registry = FAMILIES[section]
    entries: list[Entry] = (
        registry.entries() if plugins else [registry.entry(n) for n in registry.builtin_names()]
    )
    grouped: dict[type[BaseModel], list[str]] = {}
    for e in entries:
        label = "module.path:ClassName" if e.pattern is not None else e.name
        grouped.setdefault(e.config, []).append(label)
    return [(" \\| ".join(names), model) for model, names in grouped.items()]


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        k, v = get_args(tp)
        return f"map {_type_name(k)} → {_type_name(v)}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp.__name__
    return getattr(tp, "__name__", str(tp))


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see its section"
    return f"`{json.dumps(value, default=_jsonable)}`"


def _jsonable(obj: Any) -> Any:
    return obj.model_dump(mode="json") if isinstance(obj, BaseModel) else str(obj)


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("\n", " ").replace("|", "\\|")
        rows.append(
            f"| `{prefix}{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |"
        )
    return rows


def _doc(model: type[BaseModel]) -> str:
    """The docstring's first paragraph, on one line."""
    return " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())


def _plain_sections(plugins: bool) -> list[tuple[str, type[BaseModel]]]:
    """The sections of one model (``final``, ``supernet``, a kind's ``estimator.fast``...):
    every field whose default is a model of its own, other than the kind sections, the
    budget and table columns (which have sections above and below)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            tp = field.annotation
            if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
                continue
            if tp in (BudgetConfig, TableColumn) or (not prefix and name in KIND_SECTIONS):
                continue
            found.setdefault(f"{prefix}{name}", tp)

    visit(ExperimentConfig, "")
    for section in KIND_SECTIONS:
        for _, model in _kinds(section, plugins):
            visit(model, f"{section}.")
    return list(found.items())


def render_reference(plugins: bool = True) -> str:
    """The reference of every kind; ``plugins=False``: the built-ins alone (the shipped docs)."""
    if plugins:  # load them first: their metrics belong in the table too
        for family in FAMILIES.values():
            family.names()
    out = [
        "# Configuration reference",
        "",
        "Generated from the config schema by `hwnas config --reference`; do not edit by hand.",
        "Unknown keys are errors. A section with several kinds picks one with `name`; "
        "`--set section=kind` is short for `--set section.name=kind`. Relative paths "
        "(`data.path`, tables, caches) are taken from the directory `hwnas` runs in, as on "
        "the command line, not from the config file's directory; `show`, `report`, "
        "`export` and `train` run elsewhere read them from the directory the search ran in.",
        "",
        "## Top level",
        "",
        *_table(ExperimentConfig, ""),
        "",
        "Objectives: a list of `{metric, direction}`, or a mapping `metric: max|min`. "
        "Metrics (a metric from a `costs` entry with a `label` is `metric@label`):",
        "",
        "| metric | unit | direction | known | meaning |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| `{m.name}` | {m.unit} | {m.direction} | "
            f"{'after training' if m.kind == 'task' else 'before training'} | {m.description} |"
            for m in all_metrics()
        ),
        "",
        "Constraints: strings such as `latency_ms <= 2.0` or `params <= 500000` "
        "(operators `<=`, `<`, `>=`, `>`). A bound on a count or a size may carry a multiplier: "
        "`params <= 0.5M`, `macs < 300M` (`k` or `K`, `M`, `G`: powers of 1000), `peak_sram_bytes <= "
        "256KiB` (`KiB`, `MiB`, `GiB`: powers of 1024, bytes only); `kB`, `KB`, `MB` are "
        "refused, as they read two ways. A candidate breaking a constraint that is known before "
        "training is stored as `pruned` and never trained.",
        "",
    ]
    for section in (*KIND_SECTIONS, "budget"):
        kinds = [("", BudgetConfig)] if section == "budget" else _kinds(section, plugins)
        out += [f"## `{section}`", ""]
        for label, model in kinds:
            doc = _doc(model)
            if len(kinds) > 1:
                out += [f"### `{section}.name: {label}`", ""]
            out += [doc, "", *_table(model, f"{section}."), ""]
    for prefix, model in _plain_sections(plugins):
        doc = _doc(model)
        out += [f"## `{prefix}`", "", doc, "", *_table(model, f"{prefix}."), ""]
    out += ["## `space.stages[]`", "", *_table(StageConfig, "space.stages[]."), ""]
    out += ["## Table columns (`{column, scale}`)", "", *_table(TableColumn, ""), ""]
    return "\n".join(out)
