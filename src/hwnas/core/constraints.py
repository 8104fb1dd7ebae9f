"""Objectives and the constraint language (``latency_ms <= 2.0``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwnas.core.config import Section
from hwnas.core.metrics import check_metric, direction, fmt_number, unit

_CONSTRAINT_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:@[A-Za-z0-9_.-]+)?)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)"
    r"\s*([A-Za-z]*)\s*$"
)
#: multipliers a bound on a count or a size may carry: ``params <= 1.5M``, ``flash_bytes <=
#: 512KiB``; the binary ones for bytes alone
_SI = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_BINARY = {"KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3}
#: units whose bounds take those multipliers
SCALED_UNITS = ("count", "bytes")


def _scaled(metric: str, number: str, suffix: str) -> float:
    """The bound's value with its multiplier applied; a multiplier on a metric it does not
    fit, or a byte size that reads two ways (``kB`` is 1000 or 1024 by whom you ask: MCU
    data sheets mean 1024), is refused naming both readings."""
    value = float(number)
    metric_unit = unit(metric)
    # no multiplier, or the metric's own unit written out (``latency_ms <= 2ms``, ``256B``)
    if not suffix or suffix == metric_unit or (suffix == "B" and metric_unit == "bytes"):
        return value
    if metric_unit not in SCALED_UNITS:
        given = f"{metric_unit}: write the bound in {metric_unit}" if metric_unit else "no unit"
        raise ValueError(
            f"{metric} is in {given} ({suffix!r} is no multiplier of it; k, M, G and KiB, MiB, "
            "GiB scale counts and bytes)"
        )
    if suffix in _SI:
        return value * _SI[suffix]
    if suffix in _BINARY and metric_unit == "bytes":
        return value * _BINARY[suffix]
    if suffix.upper() in ("KB", "MB", "GB") and metric_unit == "bytes":
        si, binary = suffix[0].upper().replace("K", "k"), suffix[0].upper() + "iB"
        raise ValueError(
            f"{number}{suffix} reads two ways: write {number}{binary} "
            f"({fmt_number(value * _BINARY[binary])} bytes) or {number}{si} "
            f"({fmt_number(value * _SI[si])})"
        )
    allowed = [*_SI] + ([*_BINARY] if metric_unit == "bytes" else [])
    raise ValueError(f"unknown multiplier {suffix!r}; one of {', '.join(allowed)}")


class Objective(Section):
    """One objective: a metric and whether to maximise or minimise it."""

    metric: str = Field(description="Metric name, e.g. `accuracy`, `latency_ms`, `macs`.")
    direction: Literal["max", "min"] = Field(description="`max` or `min`.")

    _known = field_validator("metric")(lambda v: check_metric(v))

    @model_validator(mode="after")
    def _sense(self) -> Objective:
        """A metric's own sense: `latency_ms: max` searched for the slowest nets, silently."""
        sense = direction(self.metric)
        if self.direction != sense:
            raise ValueError(
                f"{self.metric} is {'maximised' if sense == 'max' else 'minimised'}: "
                f"`{self.direction}` would search for the worst nets"
            )
        return self


class Constraint(Section):
    """A hard constraint such as ``latency_ms <= 2.0``; violators are pruned."""

    metric: str
    op: Literal["<=", ">=", "<", ">"]
    value: float

    _known = field_validator("metric")(lambda v: check_metric(v))

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT_RE.match(text)
        if not m:
            raise ValueError(f"cannot parse constraint {text!r}; expected e.g. 'latency_ms <= 2.0'")
        check_metric(m.group(1))  # an unknown name first, not a unit it does not have
        try:
            float(m.group(3))
        except ValueError:
            raise ValueError(
                f"cannot parse constraint {text!r}: {m.group(3)!r} is no number"
            ) from None
        try:
            value = _scaled(m.group(1), m.group(3), m.group(4))
        except ValueError as exc:
            raise ValueError(f"constraint {text.strip()!r}: {exc}") from None
        return cls(metric=m.group(1), op=m.group(2), value=value)  # type: ignore[arg-type]

    def holds(self, x: float) -> bool:
        return {
            "<=": x <= self.value,
            ">=": x >= self.value,
            "<": x < self.value,
            ">": x > self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:.12g}"


def violated(constraints: list[Constraint], metrics: Mapping[str, Any]) -> list[str]:
    """Constraints that the known metrics break, worded for the trial's error field."""
    return [
        f"{c} (was {fmt_number(metrics[c.metric])})"
        for c in constraints
        if c.metric in metrics and not c.holds(metrics[c.metric])
    ]
