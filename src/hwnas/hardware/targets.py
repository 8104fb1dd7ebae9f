"""Targets: which runtime measures latency, built from the validated ``target`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwnas.experiment.config import CpuOrtTarget, CpuTorchTarget, CudaTorchTarget

if TYPE_CHECKING:
    from hwnas.experiment.config import TargetConfig
    from hwnas.hardware.profile import LatencyMeter


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
