"""The search-space interface: what every space must do.

A space owns everything that knows an architecture's structure. Strategies only see archs
(plain JSON-able dicts) and metrics; they never touch modules. ``canonical`` maps every arch to
the form that identifies the network it builds, so duplicates are detected by ``arch_hash``.

Everything beyond sampling, checking, identifying, building and describing archs (mutation,
encoding, morphisms, block decomposition, supernets) is a capability a space may offer: see
:mod:`hwnas.space.capabilities`.
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
    """A family of architectures. Implementations must be deterministic given the rng.

    Only what every consumer needs is here; a strategy that needs more asks for a capability
    (:class:`~hwnas.space.capabilities.Evolvable`, ``Encodable``, ``Morphable``...).
    """

    name: str = "space"
    #: its nets are made for the fast GPU training recipe (``recipe: auto`` picks it only
    #: then: on the FBNet space's MBConv nets it reached 26-52 % where SGDR reaches ~85 %)
    fast_recipe: bool = False

    @abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random arch (random search, calibration sets and predictor training
        data all draw from every space)."""

    @abstractmethod
    def canonical(self, arch: Arch) -> Arch:
        """The normal form: choices that don't change the built network are dropped."""

    @abstractmethod
    def size(self) -> int:
        """Number of distinct networks (canonical archs) in the space; 0 if unbounded."""

    @abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise :class:`InvalidArch` if ``arch`` is not a member of this space."""

    @abstractmethod
    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The PyTorch module for ``arch`` on inputs of shape (C, H, W)."""

    @abstractmethod
    def describe(self, arch: Arch) -> str:
        """One line a person can read."""

    def degenerate(self, arch: Arch) -> bool:
        """Whether ``arch``'s net cannot learn at all because its output does not depend on
        its input (e.g. a cell whose every path crosses a zero op): a strategy need not spend
        a trial on it. False unless a space can tell."""
        return False

    def key(self, arch: Arch) -> str:
        """The string a table of results is indexed by (canonical JSON unless overridden)."""
        return json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))

    def from_key(self, key: str) -> Arch | None:
        """The arch a table key names, where this kind's keys name one (NB201's strings,
        FBNet's indices), not checked against this space's settings (``validate`` is: a
        table holds archs a narrower space leaves out); InvalidArch if ``key`` is no key of
        this kind. None where keys are canonical JSON, which drops what a net does not build
        (a chain stage's unused ops) and so names no single arch."""
        try:
            value = json.loads(key)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise InvalidArch(f"a {self.name} arch must be JSON: {key[:60]!r}")
        return None

    def arch_hash(self, arch: Arch) -> str:
        """Stable identity of the network an arch builds."""
        return arch_hash(self.canonical(arch))


def arch_hash(arch: Arch) -> str:
    blob = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
