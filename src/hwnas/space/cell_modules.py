"""PyTorch modules of the NAS-Bench-201 macro network (imported only when built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from hwnas.space.blocks import Choice, mixed
from hwnas.space.vocab.cell import EDGES


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
            nn.BatchNorm2d(cout),
        )


class Zero(nn.Module):
    #: a mixed op skips it (it adds nothing to a weighted sum)
    zero = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown cell op {name!r}")


def cell_nodes(x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The cell DAG: node j = sum over i < j of ``edge(k, node i)``, k the edge's index in
    :data:`EDGES` order; the output is node 3 (shared by the net and the supernet)."""
    nodes = [x]
    k = 0
    for j in (1, 2, 3):
        total = edge(k, nodes[0])
        for i in range(1, j):
            total = total + edge(k + i, nodes[i])
        k += j
        nodes.append(total)
    return nodes[3]


def skeleton(
    cin: int, c: int, n: int, make_cell: Callable[[int], nn.Module]
) -> tuple[list[nn.Module], int]:
    """The benchmark's macro up to global pooling: stem, three stages of ``n`` cells of width
    c, 2c, 4c joined by residual reductions, BN, ReLU, pool; and the final width. The same
    layer order in the net and the supernet keeps their state-dict keys aligned."""
    layers: list[nn.Module] = [nn.Conv2d(cin, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)]
    width = c
    for stage in range(3):
        if stage:
            layers.append(ResidualReduction(width, width * 2))
            width *= 2
        layers += [make_cell(width) for _ in range(n)]
    layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)]
    return layers, width


class Cell(nn.Module):
    """Node j = sum of op(j<-i)(node i) over i < j; the cell outputs node 3."""

    def __init__(self, ops: list[str], c: int) -> None:
        super().__init__()
        self.edges = EDGES
        self.ops = nn.ModuleList(make_op(o, c) for o in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cell_nodes(x, lambda k, h: self.ops[k](h))


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: two ReLU-conv-BN (stride 2) plus a pooled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = ReLUConvBN(cin, cout, 3, 2)
        self.b = ReLUConvBN(cout, cout, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class CellNet(nn.Module):
    def __init__(self, ops: list[str], cin: int, num_classes: int, c: int, n: int) -> None:
        super().__init__()
        layers, width = skeleton(cin, c, n, lambda w: Cell(ops, w))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MixedCell(nn.Module):
    """A cell holding every op on each of its 6 edges; ``forward(x, path)`` takes one step
    per edge (see :func:`hwnas.space.blocks.mixed`)."""

    def __init__(self, names: list[str], c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(Choice(make_op(o, c) for o in names) for _ in EDGES)

    def forward(self, x: torch.Tensor, path: list[Any]) -> torch.Tensor:
        return cell_nodes(x, lambda k, h: mixed(cast(nn.ModuleList, self.edges[k]), path[k], h))


class CellSupernet(nn.Module):
    """CellNet's skeleton with :class:`MixedCell` s: every cell follows the same path (the
    benchmark repeats one cell), so a path has 6 steps. Layer indices match CellNet's, so a
    derived net takes its weights by renaming (:meth:`state_for`)."""

    def __init__(self, names: list[str], cin: int, num_classes: int, c: int, n: int) -> None:
        super().__init__()
        layers, width = skeleton(cin, c, n, lambda w: MixedCell(names, w))
        self.features = nn.ModuleList(layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, path: list[Any]) -> torch.Tensor:
        for layer in self.features:
            x = layer(x, path) if isinstance(layer, MixedCell) else layer(x)
        return self.classifier(torch.flatten(x, 1))

    def state_for(self, picks: list[int]) -> dict[str, torch.Tensor]:
        """The state dict of the CellNet picking ``picks``, from the shared weights."""
        out: dict[str, torch.Tensor] = {}
        for key, v in self.state_dict().items():
            parts = key.split(".")
            if len(parts) > 4 and parts[0] == "features" and parts[2] == "edges":
                e, i = int(parts[3]), int(parts[4])
                if picks[e] == i:
                    out[".".join(["features", parts[1], "ops", parts[3], *parts[5:]])] = v.clone()
            else:
                out[key] = v.clone()
        return out
