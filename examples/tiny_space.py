"""A user-defined search space: a small CNN whose op, width and skip are searched.

Run it through the ordinary CLI (from the repo root, so that `examples` is importable):

    PYTHONPATH=examples hwnas search --set space.name=tiny_space:TinyCNNSpace \\
        --set space.options.max_width=48 --out runs/tiny
"""

from __future__ import annotations

import torch
from torch import nn

from hwnas.space.user import Choice, Integer, UserSpace, optional


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, op: str, skip: bool) -> None:
        super().__init__()
        k = {"conv3": 3, "conv5": 5, "dw5": 5}[op]
        groups = cin if op == "dw5" and cin == cout else 1
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
        self.skip = skip and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class TinyCNNSpace(UserSpace):
    """Two blocks: an op per block, one searched width, an optional skip on the second."""

    choices = {
        "op1": Choice("conv3", "conv5"),
        "op2": Choice("conv3", "conv5", "dw5"),
        "width": Integer(8, 64, step=8),
        "skip": optional(True),
    }

    def __init__(self, max_width: int = 64) -> None:
        # options from `space.options` arrive here; this one narrows the width choice
        self.choices = {**type(self).choices, "width": Integer(8, max_width, step=8)}
        super().__init__(max_width=max_width)

    def build_model(self, arch, input_shape, num_classes):
        w = arch["width"]
        return nn.Sequential(
            Block(input_shape[0], w, arch["op1"], skip=False),
            Block(w, w, arch["op2"], skip=arch["skip"]),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(w, num_classes),
        )
