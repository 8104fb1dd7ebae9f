"""User-defined spaces: declare the choices of your own PyTorch model, every strategy searches it.

Subclass :class:`UserSpace`, list the choices in ``choices`` and build the network in
``build_model``; point the config at the class with ``space.name: "module.path:ClassName"``
(``space.options`` are passed to the constructor). An arch is then a plain dict from choice
name to value, so sampling, mutation, crossover, neighbours, encoding and the space size come
for free. See docs/user-spaces.md for a worked example.
"""

from __future__ import annotations

import importlib
import math
import operator
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.core.errors import UserError
from hwnas.space.base import Arch, InvalidArch, Space

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Choice:
    """One of a few JSON-able values (an op name, a kernel size, ``True``/``False`` for a skip)."""

    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        if len(options) < 1:
            raise ValueError("Choice needs at least one option")
        object.__setattr__(self, "options", tuple(options))

    def values(self) -> list[Any]:
        return list(self.options)

    def near(self, value: Any) -> list[Any]:
        return [o for o in self.options if o != value]

    def encode(self, value: Any) -> float:
        n = len(self.options)
        return self.options.index(value) / (n - 1) if n > 1 else 0.0


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` on a grid of ``step`` (a width, a depth)."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        # often built from ``space.options``: a string or an empty range is the user's
        # typo, said at start, not a failure deep inside sampling
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            try:  # any integer type (a numpy int too); never a bool, float or string
                if isinstance(v, bool):
                    raise TypeError
                object.__setattr__(self, name, operator.index(v))
            except TypeError:
                raise TypeError(f"Integer {name} must be an integer (got {v!r})") from None
        if self.step < 1:
            raise ValueError(f"Integer step must be at least 1 (got {self.step})")
        if self.low > self.high:
            raise ValueError(f"Integer({self.low}, {self.high}) holds no value: low > high")

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def near(self, value: int) -> list[int]:
        """Neighbours and mutations move one step: widths change gradually."""
        return [v for v in (value - self.step, value + self.step) if self.low <= v <= self.high]

    def encode(self, value: int) -> float:
        return (value - self.low) / (self.high - self.low) if self.high > self.low else 0.0


def optional(default: bool = True) -> Choice:
    """An on/off choice, e.g. whether a skip connection exists."""
    return Choice(default, not default)


class UserSpace(Space):
    """Base class of user spaces: set ``choices`` and implement ``build_model``."""

    name = "user"
    choices: ClassVar[dict[str, Choice | Integer]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = options
        if not self.choices:
            raise InvalidArch(f"{type(self).__name__}.choices is empty")

    def build_model(
        self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int
    ) -> nn.Module:
        raise NotImplementedError

    def parameters(self) -> dict[str, list[Any]]:
        return {k: c.values() for k, c in self.choices.items()}

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        return {k: params[k] for k in self.choices}

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        return {k: arch[k] for k in self.choices}

    def sample(self, rng: random.Random) -> Arch:
        return {k: rng.choice(c.values()) for k, c in self.choices.items()}

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """One choice moved; re-drawn while the child builds the same network (a subclass's
        ``canonical`` may drop choices that build nothing), so it is never a no-op."""
        key = self.arch_hash(arch)
        keys = [k for k, c in self.choices.items() if c.near(arch[k])]
        for _ in range(64 if keys else 0):
            k = rng.choice(keys)
            child = {**arch, k: rng.choice(self.choices[k].near(arch[k]))}
            if self.arch_hash(child) != key:
                return child
        neigh = self.neighbours(arch)
        if not neigh:
            raise InvalidArch(
                f"{type(self).__name__}: every arch builds one network: nothing to mutate to"
            )
        return rng.choice(neigh)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        return {k: rng.choice((a[k], b[k])) for k in self.choices}

    def neighbours(self, arch: Arch) -> list[Arch]:
        seen, out = {self.arch_hash(arch)}, []
        for k, c in self.choices.items():
            for v in c.near(arch[k]):
                child = {**arch, k: v}
                h = self.arch_hash(child)
                if h not in seen:  # distinct networks only, as the canonical form says
                    seen.add(h)
                    out.append(child)
        return out

    def encode(self, arch: Arch) -> list[float]:
        return [c.encode(arch[k]) for k, c in self.choices.items()]

    def canonical(self, arch: Arch) -> Arch:
        self.validate(arch)
        return {k: arch[k] for k in self.choices}

    def size(self) -> int:
        return math.prod(len(c.values()) for c in self.choices.values())

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or set(arch) != set(self.choices):
            raise InvalidArch(f"arch must set exactly: {', '.join(self.choices)}")
        for k, c in self.choices.items():
            if arch[k] not in c.values():
                raise InvalidArch(f"{k}={arch[k]!r} is not one of {c.values()}")

    def describe(self, arch: Arch) -> str:
        return " ".join(f"{k}={arch[k]}" for k in self.choices)

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        self.validate(arch)
        return self.build_model(arch, input_shape, num_classes)


def load_user_space(path: str, options: dict[str, Any]) -> Space:
    """Import ``module.path:ClassName`` and instantiate it with ``options``."""
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"space.name: cannot import {path!r} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Space)):
        raise UserError(f"space.name: {path!r} is not a subclass of hwnas Space")
    try:
        return cls(**options)
    except (TypeError, ValueError, InvalidArch) as exc:
        raise UserError(f"space.options: {exc}") from None


def from_config(cfg: Any) -> Space:
    """The space a ``space: {name: module.path:ClassName, options: {...}}`` section names."""
    return load_user_space(cfg.name, cfg.options)
