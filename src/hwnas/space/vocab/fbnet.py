"""Block names and the fixed macro skeleton of the FBNet space (Wu et al., CVPR 2019).

The 9 blocks, indexed as HW-NAS-Bench's and HELP's published tables index them::

    0 k3_e1  1 k3_e1_g2  2 k3_e3  3 k3_e6  4 k5_e1  5 k5_e1_g2  6 k5_e3  7 k5_e6  8 skip

(k: depthwise kernel, e: expansion, g2: both 1x1 convs in 2 groups with a channel shuffle).
"""

from __future__ import annotations

BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP = "skip"
STAGE_DEPTHS = (1, 4, 4, 4, 4, 4, 1)
STAGE_WIDTHS = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STEM_CHANNELS = 16
N_LAYERS = sum(STAGE_DEPTHS)  # 22


def parse_block(name: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a non-skip block name such as ``k5_e1_g2``."""
    parts = name.split("_")
    groups = int(parts[2][1:]) if len(parts) > 2 else 1
    return int(parts[0][1:]), int(parts[1][1:]), groups


def scaled(channels: int, multiplier: float) -> int:
    """Channels times the width multiplier, to a multiple of 8 (at least 8)."""
    if multiplier == 1.0:
        return channels
    return max(8, int(round(channels * multiplier / 8)) * 8)
