"""The built-in runtime targets as cost models: ONNX Runtime and PyTorch, timed here.

Every kind of the ``target`` / ``costs`` family is a :class:`~hwnas.hardware.base.CostModel`
built by its registered factory (:data:`hwnas.core.registry.cost_models`). The measured
runtimes hold a :class:`LatencyMeter`; they time on this machine, so the search re-times their
readings on the quiet machine before the front is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.core.registry import cost_models
from hwnas.hardware.base import Candidate, CostModel

if TYPE_CHECKING:
    from hwnas.hardware.config import CostModelConfig
    from hwnas.hardware.profile import LatencyMeter


class MeasuredCostModel(CostModel):
    """Latency timed on a runtime of this machine."""

    local: ClassVar[bool] = True
    retry_on_violation: ClassVar[bool] = True

    def __init__(self, meter: LatencyMeter) -> None:
        self.meter = meter

    def costs(self, cand: Candidate) -> dict[str, float]:
        assert cand.model is not None
        t = self.meter.measure(cand.model, cand.input_shape)
        return {"latency_ms": t.latency_ms, "latency_spread": t.spread}

    def remeasure(self, cand: Candidate) -> dict[str, float] | None:
        return self.costs(cand)


def _common(cfg: Any) -> dict[str, int]:
    return {"warmup": cfg.warmup, "runs": cfg.runs, "blocks": cfg.blocks, "batch": cfg.batch}


def cpu_ort(cfg: Any) -> MeasuredCostModel:
    from hwnas.hardware.profile import OrtCpuMeter

    return MeasuredCostModel(OrtCpuMeter(threads=cfg.threads, **_common(cfg)))


def cpu_torch(cfg: Any) -> MeasuredCostModel:
    from hwnas.hardware.profile import TorchCpuMeter

    return MeasuredCostModel(TorchCpuMeter(threads=cfg.threads, **_common(cfg)))


def cuda_torch(cfg: Any) -> MeasuredCostModel:
    from hwnas.hardware.profile import TorchCudaMeter

    return MeasuredCostModel(TorchCudaMeter(cuda_graphs=cfg.cuda_graphs, **_common(cfg)))


class AnalyticCostModel(CostModel):
    """Nothing beyond the analytic costs every built model gets (deterministic)."""

    counts = True

    def __init__(self, cfg: Any = None) -> None:
        pass

    def costs(self, cand: Candidate) -> dict[str, float]:
        return {}


def make_cost_model(cfg: CostModelConfig) -> CostModel:
    """The cost model of a validated ``target`` section or ``costs`` entry."""
    model: CostModel = cost_models.create(cfg)
    return model


def make_meter(cfg: CostModelConfig) -> LatencyMeter | None:
    """The latency meter of a target timed on this machine; None for every other kind."""
    from hwnas.hardware.config import MeasuredTargetConfig

    if not isinstance(cfg, MeasuredTargetConfig):
        return None
    meter: LatencyMeter = make_cost_model(cfg).meter  # type: ignore[attr-defined]
    return meter
