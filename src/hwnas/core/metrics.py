"""The metric vocabulary: every metric has a unit, a direction and a description.

Objectives and constraints accept any registered metric and refuse others, so a typo is a
config error instead of a silently empty objective. Estimators, cost models and plugins
register what they produce (e.g. a zero-cost proxy score to maximise) with
:func:`register_metric`. A metric measured on a second target carries it after ``@``
(``latency_ms@cuda-torch``): it has the unit and direction of its base name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    unit: str
    description: str
    #: "task": known once the estimator ran; "cost": known before training
    kind: Literal["task", "cost"] = "cost"


_METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    direction: Direction,
    unit: str,
    description: str,
    kind: Literal["task", "cost"] = "cost",
) -> Metric:
    """Declare a metric; declaring the same one again is a no-op, a conflicting one an error."""
    if "@" in name or not name.isidentifier():
        raise ValueError(f"metric name {name!r}: letters, digits and _ only")
    m = Metric(name, direction, unit, description, kind)
    old = _METRICS.get(name)
    if old is not None and old != m:
        raise ValueError(f"metric {name!r} is already registered differently ({old})")
    _METRICS[name] = m
    return m


def base_name(name: str) -> str:
    """``latency_ms@cuda-torch`` -> ``latency_ms``."""
    return name.split("@", 1)[0]


def lookup(name: str) -> Metric | None:
    return _METRICS.get(base_name(name))


def check_metric(name: str) -> str:
    """``name`` if it is registered (with or without a ``@target`` label), else ValueError."""
    if lookup(name) is None or name.endswith("@"):
        names = [m for m in known() if not m.startswith("zc_")]
        if len(names) < len(known()):
            names.append("zc_<proxy>")  # the zero-cost proxies, one line, not six names
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(names)}")
    return name


def direction(name: str, default: Direction = "min") -> Direction:
    m = lookup(name)
    return default if m is None else m.direction


def unit(name: str) -> str | None:
    """The unit of a metric (``count``, ``bytes``, ``ms``...), None for an unknown one."""
    m = lookup(name)
    return None if m is None else m.unit


def known() -> list[str]:
    return list(_METRICS)


def all_metrics() -> list[Metric]:
    return list(_METRICS.values())


# test accuracy is deliberately not a metric a search may use: the test split never guides it
for _args in [
    (
        "accuracy",
        "max",
        "0-1",
        "validation accuracy (the search's; test accuracy is separate)",
        "task",
    ),
    ("train_seconds", "min", "s", "wall time of the candidate's training", "task"),
    ("latency_ms", "min", "ms", "inference latency on the target (batch of the target)"),
    ("params", "min", "count", "trainable parameters"),
    ("macs", "min", "count", "multiply-accumulates of one forward pass, batch 1"),
    (
        "peak_memory_bytes",
        "min",
        "bytes",
        "peak activation memory, batch 1, fp32, of the eager PyTorch graph (input included; "
        "a BatchNorm's output apart from its conv's): an upper bound; an MCU's int8 SRAM "
        "with fused layers is a `device` model's `peak_sram_bytes`",
    ),
    ("model_bytes", "min", "bytes", "weights at fp32 (4 bytes a parameter)"),
    (
        "model_bytes_int8",
        "min",
        "bytes",
        "weights at int8 (1 byte a parameter, BatchNorm's included, biases alike); a "
        "`device` model's `flash_bytes` counts a deployed file",
    ),
    ("energy_mj", "min", "mJ", "energy of one inference"),
    ("peak_sram_bytes", "min", "bytes", "peak SRAM of one inference on a device model"),
    ("flash_bytes", "min", "bytes", "flash a device model needs for weights and code"),
]:
    register_metric(*_args)  # type: ignore[arg-type]

#: the zero-cost proxies ``estimator: zero_cost`` computes, each a metric ``zc_<proxy>``
ProxyName = Literal["synflow", "grad_norm", "snip", "naswot", "jacob_cov", "zico", "meco"]
ZERO_COST_PROXIES: tuple[str, ...] = get_args(ProxyName)
for _proxy in ZERO_COST_PROXIES:
    register_metric(
        f"zc_{_proxy}", "max", "score", f"zero-cost proxy {_proxy} of the untrained net", "task"
    )


def fmt_ms(v: float) -> str:
    """Milliseconds for a console table: three decimals from 1 ms up, three significant
    digits below (0.0625 and 0.0631 both read 0.063 with three decimals, so a net that
    dominates another by 1 % on the small nets of an MCU did not show it)."""
    v = float(v)
    return f"{v:.3f}" if abs(v) >= 1 or v == 0 else f"{v:#.3g}"


def fmt_number(v: float) -> str:
    """A metric's value for a console line: a whole count of a thousand or more (MACs, bytes,
    params) with separators, ``1,234,567``; anything else in four significant digits. One rule
    for every command, so a figure reads the same in ``show``, ``profile`` and a warning."""
    v = float(v)
    return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1000 else f"{v:.4g}"
