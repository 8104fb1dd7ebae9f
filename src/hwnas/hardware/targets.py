"""Targets: which runtime measures latency, built from the validated ``target`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwnas.experiment.config import TargetConfig
    from hwnas.hardware.profile import LatencyMeter


def make_meter(cfg: TargetConfig) -> LatencyMeter | None:
    """The latency meter for a target, or None for `analytic` (no runtime)."""
    from hwnas.hardware import profile

    if cfg.name == "analytic":
        return None
    common = {"warmup": cfg.warmup, "runs": cfg.runs, "blocks": cfg.blocks, "batch": cfg.batch}
    if cfg.name == "cpu-ort":
        return profile.OrtCpuMeter(threads=cfg.threads, **common)
    if cfg.name == "cpu-torch":
        return profile.TorchCpuMeter(threads=cfg.threads, **common)
    if cfg.name == "cuda-torch":
        return profile.TorchCudaMeter(cuda_graphs=cfg.cuda_graphs, **common)
    raise ValueError(f"target: unknown name {cfg.name!r}")
