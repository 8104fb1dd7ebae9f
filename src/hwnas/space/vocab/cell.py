"""Op names and the arch string of the NAS-Bench-201 cell (Dong & Yang, ICLR 2020).

A cell has 4 nodes; each of its 6 edges (node j <- node i, i < j) carries one op. Archs list
the ops in the benchmark's edge order :data:`EDGES` and print as the benchmark's string
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
"""

from __future__ import annotations

import re

from hwnas.space.base import InvalidArch

CELL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), benchmark order
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


def to_string(ops: list[str]) -> str:
    """The benchmark's arch string."""
    nodes = []
    k = 0
    for j in (1, 2, 3):
        nodes.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(nodes)


def parse_string(text: str) -> list[str]:
    """Ops in edge order from the benchmark's arch string; raises InvalidArch if malformed."""
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise InvalidArch(f"cell string needs 3 nodes joined by '+': {text!r}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        tokens = [t for t in node.split("|") if t]
        if len(tokens) != j or not node.startswith("|") or not node.endswith("|"):
            raise InvalidArch(f"node {j} of {text!r} needs {j} edges like |op~i|")
        for i, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m or int(m.group(2)) != i or m.group(1) not in CELL_OPS:
                raise InvalidArch(f"bad edge {tok!r} in {text!r}")
            ops.append(m.group(1))
    return ops
