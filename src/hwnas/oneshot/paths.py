"""The paths of a supernet as a space of their own, for a strategy searching on its weights.

A supernet may cover only a sub-space of its space (the chain space's fixed widths), so a
strategy that searches it with inherited weights must not propose archs outside it.
:class:`PathSpace` offers exactly the supernet's paths -- one pick per position -- with every
capability a generic strategy needs (sample, mutate, crossover, neighbours, a one-hot
vector, named genes), while its archs stay the wrapped space's archs: what it proposes is
built, priced and derived like any arch of that space.
"""

from __future__ import annotations

import math
import random
from typing import Any

from torch import nn

from hwnas.space.base import Arch, Space


class PathSpace(Space):
    """The sub-space of ``space`` its supernet covers (``space``: a Supernet)."""

    def __init__(self, space: Any) -> None:
        self.inner = space
        self.name = space.name
        self.options = [len(c) for c in space.choices()]

    def _picks(self, arch: Arch) -> list[int]:
        return list(self.inner.to_choices(arch))

    def _arch(self, picks: list[int]) -> Arch:
        return self.inner.from_choices(picks)  # type: ignore[no-any-return]

    # Space ---------------------------------------------------------------
    def sample(self, rng: random.Random) -> Arch:
        return self._arch([rng.randrange(k) for k in self.options])

    def canonical(self, arch: Arch) -> Arch:
        return self.inner.canonical(arch)  # type: ignore[no-any-return]

    def size(self) -> int:
        return math.prod(self.options)

    def validate(self, arch: Arch) -> None:
        self._picks(arch)  # InvalidArch outside the sub-space

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        return self.inner.build(arch, input_shape, num_classes)  # type: ignore[no-any-return]

    def describe(self, arch: Arch) -> str:
        return str(self.inner.describe(arch))

    def key(self, arch: Arch) -> str:
        return str(self.inner.key(arch))

    # Evolvable, Neighbourly ------------------------------------------------
    def _changes(self, arch: Arch) -> list[Arch]:
        """Every arch one pick away that builds another network, distinct by hash."""
        picks, h = self._picks(arch), self.arch_hash(arch)
        out, seen = [], {h}
        for j, k in enumerate(self.options):
            for i in range(k):
                if i == picks[j]:
                    continue
                child = self._arch([*picks[:j], i, *picks[j + 1 :]])
                ch = self.arch_hash(child)
                if ch not in seen:
                    seen.add(ch)
                    out.append(child)
        return out

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        changes = self._changes(arch)
        return rng.choice(changes) if changes else self.sample(rng)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        pa, pb = self._picks(a), self._picks(b)
        return self._arch([x if rng.random() < 0.5 else y for x, y in zip(pa, pb, strict=True)])

    def neighbours(self, arch: Arch) -> list[Arch]:
        return self._changes(arch)

    # Vectorizable, Encodable ---------------------------------------------
    def encode(self, arch: Arch) -> list[float]:
        out: list[float] = []
        for k, i in zip(self.options, self._picks(arch), strict=True):
            out += [1.0 if j == i else 0.0 for j in range(k)]
        return out

    def parameters(self) -> dict[str, list[Any]]:
        return {f"p{j}": list(range(k)) for j, k in enumerate(self.options)}

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        return self._arch([int(params[f"p{j}"]) for j in range(len(self.options))])

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        return {f"p{j}": i for j, i in enumerate(self._picks(arch))}
