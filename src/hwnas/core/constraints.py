"""Objectives and the constraint language (``latency_ms <= 2.0``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwnas.core.config import Section
from hwnas.core.metrics import check_metric, direction, fmt_number

_CONSTRAINT_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:@[A-Za-z0-9_.-]+)?)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*$"
)


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
        return cls(metric=m.group(1), op=m.group(2), value=float(m.group(3)))  # type: ignore[arg-type]

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
