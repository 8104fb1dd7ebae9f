"""Zero-cost proxies: a score of an untrained net from one batch, to rank archs without training.

Each proxy takes the freshly initialised net, a batch of real training images and their
labels, and returns one number, larger meaning "likely more accurate". The net is never
changed: every proxy works on a copy. Definitions follow the papers:

- ``synflow`` (Tanaka et al. 2020; as a proxy, Abdelfattah et al. 2021): parameters made
  positive, an all-ones input in float64, ``sum |theta * dR/dtheta|`` with R the output sum;
  BatchNorm in eval mode (at initialisation an affine identity), so no data is needed.
- ``grad_norm``: the sum of the L2 norms of the loss gradients of conv and linear weights.
- ``snip`` (Lee et al. 2019): ``sum |theta * dL/dtheta|`` over conv and linear weights.
- ``naswot`` (Mellor et al. 2021): the log-determinant of the kernel of binary activation
  codes (which ReLUs fire) between the images of the batch.
- ``jacob_cov`` (Mellor et al. 2020): how correlated the input Jacobians of the images are,
  ``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues v of their correlation matrix.
- ``zico`` (Li et al. 2023): per layer, the log of the summed ratio of the gradients' mean
  absolute value to their standard deviation across the batch's halves.
- ``meco`` (Jiang et al. 2023): the sum, over every feature map the net computes, of the
  smallest eigenvalue of the Pearson correlation matrix between its channels (each channel's
  values over the spatial positions of one image). Channels that are not near-copies of
  each other leave the smallest eigenvalue away from zero.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish)


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _loss_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    net.train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return [w.grad if w.grad is not None else torch.zeros_like(w) for w in _weights(net)]


def _forward_watching(
    net: nn.Module, x: torch.Tensor, modules: Sequence[nn.Module], hook: Callable[..., None]
) -> None:
    """One forward pass without gradients, ``hook`` called on each of ``modules``' outputs."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()


def synflow(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones(1, *x.shape[1:], dtype=torch.float64, device=x.device)).sum().backward()
    with torch.no_grad():
        return float(sum((w * w.grad).abs().sum() for w in _weights(net) if w.grad is not None))


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    grads = _loss_grads(copy.deepcopy(net), x, y)
    return float(sum(g.norm() for g in grads))


def snip(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net)
    grads = _loss_grads(net, x, y)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(_weights(net), grads, strict=True)))


def naswot(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net).train()
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def hook(_: nn.Module, __: object, out: torch.Tensor) -> None:
        code = (out.detach().flatten(1) > 0).double()
        kernel.add_(code @ code.T + (1 - code) @ (1 - code).T)

    activations = [m for m in net.modules() if isinstance(m, _ACTIVATIONS)]
    if not activations:
        raise ValueError("naswot: the net has no activation modules to read codes from")
    _forward_watching(net, x, activations, hook)
    return float(torch.linalg.slogdet(kernel)[1])


def jacob_cov(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net).train()
    x = x.clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    assert x.grad is not None
    jac = x.grad.reshape(x.shape[0], -1).double()
    corr = torch.corrcoef(jac)
    corr = torch.nan_to_num(corr, nan=0.0)  # an image whose Jacobian is constant
    v = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-(torch.log(v.clamp_min(0) + k) + 1.0 / (v.clamp_min(0) + k)).sum())


def zico(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net)
    half = x.shape[0] // 2
    if half < 1:
        raise ValueError("zico needs a batch of at least 2 images")
    per_split = [_loss_grads(net, x[s], y[s]) for s in (slice(0, half), slice(half, 2 * half))]
    score = 0.0
    for layer in zip(*per_split, strict=True):
        g = torch.stack([t.flatten() for t in layer]).double()
        mean, std = g.abs().mean(0), g.std(0, unbiased=False)
        keep = std > 0
        total = float((mean[keep] / std[keep]).sum())
        if total > 0:
            score += math.log(total)
    return score


def meco(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(net).train()  # batch statistics from the whole batch, as trained
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    maps = 0

    def hook(_: nn.Module, __: object, out: object) -> None:
        nonlocal total, maps
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] < 2:
            return
        fmap = out[0].detach().flatten(1).double()  # the first image: channels x positions
        if fmap.shape[1] < 2:  # one position: no correlation to read
            return
        corr = torch.nan_to_num(torch.corrcoef(fmap), nan=0.0)  # a constant channel: 0
        total = total + torch.linalg.eigvalsh(corr)[0]
        maps += 1

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    _forward_watching(net, x, leaves, hook)
    if not maps:
        raise ValueError("meco: the net computes no feature map with 2+ channels and positions")
    return float(total)


PROXIES: dict[str, Proxy] = {
    "synflow": synflow,
    "grad_norm": grad_norm,
    "snip": snip,
    "naswot": naswot,
    "jacob_cov": jacob_cov,
    "zico": zico,
    "meco": meco,
}
