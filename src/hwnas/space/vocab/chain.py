"""Op names of the chain space: ``k{kernel}_e{expansion}`` MBConv blocks and ``skip``."""

from __future__ import annotations

SKIP = "skip"


def op_name(kernel: int, expansion: int) -> str:
    """The name of the MBConv op with this depthwise kernel and expansion ratio."""
    return f"k{kernel}_e{expansion}"


def parse_op(op: str) -> tuple[int, int]:
    """(kernel, expansion) of an MBConv op name such as ``k5_e3`` (not ``skip``)."""
    k, e = op.split("_")
    return int(k[1:]), int(e[1:])
