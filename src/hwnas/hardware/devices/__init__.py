"""Device spec files: what a datasheet says about a chip, with the source of every figure.

A spec is a YAML file (the shipped ones sit beside this module; see docs/devices.md for the
format). Each number is a :class:`Figure` -- a value, the basis it rests on (``datasheet``,
``derived`` from datasheet figures, ``estimate`` from the literature, or plain ``assumption``)
and a ``source`` that cites a document of the file's ``documents`` list as ``[id]``. The schema
refuses a figure without a citation, so an uncited number cannot slip into a cost model.

This module imports no torch: the config validator loads specs to add the capacity constraints.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hwnas.core.errors import UserError, yaml_problem
from hwnas.core.yamlio import load_user_yaml

Precision = Literal["int8", "fp16", "fp32"]
#: bytes of one element stored at each precision
PRECISION_BYTES: dict[str, int] = {"int8": 1, "fp16": 2, "fp32": 4}
#: the op classes that carry an efficiency factor (see hwnas.hardware.device for the mapping)
OP_KINDS = ("conv", "depthwise", "pointwise", "linear", "pool", "elementwise")

_CITE = re.compile(r"\[([A-Za-z0-9_.-]+)\]")


class DeviceSpecError(UserError):
    """A spec that is missing, unreadable or invalid; the message names the offending field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Document(_Strict):
    """A public document figures are taken from."""

    title: str = Field(min_length=1)
    number: str | None = Field(None, description="Document number, e.g. DS12110.")
    revision: str | None = None
    url: str = Field(pattern=r"^https?://")


class Figure(_Strict):
    """One number and where it comes from."""

    value: float = Field(ge=0)
    basis: Literal["datasheet", "derived", "estimate", "assumption"]
    source: str = Field(min_length=1)


class MemoryTier(_Strict):
    """Where a class of tensors lives: its size, how fast it streams, what a byte costs."""

    where: str = Field(min_length=1, description="Which physical memory, in words.")
    capacity_bytes: Figure
    bandwidth_bytes_per_s: Figure
    pj_per_byte: Figure
    reserved_bytes: Figure = Field(
        description="Held back for the runtime (code, stack, scratch) and added to the metric."
    )


class Efficiency(_Strict):
    """Achieved share of peak MAC/s per op class (0-1]; assumptions unless measured."""

    conv: Figure
    depthwise: Figure
    pointwise: Figure
    linear: Figure
    pool: Figure
    elementwise: Figure

    @model_validator(mode="after")
    def _fraction(self) -> Efficiency:
        for kind in OP_KINDS:
            if not 0 < getattr(self, kind).value <= 1:
                raise ValueError(f"{kind}.value must be in (0, 1]")
        return self


class Overheads(_Strict):
    """Fixed costs the roofline does not see (op dispatch, driver calls)."""

    per_layer_s: Figure
    per_inference_s: Figure


class DeviceSpec(_Strict):
    """A datasheet device model; see docs/devices.md."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    documents: dict[str, Document]
    default_precision: Precision
    peak_macs_per_s: dict[Precision, Figure]
    pj_per_mac: dict[Precision, Figure]
    efficiency: Efficiency
    activation_memory: MemoryTier
    weight_memory: MemoryTier
    overheads: Overheads

    @model_validator(mode="after")
    def _consistent(self) -> DeviceSpec:
        if not self.peak_macs_per_s:
            raise ValueError("peak_macs_per_s: list at least one precision")
        if self.default_precision not in self.peak_macs_per_s:
            raise ValueError(
                f"default_precision: {self.default_precision} has no peak_macs_per_s entry"
            )
        missing = sorted(set(self.peak_macs_per_s) - set(self.pj_per_mac))
        if missing:
            raise ValueError(f"pj_per_mac: missing {', '.join(missing)}")
        for where, fig in self.figures():
            zero_ok = ".reserved_bytes." in where or where.startswith("overheads.")
            if fig.value <= 0 and not zero_ok:
                raise ValueError(f"{where}: must be > 0")
            field = where.removesuffix(".value")
            cited = _CITE.findall(fig.source)
            unknown = [c for c in cited if c not in self.documents]
            if unknown:
                raise ValueError(f"{field}.source: unknown document [{unknown[0]}]")
            if fig.basis != "assumption" and not cited:
                raise ValueError(
                    f"{field}.source: a {fig.basis} figure must cite a document as [id]"
                )
        return self

    def figures(self) -> list[tuple[str, Figure]]:
        """Every figure with its dotted location (``activation_memory.capacity_bytes.value``)."""
        out: list[tuple[str, Figure]] = []

        def walk(obj: Any, path: str) -> None:
            if isinstance(obj, Figure):
                out.append((f"{path}.value", obj))
            elif isinstance(obj, BaseModel):
                for k in type(obj).model_fields:
                    walk(getattr(obj, k), f"{path}.{k}" if path else k)
            elif isinstance(obj, dict):
                for k, v in obj.items():
                    walk(v, f"{path}.{k}")

        walk(self, "")
        return out

    def peak(self, precision: str) -> float:
        return self.peak_macs_per_s[precision].value  # type: ignore[index]

    @property
    def precisions(self) -> list[str]:
        return list(self.peak_macs_per_s)

    def check_precision(self, precision: str) -> None:
        if precision not in self.peak_macs_per_s:
            raise DeviceSpecError(
                f"device {self.name}: no peak_macs_per_s for precision {precision}; "
                f"it offers {', '.join(self.precisions)}"
            )

    def capacity(self) -> dict[str, float]:
        """Hard limits as metric -> bytes: what the config turns into constraints."""
        return {
            "peak_sram_bytes": self.activation_memory.capacity_bytes.value,
            "flash_bytes": self.weight_memory.capacity_bytes.value,
        }


def shipped() -> dict[str, Path]:
    """Spec files that come with hwnas, by name (file stem)."""
    root = resources.files(__name__)
    return {
        Path(str(p)).stem: Path(str(p))
        for p in root.iterdir()
        if str(p).endswith((".yaml", ".yml"))
    }


def resolve(spec: str) -> Path:
    """A shipped name (``cortex-m7``) or a path to a YAML file."""
    ships = shipped()
    if spec in ships:
        return ships[spec]
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    raise DeviceSpecError(
        f"device spec {spec!r}: neither a shipped device ({', '.join(sorted(ships))}) "
        "nor an existing file"
    )


def _format(err: ValidationError, label: str) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    got = ""
    if e["type"] not in ("extra_forbidden", "missing") and not isinstance(e.get("input"), dict):
        got = f" (got {e['input']!r})"
    return f"device spec {label}: {loc + ': ' if loc else ''}{msg}{got}"


@functools.lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int) -> DeviceSpec:
    try:
        raw = load_user_yaml(path.read_text())
    except OSError as exc:
        raise DeviceSpecError(f"device spec {path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise DeviceSpecError(f"device spec {path}: not valid YAML ({yaml_problem(exc)})") from None
    except (RecursionError, ValueError):  # undecodable bytes, nesting, huge numbers
        raise DeviceSpecError(f"device spec {path}: not a readable YAML file") from None
    if not isinstance(raw, dict):
        raise DeviceSpecError(f"device spec {path}: top level must be a mapping")
    try:
        return DeviceSpec.model_validate(raw)
    except ValidationError as exc:
        raise DeviceSpecError(_format(exc, path.name)) from None


def load_spec(spec: str) -> DeviceSpec:
    """Load and validate a spec by shipped name or path (cached until the file changes)."""
    path = resolve(spec)
    return _load(path, path.stat().st_mtime_ns)


__all__ = [
    "OP_KINDS",
    "PRECISION_BYTES",
    "DeviceSpec",
    "DeviceSpecError",
    "Figure",
    "load_spec",
    "resolve",
    "shipped",
]
