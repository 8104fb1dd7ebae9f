"""Config sections of the built-in pruners and schedulers (torch-free).

A pruner's factory is ``factory(section, objectives)``, a scheduler's
``factory(section, objectives, default_epochs)``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hwnas.core.config import KindConfig
from hwnas.core.pareto import Objectives
from hwnas.core.registry import pruners, schedulers
from hwnas.pruning.base import check_objectives

#: off: on the default digits search warm starts were not measurably better than promotions
#: from scratch (HV +0.024 ± 0.034, paired, same run; benchmarks/results/
#: 2026-12-03-pruning-warm.json), and off keeps a resumed halving study promoting as it began
WARM_START_DEFAULT = False


def _peers() -> Any:
    """The stop rules' `peers` field (several objectives: who a trial is compared with)."""
    return Field(
        "cheaper",
        description="With cost objectives: `cheaper` compares a trial with the finished trials "
        "that cost at most as much on every cost (the nets it must beat to reach the front); "
        "`similar` with those within `cost_band`.",
    )


def _promote() -> Any:
    """The schedulers' `promote` field (several objectives: which trials of a rung go on)."""
    return Field(
        "front",
        description="With several objectives: `front` promotes the top 1/eta of a rung in "
        "NSGA-II's order (non-dominated rank on accuracy and costs, then crowding distance), "
        "as MO-ASHA does, so the rung's own front goes on first; `similar` the trials in the "
        "top 1/eta of their rung-mates of similar cost (`cost_band`).",
    )


def _schedule() -> Any:
    """The schedulers' `schedule` field: how a warm-started promotion's learning rate goes on."""
    return Field(
        "restart",
        description="With `warm_start`: `restart` trains every rung a learning-rate schedule "
        "of its own (sgdr: a cosine cycle, so a promotion's is an SGDR warm restart; fast: "
        "warm-up and decay again); `resume` makes each rung a pause of one "
        "training -- every trial follows the top rung's schedule and stops at its rung's "
        "epochs, and a promotion goes on with the rates, momentum and data order where it "
        "stopped, so an arch promoted to the top is trained exactly as in one uninterrupted "
        "run (on the CPU, bit for bit). A rung's accuracy is then that of a net in "
        "mid-schedule, and so is a net left at a lower rung (on the front, tested, exported "
        "as it is, as with `restart`).",
    )


def _check_schedule(cfg: Any) -> None:
    if cfg.schedule == "resume" and not cfg.warm_start:
        raise ValueError("schedule: resume needs warm_start: true (a pause goes on from weights)")


def _rung_mates() -> Any:
    """The schedulers' `cost_band` field (several objectives: who a trial is ranked among)."""
    return Field(
        0.5,
        gt=0,
        description="`promote: similar`: rung-mates count only if every cost objective lies "
        "within a factor (1 + cost_band) of the trial's.",
    )


@pruners.register("none", factory="hwnas.pruning.base:NoPruner")
class NoPrunerConfig(KindConfig):
    """Every trial trains to its fidelity."""

    name: Literal["none"] = "none"


@pruners.register("median", factory="hwnas.pruning.median:MedianPruner")
class MedianPrunerConfig(KindConfig):
    """The median stopping rule: stop a trial whose best accuracy so far is below the median of
    its peers' at the same epoch. With cost objectives its peers are only the finished trials
    that cost no more (`peers: cheaper`) or about the same (`peers: similar`), so a fast net is
    never stopped for being less accurate than slow ones: the cheap end of the front is kept."""

    name: Literal["median"] = "median"

    def check(self, objectives: Objectives) -> None:
        """Refuse objectives this rule could cut the front with (config time)."""
        check_objectives("pruner: median", objectives)

    warmup_epochs: int = Field(1, ge=0, description="Never stop a trial before this epoch.")
    min_trials: int = Field(
        5, ge=1, description="Peers needed (finished trials at the same fidelity) to stop one."
    )
    percentile: float = Field(
        50.0,
        gt=0,
        le=100,
        description="A trial goes on only while its best accuracy is in the top `percentile` % "
        "of its peers' at the same epoch (as Optuna's PercentilePruner): 50 is the median rule, "
        "25 stops a trial unless it is in the top quarter of its peers.",
    )
    peers: Literal["cheaper", "similar"] = _peers()
    cost_band: float = Field(
        0.5,
        gt=0,
        description="`peers: similar`: peers' cost objectives lie within a factor "
        "(1 + cost_band) of the trial's (costs are known before training).",
    )


@pruners.register("curve", factory="hwnas.pruning.curve:CurvePruner")
class CurvePrunerConfig(KindConfig):
    """Learning-curve extrapolation (Domhan et al. 2015): fit saturating curve families to a
    trial's accuracy so far and stop it when even an optimistic extrapolation to the last
    epoch stays below what its peers (finished trials that cost no more) reached: with the
    best of them as the mark, only a trial predicted to be dominated stops."""

    name: Literal["curve"] = "curve"

    def check(self, objectives: Objectives) -> None:
        check_objectives("pruner: curve", objectives)

    min_epochs: int = Field(
        3, ge=3, description="Never stop a trial before this epoch (3 points fit a curve)."
    )
    min_trials: int = Field(3, ge=1, description="Finished peers needed before stopping one.")
    optimism: float = Field(
        1.0,
        ge=0.0,
        description="Stop only if the extrapolated final accuracy plus this many standard "
        "deviations (families' spread and fit residual) is below the peers' mark.",
    )
    quantile: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="The peers' mark: this quantile of their final accuracies (1: the best, "
        "as Domhan et al.; 0.5: the median).",
    )
    peers: Literal["cheaper", "similar"] = _peers()
    cost_band: float = Field(
        0.5,
        gt=0,
        description="`peers: similar`: peers' cost objectives lie within a factor "
        "(1 + cost_band) of the trial's.",
    )


@schedulers.register("none", factory="hwnas.pruning.base:NoScheduler")
class NoSchedulerConfig(KindConfig):
    """Every proposal is evaluated at the fidelity its strategy asked for."""

    name: Literal["none"] = "none"


@schedulers.register("halving", factory="hwnas.pruning.halving:AsyncHalving")
class HalvingSchedulerConfig(KindConfig):
    """Asynchronous successive halving (ASHA, Li et al. 2020): new archs train `min_epochs`;
    a finished trial in the top 1/`eta` of its rung is promoted, as a new trial of the same
    arch, to `eta` times the epochs, up to `max_epochs`. Promotions are decided as results
    arrive, so no worker waits for a rung to fill. With several objectives the rung is ordered
    as NSGA-II orders a population (MO-ASHA), so its own front, fast end included, goes on
    first. With `warm_start` a promoted trial goes on from its rung's trained weights and
    trains only the extra epochs."""

    name: Literal["halving"] = "halving"

    def check(self, objectives: Objectives) -> None:
        check_objectives("scheduler: halving", objectives)

    min_epochs: int = Field(2, ge=1, description="Epochs at the lowest rung.")
    max_epochs: int | None = Field(
        None, ge=1, description="Epochs at the top rung; default: the estimator's `epochs`."
    )
    eta: int = Field(3, ge=2, description="Reduction factor between rungs.")
    promote: Literal["front", "similar"] = _promote()
    cost_band: float = _rung_mates()
    warm_start: bool = Field(
        WARM_START_DEFAULT,
        description="A promoted trial starts from the weights its arch reached at the rung below "
        "and trains only the extra epochs (rung k+1 minus rung k), on a schedule of its own or "
        "where its rung paused (`schedule`): its `fidelity` is those epochs, "
        "`info.epochs_total` the total. "
        "False: it trains all of the next rung's epochs from scratch. Needs an estimator that "
        "trains and saves weights (`train`); with a table promotions start from scratch.",
    )
    schedule: Literal["restart", "resume"] = _schedule()

    @model_validator(mode="after")
    def _order(self) -> HalvingSchedulerConfig:
        if self.max_epochs is not None and self.max_epochs < self.min_epochs:
            raise ValueError("max_epochs must be >= min_epochs")
        _check_schedule(self)
        return self


@schedulers.register("hyperband", factory="hwnas.pruning.halving:AsyncHyperband")
class HyperbandSchedulerConfig(KindConfig):
    """Asynchronous Hyperband (Li et al. 2018; asynchronous as in ASHA's paper): brackets of
    successive halving that start their archs at ever higher fidelity -- bracket 0 at the
    lowest rung (as `halving`), the last at full fidelity -- so a ranking that early epochs
    (or a small share of the data) get wrong is hedged. New archs are dealt to brackets in
    Hyperband's proportions; within a bracket, the top 1/`eta` of a rung is promoted as
    results arrive. With `strategy: bo` this is BOHB: the model learns from the highest
    fidelity that has enough results."""

    name: Literal["hyperband"] = "hyperband"

    def check(self, objectives: Objectives) -> None:
        check_objectives("scheduler: hyperband", objectives)

    resource: Literal["epochs", "data_fraction"] = Field(
        "epochs",
        description="What a rung grows: training `epochs`, or the `data_fraction` of the "
        "training split each epoch sees (the estimator's epochs stay as set).",
    )
    min_epochs: int = Field(1, ge=1, description="`resource: epochs`: epochs at the lowest rung.")
    max_epochs: int | None = Field(
        None, ge=1, description="Epochs at the top rung; default: the estimator's `epochs`."
    )
    min_fraction: float = Field(
        1 / 9,
        gt=0.0,
        le=1.0,
        description="`resource: data_fraction`: share of the training split at the lowest "
        "rung (the top rung trains on all of it).",
    )
    eta: int = Field(3, ge=2, description="Reduction factor between rungs.")
    brackets: int | None = Field(
        None,
        ge=1,
        description="Brackets, from the most aggressive (starts at the lowest rung); "
        "default: one per rung (the last trains every arch it gets at full fidelity).",
    )
    promote: Literal["front", "similar"] = _promote()
    cost_band: float = _rung_mates()
    warm_start: bool = Field(
        WARM_START_DEFAULT,
        description="`resource: epochs`: a promoted trial goes on from the weights of the rung "
        "below and trains only the extra epochs (as for `halving`).",
    )
    schedule: Literal["restart", "resume"] = _schedule()

    @model_validator(mode="after")
    def _order(self) -> HyperbandSchedulerConfig:
        if self.max_epochs is not None and self.max_epochs < self.min_epochs:
            raise ValueError("max_epochs must be >= min_epochs")
        if self.warm_start and self.resource != "epochs":
            raise ValueError(
                "warm_start needs resource: epochs (a share of the data has no rung weights to go on from)"
            )
        _check_schedule(self)
        return self
