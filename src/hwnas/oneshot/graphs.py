"""The supernet trainer's soft-mixture steps replayed as CUDA graphs (``supernet.cuda_graphs``).

Why: a supernet of small convs is bound by the host, not the GPU. The NB201 supernet's soft
step at batch 64 ran 5 889 backend ops in 130 ms on an H100 with the GPU busy 17 % of the time
(docs/oneshot.md): most of a step is Python and dispatch. A step whose shapes never change can
be recorded once and replayed as one graph launch.

What is captured is the forward and backward alone, for each of the two steps:
- w's step: the cross-entropy along the mixture weights, its gradient into every weight's
  ``.grad`` (the optimiser, clipping and learning-rate schedule stay eager: the rate changes
  every step, and a captured optimiser would bake it in);
- theta's step: the cross-entropy with w frozen, its gradient with respect to the mixture
  weights (on the GPU); the caller carries it back to theta on the CPU, where the cost and
  regulariser terms are (tiny tensors, and their random draws stay the CPU's).

Each step runs ``WARM`` times eagerly on a side stream first (cuDNN picks its algorithms, the
allocator settles; capture requires it), then is captured; a batch of another shape runs
eagerly. Only the soft mixtures (``soft``, ``softmax``) qualify: a hard step runs another path
each time. A capture that fails stops the run with a one-line error (PyTorch cannot unwind a
broken capture, so falling back would run on in an unknown state). Results match the eager
steps' up to floating-point order, not bit for bit.

Memory: the two graphs share one private pool (``torch.cuda.graph`` hands the eager warm-up
steps' cached blocks back before it captures). A graph's pool holds its activations for good,
so two pools held two copies of a step's activations (the chain supernet at batch 256 saves
~24 GiB a step, estimated on the CPU). Sharing is safe here because the steps never run at
once and each step's outputs (w's ``.grad``, theta's CE and gradients) are used before the
other graph replays: a replay may overwrite only what the other graph freed while it was
captured, or its outputs once they have been read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.core.errors import UserError

#: eager steps of each kind before it is captured
WARM = 3


class GraphCaptureFailed(UserError):
    """The supernet's step could not be recorded as a CUDA graph."""


class _Captured:
    """``fn(*inputs)`` recorded as a CUDA graph on static copies of its inputs."""

    def __init__(
        self, fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], pool: Any = None
    ) -> None:
        self.inputs = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.out = fn(*self.inputs)

    def fits(self, inputs: list[torch.Tensor]) -> bool:
        return all(s.shape == t.shape for s, t in zip(self.inputs, inputs, strict=True))

    def __call__(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            for s, t in zip(self.inputs, inputs, strict=True):
                s.copy_(t)
        self.graph.replay()
        return self.out


class GraphedSteps:
    """The forward-and-backward halves of a soft-mixture supernet's w and theta steps."""

    def __init__(self, net: nn.Module, precision: str) -> None:
        self.net = net
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        self.side = torch.cuda.Stream()
        self._w: _Captured | None = None
        self._t: _Captured | None = None
        self._eager = {"w": 0, "theta": 0}
        self._pool: Any = None  # the first capture's memory pool, shared by the second
        self.failed = False  # a capture failed (the run stops); the CPU test's stand-in: eager

    # ----------------------------------------------------------------- the two steps
    def _ce(self, x: torch.Tensor, y: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        # no autocast cache: casts made while capturing would be kept across replays
        with torch.autocast("cuda", dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None, cache_enabled=False):  # fmt: skip
            logits = self.net(x, list(weights))
        return F.cross_entropy(logits.float(), y)

    def _w_fn(self, x: torch.Tensor, y: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        loss = self._ce(x, y, *weights)
        loss.backward()
        return loss.detach()

    def _theta_fn(self, x: torch.Tensor, y: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        self.net.requires_grad_(False)  # w is only differentiated through
        try:
            loss = self._ce(x, y, *weights)
            loss.backward()
        finally:
            self.net.requires_grad_(True)
        return loss.detach()

    def w_grads(self, x: torch.Tensor, y: torch.Tensor, weights: list[torch.Tensor]) -> Any:
        """w's gradient of the CE on (x, y) along the mixture ``weights`` (device tensors)
        written into every weight's ``.grad``; returns the CE (a device scalar)."""
        inputs = [x, y, *(w.detach() for w in weights)]
        if self._w is None and not self.failed and self._eager["w"] >= WARM:
            for p in self.net.parameters():
                p.grad = None  # the captured backward writes, not adds, into its own grads
            self._w = self._capture(self._w_fn, inputs)
        if self._w is not None and self._w.fits(inputs):
            return self._w(inputs)
        for p in self.net.parameters():  # in place: a captured graph's grads stay its own
            if p.grad is not None:
                p.grad.zero_()
        self._eager["w"] += 1
        return self._on_side(self._w_fn, inputs)

    def theta_grads(
        self, x: torch.Tensor, y: torch.Tensor, weights: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The CE on (x, y) along ``weights`` with w frozen, and its gradient with respect to
        each of ``weights`` (device tensors, as given)."""
        leaves = [w.detach().requires_grad_(True) for w in weights]
        inputs = [x, y, *leaves]
        if self._t is None and not self.failed and self._eager["theta"] >= WARM:
            self._t = self._capture(self._theta_fn, inputs)
        if self._t is not None and self._t.fits(inputs):
            ce = self._t(inputs)
            grads = [s.grad for s in self._t.inputs[2:]]
        else:
            self._eager["theta"] += 1
            ce = self._on_side(self._theta_fn, inputs)
            grads = [s.grad for s in leaves]
        assert all(g is not None for g in grads)
        return ce, [g for g in grads if g is not None]

    # -------------------------------------------------------------------- plumbing
    def _on_side(self, fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor]) -> Any:
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = fn(*inputs)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def _capture(
        self, fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor]
    ) -> _Captured | None:
        try:  # (entering a capture hands the eager steps' cached blocks back first)
            captured = _Captured(fn, inputs, self._pool)
            if self._pool is None:
                self._pool = captured.graph.pool()
            return captured
        except Exception as exc:
            # fatal: a capture that failed leaves the capture stream current and its memory
            # pool held (PyTorch cannot unwind it), so nothing after it can be trusted
            self.failed = True
            first = exc.__context__ or exc  # ending the broken capture raises again
            raise GraphCaptureFailed(
                f"supernet.cuda_graphs: the supernet step could not be captured "
                f"({type(first).__name__}: {first}); set supernet.cuda_graphs: false"
            ) from None
