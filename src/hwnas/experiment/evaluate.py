"""Evaluate one candidate: costs first (cheap, no training), then training if it is feasible.

This is the unit of work an executor runs. It never raises for a bad candidate: an
unbuildable arch, a diverging loss or running out of memory become a ``failed`` outcome with
its reason, so the search goes on.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwnas.data import Dataset
from hwnas.estimate.train import TrainingDiverged, train
from hwnas.experiment.config import Constraint, ExperimentConfig
from hwnas.hardware.analytic import analytic_costs
from hwnas.hardware.profile import LatencyMeter
from hwnas.space.base import Arch, Space

log = logging.getLogger("hwnas")


@dataclass
class Outcome:
    status: str  # complete | failed | pruned
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    feasible: bool = True


def violated(constraints: list[Constraint], metrics: dict[str, Any]) -> list[str]:
    """Constraints that the known metrics break, worded for the trial's error field."""
    return [
        f"{c} (was {metrics[c.metric]:.4g})"
        for c in constraints
        if c.metric in metrics and not c.holds(metrics[c.metric])
    ]


def measure_latency(
    meter: LatencyMeter, model: torch.nn.Module, input_shape: tuple[int, int, int]
) -> dict[str, Any]:
    timing = meter.measure(model, input_shape)
    return {"latency_ms": timing.latency_ms, "latency_spread": timing.spread}


def evaluate_candidate(
    space: Space,
    arch: Arch,
    dataset: Dataset,
    cfg: ExperimentConfig,
    meter: LatencyMeter | None,
    *,
    seed: int,
    weights_path: Path | None = None,
) -> Outcome:
    metrics: dict[str, Any] = {}
    try:
        torch.manual_seed(seed)  # weight init is part of the trial's reproducible identity
        model = space.build(arch, dataset.input_shape, dataset.num_classes)
    except Exception as exc:  # noqa: BLE001 - any build failure is this candidate's fault
        return Outcome("failed", error=f"unbuildable: {type(exc).__name__}: {exc}")
    try:
        t0 = time.perf_counter()
        metrics.update(analytic_costs(model, dataset.input_shape))
        if meter is not None:
            metrics.update(measure_latency(meter, model, dataset.input_shape))
            if any(c.metric == "latency_ms" for c in cfg.constraints) and violated(
                cfg.constraints, metrics
            ):
                # one slow reading must not prune a candidate: measure again, keep the faster
                again = measure_latency(meter, model, dataset.input_shape)
                if again["latency_ms"] < metrics["latency_ms"]:
                    metrics.update(again)
        metrics["cost_seconds"] = time.perf_counter() - t0
        broken = violated(cfg.constraints, metrics)
        if broken:
            return Outcome("pruned", metrics, error="; ".join(broken), feasible=False)
        result = train(
            model,
            dataset,
            cfg.estimator,
            seed=seed,
            device=cfg.device,
            batch_size=cfg.data.batch_size,
            augment=cfg.data.augment,
        )
    except TrainingDiverged as exc:
        return Outcome("failed", metrics, error=f"diverged: {exc}")
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return Outcome("failed", metrics, error="out of memory")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, the search goes on
        log.debug("trial failed:\n%s", traceback.format_exc())
        return Outcome("failed", metrics, error=f"{type(exc).__name__}: {exc}")
    metrics.update(
        accuracy=result.accuracy,
        val_loss=result.val_loss,
        train_seconds=result.train_seconds,
        epochs=len(result.curve),
    )
    if weights_path is not None:
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights_path)
    broken = violated(cfg.constraints, metrics)
    return Outcome(
        "complete", metrics, result.curve, error="; ".join(broken) or None, feasible=not broken
    )
