"""MACs and peak activation memory of an ONNX graph, counted from its inferred shapes.

``hwnas profile --onnx`` gets a file that may come from anywhere, with no PyTorch module to
run the analytic counters on, so the graph itself is read: ONNX shape inference gives every
tensor's shape, a convolution or matrix product's multiply-accumulates follow from its output
and weight shapes (the same count ``torch.utils.flop_counter`` gives: bias adds, activations
and pooling are not MACs; a quantised convolution or product, QOperator or dynamic, counts as
its float twin), and walking the nodes in their stored (topological) order with each tensor
freed after its last reader (a read inside an If or Loop body counts as the node's) gives
the peak of live activations at batch 1 (a dynamic dimension taken as 1, as the latency
reading feeds it). Tensors computed from weights alone (a QDQ graph's dequantised weights,
shape constants) are weights a runtime folds, not activations; a QDQ graph's float op between
dequantise and quantise nodes is counted as the int8 kernel a runtime fuses it into, so a QDQ
file and its QOperator twin hold the same peak. A runtime may fuse more or share buffers, so
the peak is otherwise that of the graph as written, an upper estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _dims(value_info: Any) -> list[int] | None:
    """A tensor's shape with any symbolic dimension (a dynamic batch) taken as 1."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]


def _sized(value_info: Any) -> bool:
    """Whether every dimension of a tensor has a number (not a symbol, not unknown)."""
    t = value_info.type.tensor_type
    return t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim)


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


#: where a convolution's weight is among its inputs: the float op, its fused and quantised
#: forms (QOperator's QLinearConv takes x, its scale and zero point first)
CONV_WEIGHT = {"Conv": 1, "FusedConv": 1, "ConvInteger": 1, "QLinearConv": 3}
#: matrix products, float and quantised, and where the right operand is among the inputs
#: (the left one is input 0 in each; QOperator's forms put a scale and zero point between)
MATMUL = {"Gemm": 1, "MatMul": 1, "FusedGemm": 1, "FusedMatMul": 1, "MatMulInteger": 1}
MATMUL |= {"MatMulIntegerToFloat": 1, "DynamicQuantizeMatMul": 1}
MATMUL |= {"QLinearMatMul": 3, "QGemm": 3}


def node_macs(node: Any, shape: dict[str, list[int]]) -> int:
    """Multiply-accumulates of one node (0 for what is no convolution or product)."""
    out = shape.get(node.output[0]) if node.output else None
    if node.op_type in MATMUL and out is None:  # a contrib op ONNX infers no shape for
        out = _product_shape(node, shape)
    if out is None:
        return 0
    wi = CONV_WEIGHT.get(node.op_type)
    if wi is not None and len(node.input) > wi and node.input[wi] in shape:
        w = shape[node.input[wi]]  # [C_out, C_in / groups, *kernel]
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "ConvTranspose" and len(node.input) > 1 and node.input[0] in shape:
        w = shape.get(node.input[1], [])  # [C_in, C_out / groups, *kernel]: each input
        return math.prod(shape[node.input[0]]) * math.prod(w[1:])  # pixel feeds a patch
    if node.op_type in MATMUL and node.input[0] in shape:
        a = shape[node.input[0]]
        k = a[-2] if _flag(node, "transA") and len(a) >= 2 else a[-1]
        return math.prod(out) * k
    return 0


#: inputs that hold a quantised op's scales and zero points: not weights of the net
_QUANT_PARAMS = {
    "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2},
    "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "QGemm": {1, 2, 4, 5, 7, 8},
    "ConvInteger": {2, 3},
    "MatMulInteger": {2, 3},
    "MatMulIntegerToFloat": {2, 3, 4, 5},
    "QLinearAdd": {1, 2, 4, 5, 6, 7},
    "QLinearMul": {1, 2, 4, 5, 6, 7},
    "QLinearGlobalAveragePool": {1, 2, 3, 4},
    "QLinearAveragePool": {1, 2, 3, 4},
    "QLinearLeakyRelu": {1, 2, 3, 4},
    "QLinearSigmoid": {1, 2, 3, 4},
}


def _quant_inputs(node: Any) -> set[int]:
    """Which inputs of ``node`` are scales and zero points (QLinearConcat: the output's two,
    then each input's pair after it)."""
    if node.op_type == "QLinearConcat":
        return {0, 1} | {i for i in range(2, len(node.input)) if (i - 2) % 3}
    return _QUANT_PARAMS.get(node.op_type, set())


def onnx_params(graph: Any) -> int:
    """Weights stored in ``graph``: its initializers but for a quantised graph's scales and
    zero points (a float net and its quantised twin have as many)."""
    quant: set[str] = set()
    other: set[str] = set()
    for node in graph.node:
        at = _quant_inputs(node)
        for i, name in enumerate(node.input):
            (quant if i in at else other).add(name)
    return sum(
        math.prod(t.dims) for t in graph.initializer if t.name not in quant or t.name in other
    )


def _flag(node: Any, name: str) -> bool:
    return any(at.name == name and at.i for at in node.attribute)


def _product_shape(node: Any, shape: dict[str, list[int]]) -> list[int] | None:
    """A matrix product's output shape from its operands' (a weight on the right)."""
    bi = MATMUL[node.op_type]
    if len(node.input) <= bi or node.input[0] not in shape or node.input[bi] not in shape:
        return None
    a, b = shape[node.input[0]], shape[node.input[bi]]
    if len(a) < 1 or len(b) < 2:
        return None
    rows = [a[-1]] if _flag(node, "transA") and len(a) >= 2 else a[:-1]
    return [*rows, b[-2] if _flag(node, "transB") else b[-1]]


def _reads(node: Any) -> set[str]:
    """What a node reads: its inputs and, for If, Loop and Scan, any outer tensor its bodies
    read (a tensor read only there lives until the node runs)."""
    names = {n for n in node.input if n}
    for attr in node.attribute:
        for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
            own = {t.name for t in body.initializer} | {i.name for i in body.input}
            for inner in body.node:
                own |= set(inner.output)
            for inner in body.node:
                names |= _reads(inner) - own
    return names


def _constants(graph: Any) -> set[str]:
    """Tensors computed from weights alone (Constant nodes, dequantised weights, shapes of
    constants): a runtime folds them before the first run."""
    const = {t.name for t in graph.initializer}
    for node in graph.node:
        reads = _reads(node)
        if reads <= const and not any(a.HasField("g") or a.graphs for a in node.attribute):
            const |= {o for o in node.output if o}
    return const


def _run_shapes(proto: Any, names: set[str]) -> dict[str, tuple[list[int], int]]:
    """Shapes and item sizes of tensors ``names``, read off one run in ONNX Runtime at batch
    1 (zeros in), each made a graph output; none where the runtime cannot run the graph."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from hwnas.hardware.profile import ort_inputs

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    have = {o.name for o in model.graph.output}
    for name in sorted(names - have):
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep them all
    so.log_severity_level = 4
    try:
        sess = ort.InferenceSession(model.SerializeToString(), so, ["CPUExecutionProvider"])
        feeds = {name: np.zeros(shape, dtype) for name, shape, dtype in ort_inputs(sess, 1)}
        outs = sess.run(None, feeds)
    except Exception:  # noqa: BLE001 - the inferred shapes are all there is
        return {}
    return {
        o.name: (list(a.shape), a.dtype.itemsize)
        for o, a in zip(sess.get_outputs(), outs, strict=True)
        if o.name in names and isinstance(a, np.ndarray)
    }


@dataclass
class Shapes:
    """A graph with every tensor's shape and bytes, and its weights (initializers and what
    follows from them alone)."""

    graph: Any
    shape: dict[str, list[int]]
    nbytes: dict[str, int]
    weights: set[str]


def graph_shapes(proto: Any, notes: list[str] | None = None) -> Shapes:
    """Shapes from ONNX's inference, and where it gives none or a symbolic size, from one
    run; ``notes`` hears of tensors whose shapes neither gave."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(proto).graph
    weights = _constants(graph)
    shape: dict[str, list[int]] = {t.name: list(t.dims) for t in graph.initializer}
    nbytes: dict[str, int] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(vi)
        if dims is not None:
            shape.setdefault(vi.name, dims)
            nbytes[vi.name] = math.prod(dims) * _itemsize(vi.type.tensor_type.elem_type)
    # past an op ONNX infers nothing for (a contrib QLinearAdd), or a size it leaves symbolic
    # (a flatten of a dynamic batch): the real shapes, of one run
    loose = {vi.name for vi in [*graph.value_info, *graph.output] if not _sized(vi)}
    missing = {o for n in graph.node for o in n.output if o and (o not in shape or o in loose)}
    if missing:
        ran = _run_shapes(proto, missing)
        for name, (dims, size) in ran.items():
            shape[name], nbytes[name] = dims, math.prod(dims) * size
        unknown = [n for n in sorted(missing - set(ran)) if n not in shape]
        if unknown and notes is not None:
            notes.append(
                f"{len(unknown)} tensor(s) of unknown shape ({unknown[0]}...): the ops that "
                "make them count no MACs"
            )
    return Shapes(graph, shape, nbytes, weights)


def _fused_qdq(graph: Any, weights: set[str]) -> tuple[list[Any], dict[str, str]]:
    """The nodes of ``graph`` as a runtime runs a QDQ graph: a node unit (an op whose every
    input is dequantised, weights included, and whose every output is read by one quantise
    node alone) is one int8 kernel (ONNX Runtime fuses DequantizeLinear, Conv,
    QuantizeLinear into QLinearConv), so its float input and output are never held. Returns
    the nodes left and what each fused tensor stands for: a dequantised activation read by
    such units alone is its int8 source, a unit's float result its quantise node's output.
    Anything else (a float op left out of quantisation, a float tail) stays as written."""
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in _reads(node):
            readers.setdefault(name, []).append(node)
    made_by = {o: n for n in graph.node for o in n.output if o}

    def dequantised(name: str) -> bool:
        maker = made_by.get(name)
        return maker is not None and maker.op_type == "DequantizeLinear"

    def quantised(name: str) -> bool:
        got = readers.get(name, [])
        return name not in outputs and len(got) == 1 and got[0].op_type == "QuantizeLinear"

    units = [
        n
        for n in graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and n.input
        and all(dequantised(i) for i in n.input if i)
        and all(quantised(o) for o in n.output if o)
    ]
    in_unit = {id(n) for n in units}
    alias: dict[str, str] = {}
    dropped: set[int] = set()
    for node in graph.node:  # activations dequantised for fused units alone
        if node.op_type == "DequantizeLinear" and node.input[0] not in weights:
            out = node.output[0]
            if out not in outputs and all(id(r) in in_unit for r in readers.get(out, [])):
                alias[out] = node.input[0]
                dropped.add(id(node))
    for unit in units:  # each result stands for its quantise node's int8 output
        for out in (o for o in unit.output if o):
            q = readers[out][0]
            alias[out] = q.output[0]
            dropped.add(id(q))

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    return [n for n in graph.node if id(n) not in dropped], {k: root(k) for k in alias}


def onnx_graph_costs(proto: Any, notes: list[str] | None = None) -> dict[str, float]:
    """``macs`` and ``peak_memory_bytes`` (input included, weights not) of ``proto``;
    ``notes`` hears of tensors whose shapes neither inference nor a run gave (not counted)."""
    s = graph_shapes(proto, notes)
    graph, shape, nbytes, weights = s.graph, s.shape, s.nbytes, s.weights
    macs = sum(node_macs(n, shape) for n in graph.node)

    nodes, alias = _fused_qdq(graph, weights)
    reads = [{alias.get(n, n) for n in _reads(node)} for node in nodes]
    last_use: dict[str, int] = {}
    for i, names in enumerate(reads):
        for name in names:
            last_use[name] = i
    kept = {alias.get(o.name, o.name) for o in graph.output}
    live = {vi.name for vi in graph.input if vi.name not in weights}
    current = sum(nbytes.get(n, 0) for n in live)
    peak = current
    for i, node in enumerate(nodes):
        for name in (alias.get(o, o) for o in node.output):
            if name and name not in live and name not in weights:
                live.add(name)
                current += nbytes.get(name, 0)
        peak = max(peak, current)
        # inputs read for the last time, and outputs no node reads (a Dropout's mask)
        unread = [alias.get(n, n) for n in node.output if n and alias.get(n, n) not in last_use]
        for name in {*reads[i], *unread}:
            if name in live and last_use.get(name, i) == i and name not in kept:
                live.discard(name)
                current -= nbytes.get(name, 0)
    return {"macs": float(macs), "peak_memory_bytes": float(peak)}
