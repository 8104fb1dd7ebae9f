"""PyTorch modules of the NAS-Bench-201 macro network (imported only when built)."""

from __future__ import annotations

import torch
from torch import nn

from hwnas.space.vocab.cell import EDGES


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
            nn.BatchNorm2d(cout),
        )


class Zero(nn.Module):
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


class Cell(nn.Module):
    """Node j = sum of op(j<-i)(node i) over i < j; the cell outputs node 3."""

    def __init__(self, ops: list[str], c: int) -> None:
        super().__init__()
        self.edges = EDGES
        self.ops = nn.ModuleList(make_op(o, c) for o in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for j in (1, 2, 3):
            total = self.ops[k](nodes[0])
            for i in range(1, j):
                total = total + self.ops[k + i](nodes[i])
            k += j
            nodes.append(total)
        return nodes[3]


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
        layers: list[nn.Module] = [nn.Conv2d(cin, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)]
        width = c
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers += [Cell(ops, width) for _ in range(n)]
        layers += [
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
