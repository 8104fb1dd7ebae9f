"""The PyTorch module of a graph-space arch (see :mod:`hwnas.space.graph`).

Parameter names follow node ids (``layers.n7.conv.weight``), so weights survive morphisms
that insert or rewire nodes around them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hwnas.space.vocab.graph import BN_EPS, Graph


class ConvBnRelu(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Join(nn.Module):
    """``b + proj(a)``: the projection lets a skip join nodes of different widths."""

    def __init__(self, cb: int, ca: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(ca, cb, 1, bias=False)
        nn.init.zeros_(self.proj.weight)  # a new skip starts as a no-op

    def forward(self, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return b + self.proj(a)


class GraphNet(nn.Module):
    def __init__(self, arch: dict[str, Any], in_channels: int, num_classes: int) -> None:
        super().__init__()
        graph = Graph(arch, in_channels)
        self.plan = [(n["id"], n["op"], list(n["in"])) for n in graph.nodes]
        self.layers = nn.ModuleDict()
        for n in graph.nodes:
            i, ins = n["id"], n["in"]
            if n["op"] == "conv":
                self.layers[f"n{i}"] = ConvBnRelu(graph.channels[ins[0]], int(n["c"]), n["k"])
            elif n["op"] == "add":
                self.layers[f"n{i}"] = Join(graph.channels[ins[0]], graph.channels[ins[1]])
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.output = graph.output
        self.head = nn.Linear(graph.channels[graph.output], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = {0: x}
        for i, op, ins in self.plan:
            if op == "conv":
                out[i] = self.layers[f"n{i}"](out[ins[0]])
            elif op == "pool":
                out[i] = self.pool(out[ins[0]])
            elif op == "add":
                out[i] = self.layers[f"n{i}"](out[ins[0]], out[ins[1]])
            else:
                out[i] = torch.cat([out[j] for j in ins], dim=1)
        return self.head(out[self.output].mean(dim=(2, 3)))
