"""MACs and peak activation memory of an ONNX graph, counted from its inferred shapes.

``hwnas profile --onnx`` gets a file that may come from anywhere, with no PyTorch module to
run the analytic counters on, so the graph itself is read: ONNX shape inference gives every
tensor's shape, a convolution or matrix product's multiply-accumulates follow from its output
and weight shapes (the same count ``torch.utils.flop_counter`` gives: bias adds, activations
and pooling are not MACs; quantised ops are not counted), and walking the nodes in their
stored (topological) order with each tensor freed after its last reader gives the peak of
live activations at batch 1 (a dynamic dimension taken as 1). A runtime may fuse or share
buffers, so the peak is that of the graph as written, an upper estimate.
"""

from __future__ import annotations

import math
from typing import Any


def _dims(value_info: Any) -> list[int] | None:
    """A tensor's shape with any symbolic dimension (a dynamic batch) taken as 1."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


def _node_macs(node: Any, shape: dict[str, list[int]]) -> int:
    out = shape.get(node.output[0]) if node.output else None
    if out is None:
        return 0
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in shape:
        w = shape[node.input[1]]  # [C_out, C_in / groups, *kernel]
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "ConvTranspose" and len(node.input) > 1 and node.input[0] in shape:
        w = shape.get(node.input[1], [])  # [C_in, C_out / groups, *kernel]: each input
        return math.prod(shape[node.input[0]]) * math.prod(w[1:])  # pixel feeds a patch
    if node.op_type in ("Gemm", "MatMul") and node.input[0] in shape:
        a = shape[node.input[0]]
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[-2] if trans_a and len(a) >= 2 else a[-1]
        return math.prod(out) * k
    return 0


def onnx_graph_costs(proto: Any) -> dict[str, float]:
    """``macs`` and ``peak_memory_bytes`` (input included, weights not) of ``proto``."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(proto).graph
    weights = {t.name for t in graph.initializer}
    shape: dict[str, list[int]] = {t.name: list(t.dims) for t in graph.initializer}
    nbytes: dict[str, int] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(vi)
        if dims is not None:
            shape.setdefault(vi.name, dims)
            nbytes[vi.name] = math.prod(dims) * _itemsize(vi.type.tensor_type.elem_type)
    macs = sum(_node_macs(n, shape) for n in graph.node)

    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = i
    kept = {o.name for o in graph.output}
    live = {vi.name for vi in graph.input if vi.name not in weights}
    current = sum(nbytes.get(n, 0) for n in live)
    peak = current
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name and name not in live:
                live.add(name)
                current += nbytes.get(name, 0)
        peak = max(peak, current)
        # inputs read for the last time, and outputs no node reads (a Dropout's mask)
        unread = [n for n in node.output if n and n not in last_use]
        for name in {*node.input, *unread}:
            if name in live and last_use.get(name, i) == i and name not in kept:
                live.discard(name)
                current -= nbytes.get(name, 0)
    return {"macs": float(macs), "peak_memory_bytes": float(peak)}
