"""An ONNX file as the device model's layer graph, so ``hwnas profile --onnx FILE --target
device`` gives an MCU user the SRAM, flash, latency and energy of their own (possibly int8)
file, not only of an arch hwnas built.

Each node becomes what :func:`hwnas.hardware.device.trace` makes of the same op in PyTorch:
convolutions and matrix products (float or quantised) carry their weights and MACs, pools and
element-wise ops their element counts, BatchNorm and activations are tagged to be folded and
fused, and what a runtime does not execute as a layer (reshapes, a QDQ graph's quantise and
dequantise steps, casts) aliases its input. The fusion is the tracer's own (``fuse``).
"""

from __future__ import annotations

import math
from typing import Any

from hwnas.hardware.device import Graph, Layer, fuse
from hwnas.hardware.onnx_costs import CONV_WEIGHT, MATMUL, graph_shapes, node_macs

#: ops that are no deployed layer: their output is their first input
_ALIAS = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
}  # fmt: skip
_POOL = {
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "QLinearAveragePool", "QLinearGlobalAveragePool",
    # a reduction reads every input element, as the tracer costs a module's mean or amax
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "GlobalLpPool",
}  # fmt: skip
_ACT = {
    "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "Gelu",
    "Elu", "Selu", "Softplus", "Mish", "QLinearLeakyRelu", "QLinearSigmoid",
}  # fmt: skip
#: the bias input of each convolution or product that has one
_BIAS = {"Conv": 2, "FusedConv": 2, "QLinearConv": 8, "Gemm": 2, "QGemm": 6}


def onnx_layers(proto: Any) -> Graph:
    """The deployed layer graph of an ONNX model at batch 1."""
    s = graph_shapes(proto)
    ids: dict[str, int] = {}
    sizes: dict[int, int] = {}

    def lid(name: str) -> int:
        if name not in ids:
            ids[name] = len(ids)
            sizes[ids[name]] = math.prod(s.shape.get(name, [0]))
        return ids[name]

    layers: list[Layer] = []
    for node in s.graph.node:
        ins = [n for n in node.input if n]
        outs = [n for n in node.output if n]
        if not outs or all(o in s.weights for o in outs):
            continue  # computed from weights alone (shapes, shared weights): folded
        acts = [n for n in ins if n not in s.weights]
        if node.op_type in _ALIAS and acts:
            ids[outs[0]] = lid(acts[0])
            continue
        layer = Layer(
            index=len(layers),
            name=f"{node.name or node.op_type}:{node.op_type}",
            kind="elementwise",
            op=node.op_type.lower(),
            macs=0,
            ops=math.prod(s.shape.get(outs[0], [0])),
            inputs=[lid(n) for n in acts],
            output=lid(outs[0]),
            weights={},
        )
        op = node.op_type
        if op in CONV_WEIGHT or op in MATMUL:
            wi = CONV_WEIGHT.get(op, MATMUL.get(op, 1))
            if len(node.input) > wi and node.input[wi] in s.weights:
                w = node.input[wi]
                layer.weights = {lid(w): math.prod(s.shape.get(w, [0]))}
            layer.inputs = [lid(node.input[0])]
            bi = _BIAS.get(op)
            if bi is not None and len(node.input) > bi and node.input[bi]:
                layer.bias = math.prod(s.shape.get(node.input[bi], [0]))
            layer.macs = layer.ops = node_macs(node, s.shape)
            layer.kind = _conv_kind(node, s.shape, wi) if op in CONV_WEIGHT else "linear"
        elif op in _POOL:
            layer.kind = "pool"
            layer.ops = math.prod(s.shape.get(node.input[0], [0]))
        elif op == "BatchNormalization":
            layer.tag = "bn"
            layer.inputs = layer.inputs[:1]
            layer.bias = 2 * (s.shape.get(outs[0], [0, 0])[1:2] or [0])[0]
        elif op in _ACT:
            layer.tag = "act"
            layer.op = "relu"
        elif op in ("Add", "QLinearAdd", "Sum"):
            layer.op = "add"
        layers.append(layer)
    weights = {ids[n] for n in s.weights if n in ids}
    inputs = [lid(vi.name) for vi in s.graph.input if vi.name not in s.weights]
    outputs = [lid(o.name) for o in s.graph.output]
    kept = fuse(layers, outputs)
    return Graph(kept, {t: n for t, n in sizes.items() if t not in weights}, inputs, outputs)


def _conv_kind(node: Any, shape: dict[str, list[int]], wi: int) -> str:
    """depthwise (a group per input channel), pointwise (1x1, one group) or conv."""
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    w = shape.get(node.input[wi], [])
    x = shape.get(node.input[0], [])
    if groups > 1 and len(x) > 1 and groups == x[1]:
        return "depthwise"
    if groups == 1 and len(w) > 2 and all(k == 1 for k in w[2:]):
        return "pointwise"
    return "conv"
