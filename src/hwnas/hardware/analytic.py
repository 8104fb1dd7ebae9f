"""Costs that need neither training nor a runtime: counted from the module itself.

MACs come from ``torch.utils.flop_counter`` (2 FLOPs per multiply-accumulate). Peak memory is
observed, not modelled: every tensor an op produces during one batch-1 forward is tracked until
it is freed, so residual branches kept alive, in-place ops and views count as they do in eager
execution.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode


class _LiveActivations(TorchDispatchMode):
    """Tracks bytes of live op outputs (by storage) and remembers the peak."""

    def __init__(self, initial: int) -> None:
        super().__init__()
        self.current = initial
        self.peak = initial
        self._owners: dict[int, int] = {}  # storage ptr -> live tensors referencing it

    def _release(self, key: int, nbytes: int) -> None:
        self._owners[key] -= 1
        if self._owners[key] == 0:
            del self._owners[key]
            self.current -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in inputs:
                continue  # in-place ops return their input: no new memory
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if key not in self._owners:
                self._owners[key] = 0
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            self._owners[key] += 1
            weakref.finalize(t, self._release, key, nbytes)
        return out


@torch.no_grad()
def peak_activation_bytes(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Peak bytes of live activations (input included) in a batch-1 eager forward."""
    model.eval()
    x = torch.zeros(1, *input_shape)
    mode = _LiveActivations(x.untyped_storage().nbytes())
    with mode:
        y = model(x)
    del y
    return int(mode.peak)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops() // 2)


def analytic_costs(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, float]:
    """params, macs, peak_memory_bytes, model_bytes (fp32) and model_bytes_int8."""
    params = sum(p.numel() for p in model.parameters())
    return {
        "params": float(params),
        "macs": float(count_macs(model, input_shape)),
        "peak_memory_bytes": float(peak_activation_bytes(model, input_shape)),
        "model_bytes": float(4 * params),
        "model_bytes_int8": float(params),
    }
