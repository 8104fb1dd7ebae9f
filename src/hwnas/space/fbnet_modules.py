"""PyTorch modules of the FBNet macro network (imported only when a network is built)."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import torch
from torch import nn

from hwnas.space import blocks
from hwnas.space.blocks import head_conv
from hwnas.space.vocab.fbnet import SKIP, parse_block

conv_bn = partial(blocks.conv_bn, activation=nn.ReLU)  # FBNet blocks use plain ReLU


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle: interleave the channels of ``groups`` groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.groups
        return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class TBS(nn.Module):
    """FBNet block: 1x1 group conv, [shuffle], kxk depthwise, 1x1 group conv (+ identity)."""

    def __init__(self, cin: int, cout: int, k: int, e: int, g: int, stride: int) -> None:
        super().__init__()
        hidden = cin * e
        layers: list[nn.Module] = [conv_bn(cin, hidden, 1, groups=g)]
        if g > 1:
            layers.append(ChannelShuffle(g))
        layers += [
            conv_bn(hidden, hidden, k, stride, groups=hidden),
            conv_bn(hidden, cout, 1, groups=g, act=False),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def make_block(name: str, cin: int, cout: int, stride: int) -> nn.Module:
    if name == SKIP:
        # identity where shapes agree; otherwise the reference builder's 1x1 projection
        return nn.Identity() if cin == cout and stride == 1 else conv_bn(cin, cout, 1, stride)
    k, e, g = parse_block(name)
    return TBS(cin, cout, k, e, g, stride)


class FbnetNet(nn.Module):
    """Stem -> 22 searchable layers -> 1x1 head conv -> global pool -> classifier.

    ``layers`` are the (input channels, output channels, stride) of the searchable layers and
    ``stem`` the stem's (channels, stride), as :class:`~hwnas.space.fbnet.FbnetSpace` scales them.
    """

    def __init__(
        self,
        blocks: list[str],
        layers: list[tuple[int, int, int]],
        cin: int,
        num_classes: int,
        stem: tuple[int, int],
        head_channels: int,
    ) -> None:
        super().__init__()
        self.stem = conv_bn(cin, stem[0], 3, stem[1])
        self.layers = nn.Sequential(
            *(make_block(b, ci, co, s) for b, (ci, co, s) in zip(blocks, layers, strict=True))
        )
        c = layers[-1][1]
        self.head, c = head_conv(c, head_channels, conv_bn)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class FbnetSupernet(nn.Module):
    """Every one of the 9 blocks at each of the 22 positions, on FbnetNet's skeleton.

    ``forward(x, path)``: ``path[j]`` is either ``(index, gate)`` -- one pick, its output
    multiplied by ``gate`` (1 in value: the straight-through route of a hard Gumbel sample's
    gradient to the architecture weights) unless ``gate`` is None; only the picked blocks run
    (single path, as in GDAS and SPOS) -- or a weight tensor over the 9 blocks, whose weighted
    sum is the output (FBNet's mixed op: every block runs). Block ``i`` at position ``j`` is built exactly as FbnetNet builds it, so a
    derived net can take its weights (:meth:`state_for`).
    """

    def __init__(
        self,
        layers: list[tuple[int, int, int]],
        cin: int,
        num_classes: int,
        stem: tuple[int, int],
        head_channels: int,
        names: tuple[str, ...],
    ) -> None:
        super().__init__()
        self.stem = conv_bn(cin, stem[0], 3, stem[1])
        self.choices = nn.ModuleList(
            blocks.Choice(make_block(b, ci, co, s) for b in names) for ci, co, s in layers
        )
        c = layers[-1][1]
        self.head, c = head_conv(c, head_channels, conv_bn)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, path: list[Any]) -> torch.Tensor:
        x = self.stem(x)
        for ops, step in zip(self.choices, path, strict=True):
            x = blocks.mixed(cast(nn.ModuleList, ops), step, x)
        x = self.head(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    def state_for(self, picks: list[int]) -> dict[str, torch.Tensor]:
        """The state dict of the FbnetNet picking ``picks``, from the shared weights."""
        out: dict[str, torch.Tensor] = {}
        for k, v in self.state_dict().items():
            if k.startswith("choices."):
                _, j, i, rest = k.split(".", 3)
                if picks[int(j)] == int(i):
                    out[f"layers.{j}.{rest}"] = v.clone()
            else:
                out[k] = v.clone()
        return out
