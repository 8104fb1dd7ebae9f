"""Datasheet device models: per-layer roofline latency, energy and MCUNet-style memory.

For chips one only has a datasheet for (an MCU, an NPU, an edge GPU), cost comes from a spec
file (:mod:`hwnas.hardware.devices`) and the network's layers:

1. **Trace** one batch-1 eval forward at the ATen level (a dispatch mode, so functional ops
   such as residual adds and flattens are seen too), then rewrite it the way deployment
   runtimes do: views cost nothing, batch norm folds into the preceding conv/linear (leaving a
   per-channel bias), and an activation whose input has no other reader fuses into its
   producer.
2. **Roofline** per layer: ``max(ops / (peak * efficiency[kind]), act_bytes / act_bw +
   weight_bytes / weight_bw) + per_layer_overhead``; latency is the sum plus a per-inference
   overhead. Energy is ``ops * pJ/MAC + bytes * pJ/byte`` of each memory.
3. **Memory** as in MCUNet (Lin et al., 2020): peak SRAM is the largest sum, over layers, of
   the tensors alive while the layer runs -- its inputs, its output and any tensor produced
   earlier but read later (residual skips) -- at activation precision; flash is every weight
   once at weight precision (biases in int32 under int8, as in the TFLite int8 scheme), plus
   the spec's runtime budget.

Registered as the ``device`` cost model; metrics ``latency_ms``, ``energy_mj``,
``peak_sram_bytes``, ``flash_bytes``. docs/devices.md says what the model ignores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hwnas.hardware.base import Candidate, CostModel
from hwnas.hardware.devices import PRECISION_BYTES, DeviceSpec, load_spec

if TYPE_CHECKING:
    from hwnas.hardware.config import DeviceTarget

_POOL = {
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "mean",
    "amax",
    "sum",
}
_BATCH_NORM = {
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "batch_norm",
}
_ACTIVATION = {
    "relu",
    "relu6",
    "hardtanh",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sigmoid",
    "silu",
    "gelu",
    "hardswish",
    "hardsigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "mish",
}
_MATMUL = {"addmm": 1, "mm": 0, "bmm": 0, "baddbmm": 1}  # op -> index of the activation matrix
_NO_OP = {"detach", "alias", "lift_fresh", "clone", "contiguous", "dropout", "_to_copy"}
_FUSE_TARGETS = {"conv", "depthwise", "pointwise", "linear"}


@dataclass
class Layer:
    """One deployed layer (after folding and fusion); sizes are element counts."""

    index: int
    name: str  # module path and ATen op, e.g. "blocks.0.body.1.0:convolution"
    kind: str  # conv | depthwise | pointwise | linear | pool | elementwise
    op: str
    macs: int  # multiply-accumulates (conv / linear only)
    ops: int  # MAC-equivalents that set compute time (= macs for conv / linear)
    inputs: list[int]  # activation tensor ids read
    output: int  # activation tensor id written
    weights: dict[int, int]  # weight tensor id -> elements
    bias: int = 0  # elements of a per-channel bias (own, or left by folding batch norm)
    fused: list[str] = field(default_factory=list)
    tag: str = ""  # "bn" / "act" while fusion is pending


@dataclass
class Graph:
    """The traced network: layers in execution order and every activation's size."""

    layers: list[Layer]
    sizes: dict[int, int]  # activation tensor id -> elements
    inputs: list[int]
    outputs: list[int]

    def live_elements(self) -> list[int]:
        """Elements alive while each layer runs (its inputs, output and tensors kept for later)."""
        n = len(self.layers)
        if n == 0:
            return [sum(self.sizes[t] for t in {*self.inputs, *self.outputs})]
        start: dict[int, int] = {t: 0 for t in self.inputs}
        end: dict[int, int] = {}
        for layer in self.layers:
            start[layer.output] = layer.index
            end.setdefault(layer.output, layer.index)
            for t in layer.inputs:
                end[t] = max(end.get(t, layer.index), layer.index)
        for t in self.outputs:
            end[t] = n - 1
        live = [0] * max(n, 1)
        for t, s in start.items():
            for i in range(s, end.get(t, s) + 1):
                live[i] += self.sizes[t]
        return live


class _Recorder(TorchDispatchMode):
    """Records every ATen op of a forward as a layer over logical tensor ids."""

    def __init__(self, weight_objs: dict[int, torch.Tensor]) -> None:
        super().__init__()
        self.ids: dict[int, int] = {}  # id(tensor object) -> logical id
        self.keep: list[torch.Tensor] = []  # hold objects so Python ids stay unique
        self.weight_ids: set[int] = set()
        self.sizes: dict[int, int] = {}
        self.layers: list[Layer] = []
        self.scope: list[str] = [""]
        for t in weight_objs.values():
            self._new(t, weight=True)

    def _new(self, t: torch.Tensor, weight: bool = False) -> int:
        lid = len(self.sizes)
        self.ids[id(t)] = lid
        self.sizes[lid] = t.numel()
        self.keep.append(t)
        if weight:
            self.weight_ids.add(lid)
        return lid

    def lid(self, t: torch.Tensor) -> int:
        found = self.ids.get(id(t))
        # a tensor no traced op produced is a constant of the graph: stored like a weight
        return found if found is not None else self._new(t, weight=True)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not ins or not outs:
            return out  # creation ops (empty, zeros) are not layers
        name = func.overloadpacket.__name__
        base = name.rstrip("_")
        in_ids = [self.lid(t) for t in ins]
        if func.is_view or base in _NO_OP:
            for o in outs:  # an alias of its input: no bytes, no time
                self.ids[id(o)] = in_ids[0]
                self.keep.append(o)
            return out
        acts = [i for i in in_ids if i not in self.weight_ids]
        weights = {i: self.sizes[i] for i in in_ids if i in self.weight_ids}
        out_id = self._new(outs[0])  # an in-place op also yields a new version of the tensor
        y = outs[0]
        layer = Layer(
            index=len(self.layers),
            name=f"{self.scope[-1]}:{base}",
            kind="elementwise",
            op=base,
            macs=0,
            ops=y.numel(),
            inputs=acts,
            output=out_id,
            weights=weights,
        )
        if base == "convolution":
            x, w, b = args[0], args[1], args[2]
            transposed, groups = bool(args[6]), int(args[8])
            layer.macs = (
                x.numel() * w.shape[1] * math.prod(w.shape[2:])
                if transposed
                else y.numel() * math.prod(w.shape[1:])
            )
            if groups > 1 and groups == x.shape[1]:
                layer.kind = "depthwise"
            elif groups == 1 and all(k == 1 for k in w.shape[2:]):
                layer.kind = "pointwise"
            else:
                layer.kind = "conv"
            if isinstance(b, torch.Tensor):
                layer.weights.pop(self.lid(b), None)
                layer.bias = b.numel()
        elif base in _MATMUL:
            layer.kind = "linear"
            layer.macs = y.numel() * args[_MATMUL[base]].shape[-1]
            if base == "addmm" and isinstance(args[0], torch.Tensor):
                bias = self.lid(args[0])
                if bias in layer.weights:
                    layer.weights.pop(bias)
                    layer.bias = args[0].numel()
        elif base in _POOL:
            layer.kind = "pool"
            layer.ops = ins[0].numel()
        elif base in _BATCH_NORM:
            layer.tag = "bn"
            channels = y.shape[1] if y.dim() > 1 else y.numel()
            layer.weights, layer.bias = {}, 2 * channels  # deployed as scale + shift
        elif base in _ACTIVATION:
            layer.tag = "act"
        if layer.macs:
            layer.ops = layer.macs
        self.layers.append(layer)
        return out


def _fusable(layer: Layer, prev: Layer) -> bool:
    """Whether ``layer`` (the only reader of ``prev``'s output) merges into ``prev``."""
    if layer.tag == "bn":  # folding needs a linear producer with nothing fused after it yet
        return prev.kind in _FUSE_TARGETS and not prev.fused
    if layer.tag == "act":  # runtimes apply activations in the producer's output loop
        return prev.kind in _FUSE_TARGETS or prev.op in ("add", "sub")
    return False


def fuse(layers: list[Layer], outputs: list[int]) -> list[Layer]:
    """Fold batch norm into its conv/linear and fuse activations into their producer."""
    readers: dict[int, int] = {t: 1 for t in outputs}
    for layer in layers:
        for t in layer.inputs:
            readers[t] = readers.get(t, 0) + 1
    producer: dict[int, Layer] = {}
    kept: list[Layer] = []
    for layer in layers:
        prev = producer.get(layer.inputs[0]) if len(layer.inputs) == 1 else None
        if prev is not None and readers[layer.inputs[0]] == 1 and _fusable(layer, prev):
            if layer.tag == "bn":  # the scale folds into the weights, the shift into a bias
                prev.bias = prev.bias or layer.bias // 2
            prev.fused.append(layer.op)
            prev.output = layer.output
            producer[layer.output] = prev
            continue
        producer[layer.output] = layer
        kept.append(layer)
    for i, layer in enumerate(kept):
        layer.index = i
    return kept


@torch.no_grad()
def trace(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """The deployed layer graph of ``model`` for one batch-1 input of ``input_shape``."""
    was_training = model.training
    model.eval()
    weight_objs = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    rec = _Recorder(weight_objs)
    names = {m: n for n, m in model.named_modules()}

    def enter(m: nn.Module, _args: Any) -> None:
        rec.scope.append(names.get(m, rec.scope[-1]))

    def leave(m: nn.Module, _args: Any, _out: Any) -> None:
        rec.scope.pop()

    handles = [m.register_forward_pre_hook(enter) for m in names] + [
        m.register_forward_hook(leave) for m in names
    ]
    x = torch.zeros(1, *input_shape)
    try:
        in_id = rec._new(x)
        with rec:
            y = model(x)
        out_ids = [rec.lid(t) for t in tree_flatten(y)[0] if isinstance(t, torch.Tensor)]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    layers = fuse(rec.layers, out_ids)
    sizes = {t: n for t, n in rec.sizes.items() if t not in rec.weight_ids}
    return Graph(layers, sizes, [in_id], out_ids)


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    macs: int
    act_bytes: float
    weight_bytes: float
    compute_s: float
    memory_s: float
    time_s: float
    energy_pj: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class DeviceEstimate:
    """Whole-network costs on one device at one precision, with the per-layer breakdown."""

    device: str
    precision: str
    layers: list[LayerCost]
    latency_ms: float
    energy_mj: float
    peak_sram_bytes: float
    flash_bytes: float
    macs: int

    def metrics(self) -> dict[str, float]:
        return {
            "latency_ms": self.latency_ms,
            "energy_mj": self.energy_mj,
            "peak_sram_bytes": self.peak_sram_bytes,
            "flash_bytes": self.flash_bytes,
        }


def estimate_graph(graph: Graph, spec: DeviceSpec, precision: str | None = None) -> DeviceEstimate:
    """Roofline latency, energy and memory of a traced graph on ``spec``."""
    prec = precision or spec.default_precision
    spec.check_precision(prec)
    nbytes = PRECISION_BYTES[prec]
    bias_bytes = 4 if prec == "int8" else nbytes  # int8 schemes keep int32 biases
    peak = spec.peak(prec)
    pj_mac = spec.pj_per_mac[prec].value  # type: ignore[index]
    act, wmem = spec.activation_memory, spec.weight_memory
    per_layer = spec.overheads.per_layer_s.value
    costs: list[LayerCost] = []
    for layer in graph.layers:
        a_bytes = nbytes * (sum(graph.sizes[t] for t in layer.inputs) + graph.sizes[layer.output])
        w_bytes = nbytes * sum(layer.weights.values()) + bias_bytes * layer.bias
        eff = getattr(spec.efficiency, layer.kind).value
        compute = layer.ops / (peak * eff)
        memory = (
            a_bytes / act.bandwidth_bytes_per_s.value + w_bytes / wmem.bandwidth_bytes_per_s.value
        )
        energy = layer.ops * pj_mac + a_bytes * act.pj_per_byte.value
        energy += w_bytes * wmem.pj_per_byte.value
        costs.append(
            LayerCost(
                name=layer.name,
                kind=layer.kind,
                macs=layer.macs,
                act_bytes=a_bytes,
                weight_bytes=w_bytes,
                compute_s=compute,
                memory_s=memory,
                time_s=max(compute, memory) + per_layer,
                energy_pj=energy,
            )
        )
    unique: dict[int, int] = {}
    for layer in graph.layers:
        unique.update(layer.weights)
    stored = nbytes * sum(unique.values()) + bias_bytes * sum(x.bias for x in graph.layers)
    seconds = sum(c.time_s for c in costs) + spec.overheads.per_inference_s.value
    return DeviceEstimate(
        device=spec.name,
        precision=prec,
        layers=costs,
        latency_ms=1e3 * seconds,
        energy_mj=1e-9 * sum(c.energy_pj for c in costs),
        peak_sram_bytes=float(nbytes * max(graph.live_elements()) + act.reserved_bytes.value),
        flash_bytes=float(stored + wmem.reserved_bytes.value),
        macs=sum(x.macs for x in graph.layers),
    )


def estimate(
    model: nn.Module,
    input_shape: tuple[int, ...],
    spec: DeviceSpec | str,
    precision: str | None = None,
) -> DeviceEstimate:
    """Trace ``model`` and estimate its costs on a device (spec object, shipped name or path)."""
    if isinstance(spec, str):
        spec = load_spec(spec)
    return estimate_graph(trace(model, input_shape), spec, precision)


class DeviceCostModel(CostModel):
    """Cost source ``device``: a spec file's roofline / energy / memory model."""

    counts = True

    def __init__(self, cfg: DeviceTarget) -> None:
        self.spec = load_spec(cfg.spec)
        self.precision = cfg.precision or self.spec.default_precision
        self.spec.check_precision(self.precision)

    def costs(self, cand: Candidate) -> dict[str, float]:
        if cand.model is None:
            raise ValueError("the device cost model needs a built model")
        return estimate(cand.model, cand.input_shape, self.spec, self.precision).metrics()


__all__ = [
    "DeviceCostModel",
    "DeviceEstimate",
    "Graph",
    "Layer",
    "LayerCost",
    "estimate",
    "estimate_graph",
    "trace",
]
