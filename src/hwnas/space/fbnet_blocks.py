"""The FBNet space as blocks whose costs add up (its :class:`BlockDecomposable` side), and per
position the block each pick adds (its :class:`Supernet` side's costs).

The macro skeleton is fixed, so every position sees the same input shape whatever the other
picks are: a pick's latency, MACs or parameters depend on the pick and its position alone, and
an arch's cost is exactly the fixed blocks' (stem, head) plus its picks' -- the additivity a
lookup table and a resource loss ``E[C] = sum_j sum_i p(i, j) C(i, j)`` rely on. A true
identity (``skip`` where shapes agree) adds no block.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import TYPE_CHECKING

from hwnas.space.capabilities import Block, Shape
from hwnas.space.vocab.fbnet import BLOCKS, SKIP

if TYPE_CHECKING:
    from torch import nn

    from hwnas.space.base import Arch
    from hwnas.space.fbnet import FbnetSpace


def _down(size: int, stride: int) -> int:
    """Output size of an odd-kernel conv padded by k // 2."""
    return (size - 1) // stride + 1


# module factories (imports deferred: costing an arch builds nothing)
def _stem(cin: int, cout: int, stride: int) -> nn.Module:
    from hwnas.space.fbnet_modules import conv_bn

    return conv_bn(cin, cout, 3, stride)


def _layer(name: str, cin: int, cout: int, stride: int) -> nn.Module:
    from hwnas.space.fbnet_modules import make_block

    return make_block(name, cin, cout, stride)


def _head(c: int, head_channels: int, num_classes: int) -> nn.Module:
    """FbnetNet's tail: optional 1x1 conv, global pool, flatten, classifier."""
    from torch import nn

    from hwnas.space.blocks import head_conv
    from hwnas.space.fbnet_modules import conv_bn

    head, c = head_conv(c, head_channels, conv_bn)
    return nn.Sequential(head, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, num_classes))


class FbnetBlocks:
    """Blocks of the FBNet space: the stem, each non-identity layer in its context, the head."""

    def __init__(self, space: FbnetSpace) -> None:
        self.space = space

    def blocks_id(self) -> str:
        blob = self.space.cfg.model_dump_json()
        return "fbnet-" + hashlib.sha1(blob.encode()).hexdigest()[:12]

    def _geometry(self, shape: Shape) -> tuple[Shape, list[tuple[int, int, int, int, int]]]:
        """The stem's output shape and per layer (cin, cout, h, w, stride), h x w its input."""
        s = self.space.cfg.stem_stride
        h, w = _down(shape[1], s), _down(shape[2], s)
        out = []
        for cin, cout, stride in self.space.layers:
            out.append((cin, cout, h, w, stride))
            h, w = _down(h, stride), _down(w, stride)
        return (self.space.layers[-1][1], h, w), out

    def _stem_block(self, shape: Shape) -> Block:
        c, h, w = shape
        out, s = self.space.stem_channels, self.space.cfg.stem_stride
        return Block(
            f"fbnet-stem:c{c}>{out}:{h}x{w}:k3s{s}", shape, partial(_stem, c, out, s), True
        )

    def _head_block(self, shape: Shape, num_classes: int) -> Block:
        c, h, w = shape
        hc = self.space.head_channels
        return Block(
            f"fbnet-head:c{c}>{hc}>{num_classes}:{h}x{w}",
            shape,
            partial(_head, c, hc, num_classes),
        )

    @staticmethod
    def _layer_block(name: str, geo: tuple[int, int, int, int, int]) -> Block | None:
        cin, cout, h, w, stride = geo
        if name == SKIP and cin == cout and stride == 1:
            return None  # a true identity: nothing to run
        return Block(
            f"fbnet-{name}:c{cin}>{cout}:{h}x{w}:s{stride}",
            (cin, h, w),
            partial(_layer, name, cin, cout, stride),
        )

    def choice_blocks(
        self, input_shape: Shape, num_classes: int
    ) -> tuple[list[Block], list[list[Block | None]]]:
        end, geos = self._geometry(input_shape)
        fixed = [self._stem_block(input_shape), self._head_block(end, num_classes)]
        return fixed, [[self._layer_block(b, g) for b in BLOCKS] for g in geos]

    def blocks(self, arch: Arch, input_shape: Shape, num_classes: int) -> list[Block]:
        self.space.validate(arch)
        end, geos = self._geometry(input_shape)
        layers = [self._layer_block(b, g) for b, g in zip(arch["blocks"], geos, strict=True)]
        return [
            self._stem_block(input_shape),
            *(b for b in layers if b is not None),
            self._head_block(end, num_classes),
        ]

    def all_blocks(self, input_shape: Shape, num_classes: int) -> list[Block]:
        fixed, per_layer = self.choice_blocks(input_shape, num_classes)
        picks = [b for layer in per_layer for b in layer if b is not None]
        every = [fixed[0], *picks, fixed[1]]
        return list({b.key: b for b in every}.values())
