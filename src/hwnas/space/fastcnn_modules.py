"""PyTorch modules of the fast-CNN space: a patch-whitening stem and plain conv groups.

The whitening stem is a k x k conv whose 2*C*k*k filters are set from the training data (the
eigenvectors of the patch covariance, scaled to unit variance, and their negatives), then kept
fixed: the net starts from decorrelated inputs, which is much of why such nets train in a few
epochs. Any trainer calls :meth:`FastCnn.init_from_data` before its first step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: PyTorch's BatchNorm momentum (the share of the new batch statistic): fast trainings run a
#: few hundred steps, so the running statistics must follow the weights quickly
BN_MOMENTUM = 0.4
BN_EPS = 1e-12


def _act(name: str) -> nn.Module:
    return nn.GELU() if name == "gelu" else nn.ReLU(inplace=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=BN_EPS)


class Whiten(nn.Conv2d):
    """A k x k patch-whitening conv (stride 1, no padding) with 2*C*k*k output channels."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__(channels, 2 * channels * kernel * kernel, kernel, padding=0, bias=True)
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Filters = eigenvectors of the patch covariance of ``x`` / sqrt(eigenvalue + eps)."""
        c, k = self.in_channels, self.kernel_size[0]
        patches = x.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / max(len(patches) - 1, 1)
        vals, vecs = torch.linalg.eigh(cov)
        filters = vecs.T / torch.sqrt(vals.clamp_min(0) + eps)[:, None]
        w = torch.cat([filters, -filters]).reshape(2 * c * k * k, c, k, k)
        self.weight.copy_(w.to(self.weight.dtype))
        if self.bias is not None:
            self.bias.zero_()


class ConvGroup(nn.Module):
    """conv -> max-pool 2 -> BN -> act (or, ``pool_first``, max-pool 2 -> conv -> BN -> act),
    then depth-1 times conv -> BN -> act, with an optional residual add around those; those
    later convs may split their channels into ``split`` groups (the first stays dense)."""

    def __init__(
        self,
        c_in: int,
        width: int,
        depth: int,
        kernel: int,
        residual: bool,
        act: str,
        pool_first: bool = False,
        split: int = 1,
    ) -> None:
        super().__init__()
        self.pool_first = pool_first
        pad = kernel // 2
        self.first = nn.Conv2d(c_in, width, kernel, padding=pad, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = _bn(width)
        self.act1 = _act(act)
        self.rest = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, kernel, padding=pad, groups=split, bias=False),
                _bn(width),
                _act(act),
            )
            for _ in range(depth - 1)
        )
        self.residual = residual and depth > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.pool(x)) if self.pool_first else self.pool(self.first(x))
        x = self.act1(self.bn1(x))
        y = x
        for layer in self.rest:
            y = layer(y)
        return x + y if self.residual else y


class FastCnn(nn.Module):
    """whiten -> act -> groups -> global max-pool -> linear (no bias) -> * logit_scale."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        groups: list[dict[str, Any]],
        act: str,
        whiten_kernel: int,
        logit_scale: float,
    ) -> None:
        super().__init__()
        self.whiten = Whiten(in_channels, whiten_kernel)
        self.act = _act(act)
        layers, c = [], self.whiten.out_channels
        for g in groups:
            first = g["pool"] == "before"
            layers.append(
                ConvGroup(
                    c, g["width"], g["depth"], g["kernel"], g["residual"], act, first, g["grouped"]
                )
            )
            c = g["width"]
        self.groups = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.logit_scale = logit_scale

    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the whitening stem from a sample of normalised training images."""
        self.whiten.init_from_data(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.logit_scale


def min_input_side(whiten_kernel: int, n_groups: int) -> int:
    """The smallest input side that leaves at least 1 pixel after every pooling."""
    return (1 << n_groups) + whiten_kernel - 1
