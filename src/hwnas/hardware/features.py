"""Kernel-level features of a network for latency predictors (the nn-Meter idea).

Latency is spent in kernels: convolutions of a given kind, kernel size and stride, poolings,
element-wise adds. A network is described as the list of its kernels (:class:`Op`), each with
its MACs, the activation bytes it reads and writes and its weight bytes. A predictor learns
what each kind costs per MAC and per byte on one device -- a few dozen numbers instead of one
per layer and choice, so 500 measurements are enough and unseen archs are predicted well.

The built-in spaces (chain, cell, fbnet) get their kernel list analytically from the arch in
tens of microseconds, so a predictor answers far faster than a measurement. Any other space is
traced: its network is built and one forward pass records every ATen op (milliseconds).
Tests check the analytic lists against the traced ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.core.threads import torch_threads_kept
from hwnas.space.vocab.cell import EDGES
from hwnas.space.vocab.chain import parse_op
from hwnas.space.vocab.fbnet import SKIP, parse_block

if TYPE_CHECKING:
    from torch import nn

    from hwnas.space.base import Arch, Space

Shape = tuple[int, int, int]
F32 = 4  # bytes per element: predictors describe the fp32 network


@dataclass(frozen=True)
class Op:
    """One kernel of the network: what it computes and the memory it touches."""

    kind: str  # conv | dwconv | gconv | linear | pool | gap | add | act | bn | mul | copy
    macs: int
    in_bytes: int
    out_bytes: int
    weight_bytes: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    slot: str = ""  # the position in the space the op belongs to ("L3", "cell4.e2"), if known

    @property
    def key(self) -> str:
        """Kind, kernel and stride: kernels of one key share an efficiency on a device."""
        k = f"{self.kind}{self.kernel}" if self.kind in _SIZED else self.kind
        return k + (f"s{self.stride}" if self.stride > 1 else "")


_SIZED = {"conv", "dwconv", "gconv", "pool"}


def _out(size: int, k: int, stride: int, pad: int | None = None) -> int:
    pad = k // 2 if pad is None else pad
    return (size + 2 * pad - k) // stride + 1


class _Net:
    """Builds an op list while tracking the current activation shape."""

    def __init__(self, shape: Shape, slot: str = "") -> None:
        self.c, self.h, self.w = shape
        self.ops: list[Op] = []
        self.slot = slot

    @property
    def shape(self) -> Shape:
        return (self.c, self.h, self.w)

    def conv(self, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        cin, h, w = self.shape
        ho, wo = _out(h, k, stride), _out(w, k, stride)
        if groups > 1 and groups == cin == cout:
            kind = "dwconv"
        else:
            kind = "gconv" if groups > 1 else "conv"
        weights = cout * (cin // groups) * k * k
        self.ops.append(
            Op(
                kind,
                macs=weights * ho * wo,
                in_bytes=F32 * cin * h * w,
                out_bytes=F32 * cout * ho * wo,
                weight_bytes=F32 * weights,
                kernel=k,
                stride=stride,
                groups=groups,
                slot=self.slot,
            )
        )
        self.c, self.h, self.w = cout, ho, wo

    def eltwise(self, kind: str, inputs: int = 1) -> None:
        n = F32 * self.c * self.h * self.w
        self.ops.append(Op(kind, 0, inputs * n, n, slot=self.slot))

    def pool(self, k: int, stride: int, pad: int) -> None:
        cin, h, w = self.shape
        ho, wo = _out(h, k, stride, pad), _out(w, k, stride, pad)
        self.ops.append(
            Op(
                "pool",
                macs=cin * ho * wo * k * k,
                in_bytes=F32 * cin * h * w,
                out_bytes=F32 * cin * ho * wo,
                kernel=k,
                stride=stride,
                slot=self.slot,
            )
        )
        self.h, self.w = ho, wo

    def head(self, num_classes: int) -> None:
        """Global average pool and the linear classifier."""
        self.slot = "head"
        c, h, w = self.shape
        self.ops.append(Op("gap", c * h * w, F32 * c * h * w, F32 * c, slot="head"))
        self.ops.append(
            Op(
                "linear",
                macs=c * num_classes,
                in_bytes=F32 * c,
                out_bytes=F32 * num_classes,
                weight_bytes=F32 * (c * num_classes + num_classes),
                slot="head",
            )
        )


# -------------------------------------------------------------- analytic op lists
class Segments(ABC):
    """A built-in space's network as a list of segments (stem, one per block, head).

    A segment's key fixes its ops completely (choice, position, shapes), so a featurizer can
    turn each distinct segment into a feature vector once and add cached vectors afterwards.
    """

    def __init__(self, space: Any, shape: Shape, num_classes: int) -> None:
        self.space, self.shape, self.num_classes = space, shape, num_classes

    @abstractmethod
    def segments(self, arch: Arch) -> list[Hashable]:
        """The keys of ``arch``'s segments in network order (repeats allowed)."""

    @abstractmethod
    def segment_ops(self, key: Any) -> list[Op]:
        """The kernels of one segment."""

    def ops(self, arch: Arch) -> list[Op]:
        return [op for key in self.segments(arch) for op in self.segment_ops(key)]


def _after(size: int, stride: int) -> int:
    return _out(size, 3, stride)


class ChainSegments(Segments):
    """Chain space (mirrors ``space/blocks.py``): stem, each built MBConv, head."""

    def segments(self, arch: Arch) -> list[Hashable]:
        """Stem, each built block with its input (channels, h, w), head; a stage that builds
        nothing (depth 0) neither strides nor changes channels."""
        cfg = self.space.cfg
        keys: list[Hashable] = ["stem"]
        c = cfg.stem_channels
        h, w = _after(self.shape[1], cfg.stem_stride), _after(self.shape[2], cfg.stem_stride)
        for i, st in enumerate(self.space.canonical(arch)["stages"]):
            for j, op in enumerate(st["ops"]):
                keys.append((i, j, c, st["width"], op, h, w))
                if j == 0:
                    h, w = _after(h, cfg.stages[i].stride), _after(w, cfg.stages[i].stride)
                c = st["width"]
        keys.append(("head", c, h, w))
        return keys

    def segment_ops(self, key: Any) -> list[Op]:
        cfg = self.space.cfg
        if key == "stem":
            net = _Net(self.shape, "stem")
            net.conv(cfg.stem_channels, 3, cfg.stem_stride)
            return net.ops
        if key[0] == "head":
            net = _Net((key[1], key[2], key[3]), "head")
            if cfg.head_channels:
                net.conv(cfg.head_channels, 1)
            net.head(self.num_classes)
            return net.ops
        i, j, cin, cout, op, h, w = key
        stride = cfg.stages[i].stride if j == 0 else 1
        net = _Net((cin, h, w), f"s{i}.b{j}")
        k, e = parse_op(op)
        if e != 1:
            net.conv(cin * e, 1)
        net.conv(cin * e, k, stride, groups=cin * e)
        net.conv(cout, 1)
        if stride == 1 and cin == cout:
            net.eltwise("add", 2)
        return net.ops


class CellSegments(Segments):
    """NB201 cell network (mirrors ``space/cell_modules.py``): stem, edges, reductions, head."""

    def segments(self, arch: Arch) -> list[Hashable]:
        keys: list[Hashable] = ["stem"]
        for stage in range(3):
            if stage:
                keys.append(("red", stage))
            cell = [("edge", stage, e, op) for e, op in enumerate(arch["ops"])]
            keys += cell * self.space.cfg.cells_per_stage
        keys.append("head")
        return keys

    def _stage_shape(self, stage: int) -> Shape:
        c, h, w = self.space.cfg.channels, self.shape[1], self.shape[2]
        for _ in range(stage):
            c, h, w = 2 * c, _out(h, 3, 2), _out(w, 3, 2)
        return (c, h, w)

    def segment_ops(self, key: Any) -> list[Op]:
        if key == "stem":
            net = _Net(self.shape, "stem")
            net.conv(self.space.cfg.channels, 3)
            return net.ops
        if key == "head":
            net = _Net(self._stage_shape(2), "head")
            net.eltwise("bn")
            net.eltwise("act")
            net.head(self.num_classes)
            return net.ops
        if key[0] == "red":
            cin, h, w = self._stage_shape(key[1] - 1)
            net = _Net((cin, h, w), f"red{key[1]}")
            net.eltwise("act")
            net.conv(cin * 2, 3, 2)
            net.eltwise("act")
            net.conv(cin * 2, 3)
            net.c, net.h, net.w = cin, h, w
            net.pool(2, 2, 0)
            net.conv(cin * 2, 1)
            net.eltwise("add", 2)
            return net.ops
        _, stage, e, op = key
        net = _Net(self._stage_shape(stage), f"st{stage}.e{e}")
        if op == "none":
            net.eltwise("mul")
        elif op in ("nor_conv_1x1", "nor_conv_3x3"):
            net.eltwise("act")
            net.conv(net.c, 1 if op == "nor_conv_1x1" else 3)
        elif op == "avg_pool_3x3":
            net.pool(3, 1, 1)
        to, frm = EDGES[e]
        if frm > 0:  # the second and later terms into a node are added
            net.eltwise("add", 2)
        return net.ops


class FbnetSegments(Segments):
    """FBNet network (mirrors ``space/fbnet_modules.py``): stem, 22 layers, head."""

    def __init__(self, space: Any, shape: Shape, num_classes: int) -> None:
        super().__init__(space, shape, num_classes)
        s = space.cfg.stem_stride
        h, w = _after(shape[1], s), _after(shape[2], s)
        self.sizes = []
        for _cin, _cout, stride in space.layers:
            self.sizes.append((h, w))
            h, w = _after(h, stride), _after(w, stride)
        self.final = (h, w)

    def segments(self, arch: Arch) -> list[Hashable]:
        return ["stem", *((i, b) for i, b in enumerate(arch["blocks"])), "head"]

    def segment_ops(self, key: Any) -> list[Op]:
        space = self.space
        if key == "stem":
            net = _Net(self.shape, "stem")
            net.conv(space.stem_channels, 3, space.cfg.stem_stride)
            return net.ops
        if key == "head":
            net = _Net((space.layers[-1][1], *self.final), "head")
            if space.head_channels:
                net.conv(space.head_channels, 1)
            net.head(self.num_classes)
            return net.ops
        i, block = key
        cin, cout, stride = space.layers[i]
        net = _Net((cin, *self.sizes[i]), f"L{i}")
        if block == SKIP:
            if cin != cout or stride != 1:
                net.conv(cout, 1, stride)
            return net.ops
        k, e, g = parse_block(block)
        net.conv(cin * e, 1, groups=g)
        if g > 1:
            net.eltwise("copy")
        net.conv(cin * e, k, stride, groups=cin * e)
        net.conv(cout, 1, groups=g)
        if stride == 1 and cin == cout:
            net.eltwise("add", 2)
        return net.ops


# ---------------------------------------------------------------------- tracing
def trace_ops(model: nn.Module, shape: Shape) -> list[Op]:
    """Every kernel of one batch-1 forward of ``model``, recorded at the ATen level."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    acts = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default}
    acts |= {aten.clamp.default, aten.sigmoid.default, aten.gelu.default, aten.silu.default}
    bns = {aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default}
    ops: list[Op] = []
    # a BN or activation right after a conv is folded into it by runtimes: not a kernel
    last_conv = [-1]  # storage of the latest conv (or conv + folded op) output

    def nbytes(t: Any) -> int:
        return F32 * t.numel() if isinstance(t, torch.Tensor) else 0

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            res = out[0] if isinstance(out, tuple | list) else out
            if func is aten.convolution.default:
                x, w, stride, groups = args[0], args[1], args[3][0], args[8]
                kind = "conv"
                if groups > 1:
                    dw = groups == x.shape[1] == w.shape[0]
                    kind = "dwconv" if dw else "gconv"
                k = w.shape[-1]
                macs = w.numel() * res.shape[-1] * res.shape[-2]
                ops.append(Op(kind, macs, nbytes(x), nbytes(res), nbytes(w), k, stride, groups))
                last_conv[0] = res.untyped_storage().data_ptr()
            elif func in (aten.addmm.default, aten.mm.default):
                a, b = (args[1], args[2]) if func is aten.addmm.default else (args[0], args[1])
                macs = a.shape[0] * a.shape[1] * b.shape[1]
                bias = nbytes(args[0]) if func is aten.addmm.default else 0
                ops.append(Op("linear", macs, nbytes(a), nbytes(res), nbytes(b) + bias))
            elif func in (aten.avg_pool2d.default, aten.max_pool2d_with_indices.default):
                x, k = args[0], args[1][0]
                stride = (args[2] or args[1])[0] if len(args) > 2 else k
                ops.append(Op("pool", res.numel() * k * k, nbytes(x), nbytes(res), 0, k, stride))
            elif func in (aten.mean.dim, aten._adaptive_avg_pool2d.default):
                ops.append(Op("gap", args[0].numel(), nbytes(args[0]), nbytes(res)))
            elif func in (aten.add.Tensor, aten.add_.Tensor) and all(
                isinstance(a, torch.Tensor) and a.numel() > 1 for a in args[:2]
            ):
                ops.append(Op("add", 0, nbytes(args[0]) + nbytes(args[1]), nbytes(res)))
            elif func in acts or func in bns:
                if args[0].untyped_storage().data_ptr() == last_conv[0]:
                    last_conv[0] = res.untyped_storage().data_ptr()
                else:
                    ops.append(Op("bn" if func in bns else "act", 0, nbytes(args[0]), nbytes(res)))
            elif func in (aten.mul.Tensor, aten.mul.Scalar):
                ops.append(Op("mul", 0, nbytes(args[0]), nbytes(res)))
            elif func is aten.clone.default:
                ops.append(Op("copy", 0, nbytes(args[0]), nbytes(res)))
            return out

    model = model.eval()
    # a tiny forward: one thread is faster on a busy host
    with torch_threads_kept(1), torch.no_grad(), Recorder():
        model(torch.zeros(1, *shape))
    return ops


# ---------------------------------------------------------------------- dispatch
def segments_for(space: Space, shape: Shape, num_classes: int) -> Segments | None:
    """The analytic description of ``space``'s networks, or None if they must be traced."""
    from hwnas.space.cell import CellSpace
    from hwnas.space.chain import ChainSpace
    from hwnas.space.fbnet import FbnetSpace

    # exact types: a subclass may build something else
    kinds: dict[type, type[Segments]] = {
        ChainSpace: ChainSegments,
        CellSpace: CellSegments,
        FbnetSpace: FbnetSegments,
    }
    cls = kinds.get(type(space))
    return cls(space, shape, num_classes) if cls is not None else None


def kernel_ops(
    space: Space,
    arch: Arch,
    shape: Shape,
    num_classes: int,
    model: nn.Module | None = None,
) -> list[Op]:
    """The kernels of ``arch``'s network: analytic for built-in spaces, else traced."""
    seg = segments_for(space, shape, num_classes)
    if seg is not None:
        return seg.ops(arch)
    if model is None:
        model = space.build(arch, shape, num_classes)
    return trace_ops(model, shape)
