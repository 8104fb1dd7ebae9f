"""The chain space as blocks whose latencies add up (its :class:`BlockDecomposable` side).

A lookup table times every block once, in its context (input shape, stride, channels), and
predicts a network as the sum of its blocks: the stem conv, each built MBConv, and the head
(optional 1x1 conv, pooling, classifier). Torch is imported only when a block is built.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import TYPE_CHECKING

from hwnas.space.capabilities import Block, Shape
from hwnas.space.vocab.chain import parse_op

if TYPE_CHECKING:
    from torch import nn

    from hwnas.space.base import Arch
    from hwnas.space.chain import ChainSpace


def _sha(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _down(size: int, stride: int) -> int:
    """Output size of an odd-kernel conv padded by k // 2."""
    return (size - 1) // stride + 1


# module factories of the chain space's blocks (imports deferred: a prediction builds nothing)
def _stem(cin: int, cout: int, stride: int) -> nn.Module:
    from hwnas.space.blocks import conv_bn

    return conv_bn(cin, cout, 3, stride)


def _mbconv(cin: int, cout: int, k: int, e: int, stride: int) -> nn.Module:
    from hwnas.space.blocks import MBConv

    return MBConv(cin, cout, k, e, stride)


def _head(c: int, head_channels: int, num_classes: int) -> nn.Module:
    """ChainNet's tail: optional 1x1 conv, global pool, flatten, classifier (dropout: eval)."""
    from torch import nn

    from hwnas.space.blocks import conv_bn

    layers: list[nn.Module] = [conv_bn(c, head_channels, 1)] if head_channels else []
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(head_channels or c, num_classes)]
    return nn.Sequential(*layers)


class ChainBlocks:
    """Blocks of the chain space: stem conv, each MBConv in its context, and the head."""

    def __init__(self, space: ChainSpace) -> None:
        self.space = space
        self.cfg = space.cfg
        self.ops = {o: parse_op(o) for o in space.mb_ops}

    def blocks_id(self) -> str:
        return "chain-" + _sha(self.cfg.model_dump_json())

    def _stem(self, shape: Shape) -> Block:
        c, h, w = shape
        out, s = self.cfg.stem_channels, self.cfg.stem_stride
        return Block(f"stem:c{c}>{out}:{h}x{w}:k3s{s}", shape, partial(_stem, c, out, s), True)

    @staticmethod
    def _mb(cin: int, cout: int, h: int, w: int, k: int, e: int, s: int) -> Block:
        return Block(
            f"mbconv:c{cin}>{cout}:{h}x{w}:k{k}e{e}s{s}",
            (cin, h, w),
            partial(_mbconv, cin, cout, k, e, s),
        )

    def _head(self, c: int, h: int, w: int, num_classes: int) -> Block:
        hc = self.cfg.head_channels
        return Block(
            f"head:c{c}>{hc}>{num_classes}:{h}x{w}", (c, h, w), partial(_head, c, hc, num_classes)
        )

    def _after_stem(self, shape: Shape) -> Shape:
        s = self.cfg.stem_stride
        return self.cfg.stem_channels, _down(shape[1], s), _down(shape[2], s)

    def blocks(self, arch: Arch, input_shape: Shape, num_classes: int) -> list[Block]:
        ops = self.ops
        out = [self._stem(input_shape)]
        c, h, w = self._after_stem(input_shape)
        canonical = self.space.canonical(arch)  # the built ops, exactly as ChainNet sees them
        for st_cfg, st in zip(self.cfg.stages, canonical["stages"], strict=True):
            for j, op in enumerate(st["ops"]):
                k, e = ops[op]
                s = st_cfg.stride if j == 0 else 1
                out.append(self._mb(c, st["width"], h, w, k, e, s))
                c, h, w = st["width"], _down(h, s), _down(w, s)
        out.append(self._head(c, h, w, num_classes))
        return out

    def choice_blocks(
        self, input_shape: Shape, num_classes: int
    ) -> tuple[list[Block], list[list[Block | None]]]:
        """Stem and head (every arch of the supernet's sub-space has them), and per position
        the MBConv each op adds there (skip: nothing)."""
        c, h, w = self._after_stem(input_shape)
        choices = self.space.choices()
        rows: list[list[Block | None]] = []
        for i, b in self.space.positions():
            width, s = self.space.sub_widths[i], self.cfg.stages[i].stride if b == 0 else 1
            cin = c if b == 0 else width
            rows.append(
                [self._mb(cin, width, h, w, *self.ops[o], s) if o in self.ops else None
                 for o in choices[len(rows)]]
            )  # fmt: skip
            h, w, c = _down(h, s), _down(w, s), width
        return [self._stem(input_shape), self._head(c, h, w, num_classes)], rows

    def all_blocks(self, input_shape: Shape, num_classes: int) -> list[Block]:
        ops = list(self.ops.values())
        out = [self._stem(input_shape)]
        states = {self._after_stem(input_shape)}  # every (channels, h, w) a stage may receive
        for st in self.cfg.stages:
            nxt = set()
            if any(d > 0 for d in st.depths):
                for cin, h, w in states:
                    h2, w2 = _down(h, st.stride), _down(w, st.stride)
                    for cout in st.widths:
                        out += [self._mb(cin, cout, h, w, k, e, st.stride) for k, e in ops]
                        if max(st.depths) > 1:  # later blocks: width -> width, stride 1
                            out += [self._mb(cout, cout, h2, w2, k, e, 1) for k, e in ops]
                        nxt.add((cout, h2, w2))
            if 0 in st.depths:  # a dropped stage passes its input on
                nxt |= states
            # (a stage whose ops are all skipped keeps an input that equals its width: in nxt)
            states = nxt
        out += [self._head(c, h, w, num_classes) for c, h, w in sorted(states)]
        return list({b.key: b for b in out}.values())
