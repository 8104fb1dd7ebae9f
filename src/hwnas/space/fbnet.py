"""The FBNet search space (Wu et al., CVPR 2019), as HW-NAS-Bench and HELP publish it.

22 searchable layers, each one of 9 blocks, indexed as the published tables index them::

    0 k3_e1  1 k3_e1_g2  2 k3_e3  3 k3_e6  4 k5_e1  5 k5_e1_g2  6 k5_e3  7 k5_e6  8 skip

(k: depthwise kernel, e: expansion, g2: both 1x1 convs in 2 groups with a channel shuffle).
Macro, from the paper's Table 1: a 3x3 stem conv (16 channels, stride 2); stages of
[1, 4, 4, 4, 4, 4, 1] layers with [16, 24, 32, 64, 112, 184, 352] output channels whose first
layer strides [1, 2, 2, 2, 1, 2, 1]; a 1x1 conv to 1984 channels, global pooling, classifier.

A block is the paper's TBS: 1x1 (group) conv -> ReLU -> [shuffle] -> kxk depthwise (stride)
-> ReLU -> 1x1 (group) conv, plus the identity where input and output shapes agree. ``skip``
is the identity where shapes agree; on the 6 layers that stride or widen (layers 1, 5, 9, 13,
17, 21) an identity is impossible, and -- as in the FBNet reference builder the published
tables were measured with -- ``skip`` there is a 1x1 conv (with the stride) + BN + ReLU. So
every one of the 9**22 genotypes builds a different network; the canonical form is the arch.

Archs are ``{"blocks": [22 block names]}``; :meth:`FbnetSpace.key` prints the tables'
``layer_choices`` form (``"0 3 8 ..."``), and :meth:`FbnetSpace.from_key` reads it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.capabilities import Block, Shape
from hwnas.space.config import FbnetSpaceConfig
from hwnas.space.fbnet_blocks import FbnetBlocks
from hwnas.space.vocab.fbnet import (
    BLOCKS,
    N_LAYERS,
    STAGE_DEPTHS,
    STAGE_STRIDES,
    STAGE_WIDTHS,
    STEM_CHANNELS,
    scaled,
)

if TYPE_CHECKING:
    from torch import nn


class FbnetSpace(Space):
    """22 layers x 9 blocks on FBNet's fixed macro skeleton."""

    name = "fbnet"

    def __init__(self, cfg: FbnetSpaceConfig | None = None) -> None:
        self.cfg = cfg or FbnetSpaceConfig()
        m = self.cfg.width_multiplier
        self.stem_channels = scaled(STEM_CHANNELS, m)
        #: (input channels, output channels, stride) of every searchable layer
        self.layers: list[tuple[int, int, int]] = []
        c = self.stem_channels
        for depth, width, stride in zip(STAGE_DEPTHS, STAGE_WIDTHS, STAGE_STRIDES, strict=True):
            w = scaled(width, m)
            for j in range(depth):
                self.layers.append((c, w, stride if j == 0 else 1))
                c = w
        self.head_channels = scaled(self.cfg.head_channels, m) if self.cfg.head_channels else 0

    # ------------------------------------------------------------ table keys
    def key(self, arch: Arch) -> str:
        """The published tables' ``layer_choices``: 22 block indices, space-separated."""
        self.validate(arch)
        return " ".join(str(BLOCKS.index(b)) for b in arch["blocks"])

    def from_key(self, text: str) -> Arch:
        """The arch of a ``layer_choices`` string; raises InvalidArch if malformed."""
        tokens = str(text).split()
        if len(tokens) != N_LAYERS or not all(t.isdigit() and int(t) < len(BLOCKS) for t in tokens):
            raise InvalidArch(
                f"fbnet key needs {N_LAYERS} block indices 0-{len(BLOCKS) - 1}: {text!r}"
            )
        return {"blocks": [BLOCKS[int(t)] for t in tokens]}

    def identity_possible(self, layer: int) -> bool:
        """Whether ``skip`` at ``layer`` is a true identity (same shape in and out)."""
        cin, cout, stride = self.layers[layer]
        return cin == cout and stride == 1

    # -------------------------------------------------------------- interface
    def sample(self, rng: random.Random) -> Arch:
        return {"blocks": [rng.choice(BLOCKS) for _ in range(N_LAYERS)]}

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        blocks = list(arch["blocks"])
        i = rng.randrange(N_LAYERS)
        blocks[i] = rng.choice([b for b in BLOCKS if b != blocks[i]])
        return {"blocks": blocks}

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        return {"blocks": [rng.choice(p) for p in zip(a["blocks"], b["blocks"], strict=True)]}

    def neighbours(self, arch: Arch) -> list[Arch]:
        out = []
        for i, current in enumerate(arch["blocks"]):
            for b in BLOCKS:
                if b != current:
                    blocks = list(arch["blocks"])
                    blocks[i] = b
                    out.append({"blocks": blocks})
        return out

    def encode(self, arch: Arch) -> list[float]:
        """One-hot per layer (22 x 9): a latency model additive per layer is linear on it."""
        return [float(b == c) for b in arch["blocks"] for c in BLOCKS]

    def canonical(self, arch: Arch) -> Arch:
        self.validate(arch)
        return {"blocks": list(arch["blocks"])}

    def size(self) -> int:
        return len(BLOCKS) ** N_LAYERS

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or set(arch) != {"blocks"}:
            raise InvalidArch("fbnet arch must be {'blocks': [22 block names]}")
        blocks = arch["blocks"]
        if not isinstance(blocks, list) or len(blocks) != N_LAYERS:
            raise InvalidArch(f"fbnet arch needs {N_LAYERS} blocks")
        for i, b in enumerate(blocks):
            if b not in BLOCKS:
                raise InvalidArch(f"fbnet layer {i}: unknown block {b!r}; known: {list(BLOCKS)}")

    def parameters(self) -> dict[str, list[Any]]:
        return {f"L{i:02d}": list(BLOCKS) for i in range(N_LAYERS)}

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        return {"blocks": [params[f"L{i:02d}"] for i in range(N_LAYERS)]}

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        return {f"L{i:02d}": b for i, b in enumerate(arch["blocks"])}

    def describe(self, arch: Arch) -> str:
        parts, i = [], 0
        for depth, width in zip(STAGE_DEPTHS, STAGE_WIDTHS, strict=True):
            names = [b.replace("_", "") for b in arch["blocks"][i : i + depth]]
            parts.append(f"{width}[{','.join(names)}]")
            i += depth
        return "fbnet " + " ".join(parts)

    # ------------------------------------------------- blocks (tables, resource losses)
    def blocks_id(self) -> str:
        return FbnetBlocks(self).blocks_id()

    def blocks(self, arch: Arch, input_shape: Shape, num_classes: int) -> list[Block]:
        return FbnetBlocks(self).blocks(arch, input_shape, num_classes)

    def all_blocks(self, input_shape: Shape, num_classes: int) -> list[Block]:
        return FbnetBlocks(self).all_blocks(input_shape, num_classes)

    # ------------------------------------------------------ one-shot (supernet)
    def choices(self) -> list[list[str]]:
        return [list(BLOCKS) for _ in range(N_LAYERS)]

    def from_choices(self, picks: list[int]) -> Arch:
        return {"blocks": [BLOCKS[i] for i in picks]}

    def to_choices(self, arch: Arch) -> list[int]:
        self.validate(arch)
        return [BLOCKS.index(b) for b in arch["blocks"]]

    def choice_blocks(
        self, input_shape: Shape, num_classes: int
    ) -> tuple[list[Block], list[list[Block | None]]]:
        return FbnetBlocks(self).choice_blocks(input_shape, num_classes)

    def supernet(self, input_shape: Shape, num_classes: int) -> nn.Module:
        from hwnas.space.fbnet_modules import FbnetSupernet

        return FbnetSupernet(
            self.layers,
            input_shape[0],
            num_classes,
            stem=(self.stem_channels, self.cfg.stem_stride),
            head_channels=self.head_channels,
            names=BLOCKS,
        )

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.fbnet_modules import FbnetNet

        self.validate(arch)
        return FbnetNet(
            arch["blocks"],
            self.layers,
            input_shape[0],
            num_classes,
            stem=(self.stem_channels, self.cfg.stem_stride),
            head_channels=self.head_channels,
        )
