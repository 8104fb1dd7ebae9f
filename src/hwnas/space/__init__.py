"""Search spaces: what architectures can be found."""

from __future__ import annotations

from typing import Any

from hwnas.core.registry import spaces
from hwnas.space.base import Arch, InvalidArch, Space, arch_hash
from hwnas.space.capabilities import (
    Block,
    BlockDecomposable,
    Encodable,
    Evolvable,
    Morphable,
    Neighbourly,
    PerChoiceCosts,
    Supernet,
    Vectorizable,
    supports,
    unsupported,
)

__all__ = [
    "Arch",
    "Block",
    "BlockDecomposable",
    "Encodable",
    "Evolvable",
    "InvalidArch",
    "Morphable",
    "Neighbourly",
    "Space",
    "PerChoiceCosts",
    "Supernet",
    "Vectorizable",
    "arch_hash",
    "make_space",
    "supports",
    "unsupported",
]


def make_space(cfg: Any) -> Space:
    """The space a validated ``space`` section names, built from that section alone."""
    space: Space = spaces.create(cfg)
    return space
