"""Targets: turn the validated ``target`` / ``costs`` sections into meters and cost models.

Measured runtimes (``cpu-ort``, ``cpu-torch``, ``cuda-torch``) are :class:`LatencyMeter`s: the
search re-times their readings before the front is reported. Every other kind registers a
factory in :data:`COST_MODELS` that builds a :class:`~hwnas.hardware.base.CostModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hwnas.experiment.config import CpuOrtTarget, CpuTorchTarget, CudaTorchTarget
from hwnas.hardware.base import Candidate, CostModel

if TYPE_CHECKING:
    from hwnas.experiment.config import TargetConfig
    from hwnas.hardware.profile import LatencyMeter

MEASURED_KINDS = {"cpu-ort", "cpu-torch", "cuda-torch"}
#: kinds the evaluator handles itself (analytic costs come with every built model)
BUILTIN_KINDS = MEASURED_KINDS | {"analytic", "tabular"}

#: name -> factory(config) for every other target kind; modules register themselves here
COST_MODELS: dict[str, Callable[[Any], CostModel]] = {}


def make_meter(cfg: TargetConfig) -> LatencyMeter | None:
    """The latency meter of a measured target; None for targets that measure nothing here."""
    from hwnas.hardware import profile

    if not isinstance(cfg, CpuOrtTarget | CpuTorchTarget | CudaTorchTarget):
        return None
    common = {"warmup": cfg.warmup, "runs": cfg.runs, "blocks": cfg.blocks, "batch": cfg.batch}
    if isinstance(cfg, CpuOrtTarget):
        return profile.OrtCpuMeter(threads=cfg.threads, **common)
    if isinstance(cfg, CpuTorchTarget):
        return profile.TorchCpuMeter(threads=cfg.threads, **common)
    return profile.TorchCudaMeter(cuda_graphs=cfg.cuda_graphs, **common)


class MeterCostModel(CostModel):
    """A measured runtime used as an extra cost source (an entry of ``costs``)."""

    def __init__(self, meter: LatencyMeter) -> None:
        self.meter = meter

    def costs(self, cand: Candidate) -> dict[str, float]:
        assert cand.model is not None
        t = self.meter.measure(cand.model, cand.input_shape)
        return {"latency_ms": t.latency_ms, "latency_spread": t.spread}


def _register_builtin_modules() -> None:
    """Import the modules that register cost-model kinds (lazily: they may import torch)."""
    import importlib

    for mod in ("lut", "predictor", "device", "remote"):
        try:
            importlib.import_module(f"hwnas.hardware.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hwnas.hardware.{mod}":
                raise


def make_cost_model(cfg: TargetConfig) -> CostModel | None:
    """A cost model for ``cfg``; None for kinds the evaluator handles itself."""
    if cfg.name in BUILTIN_KINDS:
        if cfg.name in MEASURED_KINDS:
            meter = make_meter(cfg)
            assert meter is not None
            return MeterCostModel(meter)
        return None
    if cfg.name not in COST_MODELS:
        _register_builtin_modules()
    return COST_MODELS[cfg.name](cfg)
