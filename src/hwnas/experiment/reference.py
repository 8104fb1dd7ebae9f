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

from hwnas.experiment import config as C

_KINDS: dict[str, list[type[BaseModel]]] = {
    "data": [C.DataConfig],
    "space": [
        C.ChainSpaceConfig,
        C.CellSpaceConfig,
        C.GraphSpaceConfig,
        C.FbnetSpaceConfig,
        C.UserSpaceConfig,
    ],
    "strategy": [
        C.RandomStrategyConfig,
        C.EvolutionStrategyConfig,
        C.OptunaStrategyConfig,
        C.NashStrategyConfig,
    ],
    "estimator": [C.TrainEstimatorConfig, C.TabularEstimatorConfig],
    "target": [
        C.CpuOrtTarget,
        C.CpuTorchTarget,
        C.CudaTorchTarget,
        C.AnalyticTarget,
        C.TabularTarget,
        C.DeviceTarget,
        C.LutTarget,
        C.CommandTarget,
        C.RemoteTarget,
        C.PredictorTarget,
    ],
    "budget": [C.BudgetConfig],
    "executor": [C.ExecutorConfig],
}


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


def render_reference() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the config schema by `hwnas config --reference`; do not edit by hand.",
        "Unknown keys are errors. A section with several kinds picks one with `name`; "
        "`--set section=kind` is short for `--set section.name=kind`. Relative paths "
        "(`data.path`, tables, caches) are taken from the directory `hwnas` runs in, as on "
        "the command line, not from the config file's directory.",
        "",
        "## Top level",
        "",
        *_table(C.ExperimentConfig, ""),
        "",
        "Objectives: a list of `{metric, direction}`, or a mapping `metric: max|min`. "
        f"Metrics: {', '.join(f'`{m}`' for m in C.METRIC_DIRECTIONS)}.",
        "Constraints: strings such as `latency_ms <= 2.0` or `params <= 500000` "
        "(operators `<=`, `<`, `>=`, `>`). A candidate breaking a constraint that is known before "
        "training is stored as `pruned` and never trained.",
        "",
    ]
    for section, models in _KINDS.items():
        out += [f"## `{section}`", ""]
        for model in models:
            doc = (model.__doc__ or "").strip().splitlines()[0]
            kind = model.model_fields.get("name")
            label = "module.path:ClassName"
            if kind is not None and kind.default is not PydanticUndefined:
                label = kind.default
            title = (
                f"### `{section}.name: {label}`" if kind is not None and len(models) > 1 else None
            )
            if title:
                out += [title, ""]
            out += [doc, "", *_table(model, f"{section}."), ""]
    out += ["## `space.stages[]`", "", *_table(C.StageConfig, "space.stages[]."), ""]
    out += ["## Table columns (`{column, scale}`)", "", *_table(C.TableColumn, ""), ""]
    return "\n".join(out)
