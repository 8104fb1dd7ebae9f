"""The search-space interface.

A space owns everything that knows an architecture's structure. Strategies only see archs
(plain JSON-able dicts) and metrics; they never touch modules. ``canonical`` maps every arch to
the form that identifies the network it builds, so duplicates are detected by ``arch_hash``.
"""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from hwnas.core.errors import UserError

if TYPE_CHECKING:
    from torch import nn

Arch = dict[str, Any]


class InvalidArch(UserError):
    """An arch that does not belong to the space (wrong keys, choices out of range)."""


class Space(ABC):
    """A family of architectures. Implementations must be deterministic given the rng."""

    name: str = "space"

    @abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random arch."""

    @abstractmethod
    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A child that differs from ``arch`` in the built network (never a no-op)."""

    @abstractmethod
    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """A child mixing two parents' choices."""

    @abstractmethod
    def neighbours(self, arch: Arch) -> list[Arch]:
        """All archs one elementary change away (canonical, distinct, excluding ``arch``)."""

    @abstractmethod
    def encode(self, arch: Arch) -> list[float]:
        """Fixed-length numeric vector, for surrogate models."""

    @abstractmethod
    def canonical(self, arch: Arch) -> Arch:
        """The normal form: choices that don't change the built network are dropped."""

    @abstractmethod
    def size(self) -> int:
        """Number of distinct networks (canonical archs) in the space."""

    @abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise :class:`InvalidArch` if ``arch`` is not a member of this space."""

    @abstractmethod
    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The PyTorch module for ``arch`` on inputs of shape (C, H, W)."""

    @abstractmethod
    def describe(self, arch: Arch) -> str:
        """One line a person can read."""

    def parameters(self) -> dict[str, list[Any]]:
        """Every gene and its allowed values, for generic samplers (Optuna)."""
        raise NotImplementedError(f"the {self.name} space exposes no flat parameters")

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        """The (valid) arch for one value per gene of :meth:`parameters`."""
        raise NotImplementedError(f"the {self.name} space exposes no flat parameters")

    def key(self, arch: Arch) -> str:
        """The string a table of results is indexed by (canonical JSON unless overridden)."""
        return json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))

    def arch_hash(self, arch: Arch) -> str:
        """Stable identity of the network an arch builds."""
        return arch_hash(self.canonical(arch))


def arch_hash(arch: Arch) -> str:
    blob = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
