"""PyTorch building blocks shared by the spaces' nets and supernets (imported only when built)."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from hwnas.space.config import ChainSpaceConfig
from hwnas.space.vocab.chain import SKIP, parse_op


def conv_bn(
    cin: int,
    cout: int,
    k: int,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
    activation: type[nn.ReLU] | type[nn.ReLU6] = nn.ReLU6,
) -> nn.Sequential:
    """Conv (same padding, no bias) -> BN [-> activation]; shared by the chain and FBNet nets."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


def head_conv(c: int, head_channels: int, conv: Any = conv_bn) -> tuple[nn.Module, int]:
    """The optional 1x1 ``conv`` before pooling (Identity when ``head_channels`` is 0) and the
    channels it leaves; shared by the chain and FBNet nets."""
    if head_channels:
        return conv(c, head_channels, 1), head_channels
    return nn.Identity(), c


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 linear project (+ identity)."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(cin, hidden, 1))
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(conv_bn(hidden, cout, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ChainNet(nn.Module):
    """Stem -> MBConv stages -> optional 1x1 head -> global pool -> classifier."""

    def __init__(
        self,
        cfg: ChainSpaceConfig,
        canonical: dict[str, Any],
        input_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        cin = input_shape[0]
        self.stem = conv_bn(cin, cfg.stem_channels, 3, cfg.stem_stride)
        c = cfg.stem_channels
        blocks: list[nn.Module] = []
        for st_cfg, st in zip(cfg.stages, canonical["stages"], strict=True):
            for j, op in enumerate(st["ops"]):
                k, e = parse_op(op)
                blocks.append(MBConv(c, st["width"], k, e, st_cfg.stride if j == 0 else 1))
                c = st["width"]
        self.blocks = nn.Sequential(*blocks)
        self.head, c = head_conv(c, cfg.head_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))


class Choice(nn.ModuleList):
    """One supernet position: its candidate ops, what :func:`mixed` picks from. A type of its
    own so that training can treat the candidates apart from the fixed layers around them
    (e.g. DARTS's plain BatchNorm inside the ops only)."""


class ChainSupernet(nn.Module):
    """ChainNet's skeleton over the chain space's supernet sub-space: at each block position
    every op of :meth:`ChainSpace.choices` (skip: identity), built as ChainNet would build it
    there, so a derived net takes its weights by renaming (:meth:`state_for`).
    ``forward(x, path)``: see :func:`mixed`."""

    def __init__(self, space: Any, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        cfg = space.cfg
        self.stem = conv_bn(input_shape[0], cfg.stem_channels, 3, cfg.stem_stride)
        c = cfg.stem_channels
        self.names = space.choices()
        rows = []
        for (i, b), names in zip(space.positions(), self.names, strict=True):
            w, s = space.sub_widths[i], cfg.stages[i].stride if b == 0 else 1
            cin = c if b == 0 else w
            rows.append(
                Choice(
                    nn.Identity() if n == SKIP else MBConv(cin, w, *parse_op(n), s) for n in names
                )
            )
            c = w
        self.positions = nn.ModuleList(rows)
        self.head, c = head_conv(c, cfg.head_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, path: list[Any]) -> torch.Tensor:
        x = self.stem(x)
        for ops, step in zip(self.positions, path, strict=True):
            x = mixed(cast(nn.ModuleList, ops), step, x)
        x = self.head(x)
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))

    def state_for(self, picks: list[int]) -> dict[str, torch.Tensor]:
        """The state dict of the ChainNet picking ``picks``: the k-th built op is ``blocks.k``."""
        built: dict[str, str] = {}
        for j, i in enumerate(picks):
            if self.names[j][i] != SKIP:
                built[f"positions.{j}.{i}."] = f"blocks.{len(built)}."
        out: dict[str, torch.Tensor] = {}
        for key, v in self.state_dict().items():
            if not key.startswith("positions."):
                out[key] = v.clone()
                continue
            prefix = ".".join(key.split(".")[:3]) + "."
            if prefix in built:
                out[built[prefix] + key[len(prefix) :]] = v.clone()
        return out


def _channels_last(t: torch.Tensor) -> bool:
    """Laid out channels-last (and not also plain contiguous, as 1x1 maps are)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def mixed(ops: nn.ModuleList, step: Any, x: torch.Tensor) -> torch.Tensor:
    """One supernet position: ``step`` is ``(index, gate)`` -- that op alone, its output times
    ``gate`` unless None -- or a weight per op (a mixed op: the weighted sum of all)."""
    if isinstance(step, torch.Tensor):
        # one stack, one multiply, one sum, whatever the number of ops (a sum of k weighted
        # terms took 2k - 1 kernels each way): a supernet of small convs is bound by kernel
        # launches on a GPU. An op that outputs zeros (``zero = True``) adds nothing and is
        # not run; its weight's gradient is zero either way.
        # The sum keeps the outputs' dtype (bf16 under autocast: the weights are cast, as a
        # 0-dim weight times a bf16 tensor was) and their layout (channels-last is stacked as
        # NHWC views and viewed back), so the next convs need no cast or layout copy.
        live = [i for i, op in enumerate(ops) if not getattr(op, "zero", False)]
        outs = [ops[i](x) for i in live]
        nhwc = outs[0].dim() == 4 and _channels_last(outs[0])
        stacked = torch.stack([o.permute(0, 2, 3, 1) for o in outs] if nhwc else outs)
        w = step if len(live) == len(ops) else step[live[0] : live[-1] + 1]
        if len(w) != len(live):  # the zero ops are not all at the ends
            w = torch.stack([step[i] for i in live])  # no index list copied to the GPU
        w = w.to(stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
        y = (w * stacked).sum(0)
        return y.permute(0, 3, 1, 2) if nhwc else y
    i, gate = step
    y = ops[i](x)
    return y if gate is None else y * gate
