"""Cell space of NAS-Bench-201 (Dong & Yang, ICLR 2020): one 4-node cell DAG, repeated.

Each of the 6 edges (node j <- node i, i < j) carries one of 5 ops, so there are 5**6 = 15 625
cells. Archs are ``{"ops": [six op names]}`` in the benchmark's edge order
(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) and print as the standard string
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
Every string is its own identity (the benchmark measures all 15 625 separately), so the
canonical form is the arch itself. The macro skeleton follows the benchmark (stem, three stages
of N cells joined by residual reduction blocks, widths C, 2C, 4C), so trained results compare.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.config import CellSpaceConfig
from hwnas.space.vocab.cell import EDGES, parse_string, to_string

if TYPE_CHECKING:
    from torch import nn


class CellSpace(Space):
    name = "cell"

    def __init__(self, cfg: CellSpaceConfig | None = None) -> None:
        self.cfg = cfg or CellSpaceConfig()
        self.ops = list(self.cfg.ops)

    def from_string(self, text: str) -> Arch:
        """The arch of a benchmark string, an arch of this space (its ops) or InvalidArch."""
        arch = self.from_key(text)
        self.validate(arch)
        return arch

    def from_key(self, key: str) -> Arch:
        """The cell of a benchmark string, whatever ops this space allows."""
        return {"ops": parse_string(key)}

    def parameters(self) -> dict[str, list[Any]]:
        return {f"edge{j}<-{i}": list(self.ops) for j, i in EDGES}

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        return {"ops": [params[f"edge{j}<-{i}"] for j, i in EDGES]}

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        return {f"edge{j}<-{i}": op for (j, i), op in zip(EDGES, arch["ops"], strict=True)}

    def sample(self, rng: random.Random) -> Arch:
        return {"ops": [rng.choice(self.ops) for _ in EDGES]}

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        ops = list(arch["ops"])
        k = rng.randrange(len(EDGES))
        ops[k] = rng.choice([o for o in self.ops if o != ops[k]])
        return {"ops": ops}

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        return {"ops": [rng.choice(pair) for pair in zip(a["ops"], b["ops"], strict=True)]}

    def neighbours(self, arch: Arch) -> list[Arch]:
        out = []
        for k in range(len(EDGES)):
            for o in self.ops:
                if o != arch["ops"][k]:
                    ops = list(arch["ops"])
                    ops[k] = o
                    out.append({"ops": ops})
        return out

    def encode(self, arch: Arch) -> list[float]:
        return [float(op == o) for op in arch["ops"] for o in self.ops]

    def canonical(self, arch: Arch) -> Arch:
        self.validate(arch)
        return {"ops": list(arch["ops"])}

    def degenerate(self, arch: Arch) -> bool:
        """No path of non-``none`` edges from the input node to the output: every cell then
        outputs zeros and the net predicts one class (NB201's 341 such cells all score ~9.7 %)."""
        live = {0}
        for (j, i), op in zip(EDGES, arch["ops"], strict=True):  # EDGES: by target node
            if op != "none" and i in live:
                live.add(j)
        return 3 not in live

    def size(self) -> int:
        return len(self.ops) ** len(EDGES)

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or set(arch) != {"ops"}:
            raise InvalidArch("cell arch must be {'ops': [6 op names]}")
        ops = arch["ops"]
        if not isinstance(ops, list) or len(ops) != len(EDGES):
            raise InvalidArch("cell arch needs 6 ops")
        for op in ops:
            if op not in self.ops:
                raise InvalidArch(f"cell op {op!r} not in {self.ops}")

    def describe(self, arch: Arch) -> str:
        return to_string(arch["ops"])

    def key(self, arch: Arch) -> str:
        """The string tables are indexed by."""
        return to_string(arch["ops"])

    # ------------------------------------------------------ one-shot (supernet)
    def choices(self) -> list[list[str]]:
        return [list(self.ops) for _ in EDGES]

    def from_choices(self, picks: list[int]) -> Arch:
        return {"ops": [self.ops[i] for i in picks]}

    def to_choices(self, arch: Arch) -> list[int]:
        self.validate(arch)
        return [self.ops.index(o) for o in arch["ops"]]

    def supernet(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.cell_modules import CellSupernet

        return CellSupernet(
            self.ops, input_shape[0], num_classes, self.cfg.channels, self.cfg.cells_per_stage
        )

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.cell_modules import CellNet

        self.validate(arch)
        return CellNet(
            arch["ops"], input_shape[0], num_classes, self.cfg.channels, self.cfg.cells_per_stage
        )
