"""The structure of a graph-space arch: nodes in topological order and the facts derived
from them (channels, resolution level, sign, consumers).

An arch is ``{"nodes": [...], "next_id": N}``; node 0 is the input image, the last node feeds
global pooling and the classifier. Node kinds: ``conv`` (conv -> BN -> ReLU, keys ``k`` and
``c``), ``pool`` (2x2 max pooling), ``add`` (``in[0] + proj(in[1])``), ``concat``. Morphism kinds
are :data:`KINDS` (plus the ``scale`` macro).
"""

from __future__ import annotations

from typing import Any

from hwnas.space.base import Arch, InvalidArch
from hwnas.space.capabilities import Morph

__all__ = ["BN_EPS", "KINDS", "Graph", "Morph", "initial_arch"]
KINDS = ("deeper", "wider", "skip")
#: epsilon of every BatchNorm in a graph net (an identity-initialised layer depends on it)
BN_EPS = 1e-5


def initial_arch(channels: list[int], depth: int = 1, kernel: int = 3) -> Arch:
    """``depth`` convs per level, a max-pool between levels: the small net NASH starts from."""
    nodes: list[dict[str, Any]] = []
    prev, nid = 0, 1
    for level, c in enumerate(channels):
        if level:
            nodes.append({"id": nid, "op": "pool", "in": [prev]})
            prev, nid = nid, nid + 1
        for _ in range(depth):
            nodes.append({"id": nid, "op": "conv", "in": [prev], "k": kernel, "c": c})
            prev, nid = nid, nid + 1
    return {"nodes": nodes, "next_id": nid}


class Graph:
    """Derived facts about an arch: channels, resolution level, sign, consumers."""

    def __init__(self, arch: Arch, in_channels: int = 3) -> None:
        self.nodes: list[dict[str, Any]] = arch["nodes"]
        self.by_id = {n["id"]: n for n in self.nodes}
        self.channels: dict[int, int] = {0: in_channels}
        self.level: dict[int, int] = {0: 0}
        self.nonneg: dict[int, bool] = {0: False}
        self.order = {0: 0}
        self.consumers: dict[int, list[int]] = {0: []}
        for pos, n in enumerate(self.nodes, 1):
            i, ins = n["id"], n["in"]
            if i in self.order or any(j not in self.order for j in ins):
                raise InvalidArch(f"graph: node {i} is repeated or uses a later node")
            self.order[i] = pos
            self.consumers[i] = []
            for j in ins:
                self.consumers[j].append(i)
            levels = {self.level[j] for j in ins}
            if len(levels) != 1:
                raise InvalidArch(f"graph: node {i} joins inputs of different resolutions")
            lvl = levels.pop()
            op = n["op"]
            if op == "conv":
                self.channels[i], self.nonneg[i] = int(n["c"]), True
            elif op == "pool":
                self.channels[i], self.nonneg[i] = self.channels[ins[0]], self.nonneg[ins[0]]
                lvl += 1
            elif op == "add":
                if len(ins) != 2:
                    raise InvalidArch(f"graph: add node {i} needs two inputs")
                self.channels[i], self.nonneg[i] = self.channels[ins[0]], False
            elif op == "concat":
                self.channels[i] = sum(self.channels[j] for j in ins)
                self.nonneg[i] = all(self.nonneg[j] for j in ins)
            else:
                raise InvalidArch(f"graph: unknown op {op!r}")
            self.level[i] = lvl
        self.output = self.nodes[-1]["id"] if self.nodes else 0

    def convs(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes if n["op"] == "conv"]
