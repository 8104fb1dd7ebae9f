"""Evaluate one candidate: costs first (cheap, no training), then accuracy if it is feasible.

:class:`Evaluator` is the unit of work an executor runs. It never raises for a bad candidate:
an unbuildable arch, an arch missing from a table, a diverging loss or running out of memory
become a ``failed`` outcome with its reason, so the search goes on. A model is built only when
something needs one (training, analytic costs for it, a measured target); a search on tables
alone never touches torch and costs microseconds per trial.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.experiment.config import Constraint, ExperimentConfig
from hwnas.space.base import Arch, Space

if TYPE_CHECKING:
    import torch

    from hwnas.data import Dataset
    from hwnas.hardware.base import CostModel
    from hwnas.hardware.profile import LatencyMeter

log = logging.getLogger("hwnas")

MODEL_TARGETS = {"cpu-ort", "cpu-torch", "cuda-torch", "analytic"}  # costs need a built model


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


Source = tuple["CostModel", "list[str] | None"]


def cost_sources(cfg: ExperimentConfig) -> list[Source]:
    """The cost models beyond the built-in ones: a non-builtin target, then each ``costs`` entry."""
    from hwnas.hardware.targets import BUILTIN_KINDS, make_cost_model

    out: list[Source] = []
    if cfg.target.name not in BUILTIN_KINDS:
        model = make_cost_model(cfg.target)
        assert model is not None
        out.append((model, cfg.target.provides))
    for c in cfg.costs:
        model = make_cost_model(c)
        if model is None:
            raise ValueError(f"costs: kind {c.name} cannot be an extra cost source")
        out.append((model, c.provides))
    return out


def model_needed(cfg: ExperimentConfig, sources: list[Source]) -> bool:
    """Whether candidates must be built as torch modules (training or a model-based cost)."""
    return (
        cfg.estimator.name == "train"
        or cfg.target.name in MODEL_TARGETS
        or any(m.needs_model for m, _ in sources)
    )


def measure_latency(
    meter: LatencyMeter, model: torch.nn.Module, input_shape: tuple[int, int, int]
) -> dict[str, Any]:
    timing = meter.measure(model, input_shape)
    return {"latency_ms": timing.latency_ms, "latency_spread": timing.spread}


class Evaluator:
    """Turns an arch into an :class:`Outcome` under one experiment's config."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        space: Space,
        dataset: Dataset | None,
        meter: LatencyMeter | None,
        sources: list[Source] | None = None,
    ) -> None:
        self.cfg, self.space, self.dataset, self.meter = cfg, space, dataset, meter
        self.sources = sources or []
        self.trains = cfg.estimator.name == "train"
        self.needs_model = model_needed(cfg, self.sources)
        if self.needs_model and dataset is None:
            raise ValueError("a dataset is needed to build models")
        self.target_table = self.estimator_table = None
        if cfg.target.name == "tabular":
            from hwnas.estimate.tabular import target_table

            self.target_table = target_table(cfg.target)
        if cfg.estimator.name == "tabular":
            from hwnas.estimate.tabular import estimator_columns, estimator_table

            self.estimator_table = estimator_table(cfg.estimator)
            self.estimator_columns = estimator_columns(cfg.estimator)

    def __call__(
        self,
        arch: Arch,
        *,
        seed: int,
        weights_path: Path | None = None,
        inherit: dict[str, Any] | None = None,
        train: dict[str, Any] | None = None,
    ) -> Outcome:
        """Costs, then (if feasible) accuracy.

        ``inherit = {arch, weights, morphs}`` starts from a parent's trained weights carried
        through the space's morphisms; ``train`` overrides estimator settings for this trial.
        """
        metrics: dict[str, Any] = {}
        model = None
        t0 = time.perf_counter()
        if self.needs_model:
            import torch

            from hwnas.hardware.analytic import analytic_costs

            assert self.dataset is not None
            try:
                torch.manual_seed(seed)  # weight init is part of the trial's identity
                model = self.space.build(arch, self.dataset.input_shape, self.dataset.num_classes)
                if inherit is not None:
                    self._inherit(model, arch, inherit)
                metrics.update(analytic_costs(model, self.dataset.input_shape))
            except Exception as exc:  # noqa: BLE001 - any build failure is this candidate's
                return Outcome("failed", metrics, error=f"unbuildable: {type(exc).__name__}: {exc}")
        try:
            if self.target_table is not None:
                assert self.cfg.target.name == "tabular"
                metrics.update(
                    self.target_table.lookup(self.space.key(arch), self.cfg.target.metrics)
                )
            if self.meter is not None and model is not None:
                self._measure(model, metrics)
            if self.sources:
                from hwnas.hardware.base import Candidate, select

                shape = self.dataset.input_shape if self.dataset is not None else (0, 0, 0)
                cand = Candidate(arch, self.space, shape, model)
                for source, provides in self.sources:
                    metrics.update(select(source.costs(cand), provides))
            if self.needs_model:
                metrics["cost_seconds"] = time.perf_counter() - t0
            broken = violated(self.cfg.constraints, metrics)
            if broken:
                return Outcome("pruned", metrics, error="; ".join(broken), feasible=False)
            if self.estimator_table is not None:
                metrics.update(
                    self.estimator_table.lookup(self.space.key(arch), self.estimator_columns)
                )
                return self._finish(metrics, [])
            assert model is not None
            return self._train(model, metrics, seed, weights_path, train)
        except KeyError as exc:
            return Outcome("failed", metrics, error=f"not in table: {exc}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, the search goes on
            log.debug("trial failed:\n%s", traceback.format_exc())
            return Outcome("failed", metrics, error=f"{type(exc).__name__}: {exc}")

    def _measure(self, model: torch.nn.Module, metrics: dict[str, Any]) -> None:
        assert self.meter is not None and self.dataset is not None
        shape = self.dataset.input_shape
        metrics.update(measure_latency(self.meter, model, shape))
        if any(c.metric == "latency_ms" for c in self.cfg.constraints) and violated(
            self.cfg.constraints, metrics
        ):
            # one slow reading must not prune a candidate: measure again, keep the faster
            again = measure_latency(self.meter, model, shape)
            if again["latency_ms"] < metrics["latency_ms"]:
                metrics.update(again)

    def _inherit(self, model: torch.nn.Module, arch: Arch, inherit: dict[str, Any]) -> None:
        """Load the parent's weights carried through the morphisms into ``model``."""
        import torch

        inherit_fn = getattr(self.space, "inherit", None)
        if inherit_fn is None:
            raise ValueError(f"the {self.space.name} space cannot carry weights across changes")
        state = torch.load(inherit["weights"], map_location="cpu", weights_only=True)
        child, state = inherit_fn(inherit["arch"], state, inherit["morphs"])
        if self.space.arch_hash(child) != self.space.arch_hash(arch):
            raise ValueError("inherited morphisms do not lead to this trial's arch")
        model.load_state_dict(state)

    def _train(
        self,
        model: torch.nn.Module,
        metrics: dict[str, Any],
        seed: int,
        weights_path: Path | None,
        overrides: dict[str, Any] | None = None,
    ) -> Outcome:
        import torch

        from hwnas.estimate.train import TrainingDiverged, train

        assert self.dataset is not None and self.cfg.estimator.name == "train"
        est = self.cfg.estimator
        if overrides:
            est = est.model_copy(update=overrides)
        try:
            result = train(
                model,
                self.dataset,
                est,
                seed=seed,
                device=self.cfg.device,
                batch_size=self.cfg.data.batch_size,
                augment=self.cfg.data.augment,
                flip=self.cfg.data.flip,
            )
        except TrainingDiverged as exc:
            return Outcome("failed", metrics, error=f"diverged: {exc}")
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return Outcome("failed", metrics, error="out of memory")
        metrics.update(
            accuracy=result.accuracy,
            val_loss=result.val_loss,
            train_seconds=result.train_seconds,
            epochs=len(result.curve),
        )
        if weights_path is not None:
            weights_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights_path)
        return self._finish(metrics, result.curve)

    def _finish(self, metrics: dict[str, Any], curve: list[dict[str, float]]) -> Outcome:
        broken = violated(self.cfg.constraints, metrics)
        return Outcome(
            "complete", metrics, curve, error="; ".join(broken) or None, feasible=not broken
        )
