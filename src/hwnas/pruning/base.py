"""Interfaces of the pruning family: stop rules for running trials and fidelity schedulers.

A :class:`Pruner` lives in the driver and sees every finished trial. For each trial it
launches it hands out a :class:`StopRule` -- plain data, so it travels to a worker process --
holding what the rule needs of the trial's peers. The evaluator starts the rule once the
trial's costs are known (before training) and feeds it every epoch's report. With several
objectives a trial's peers are only the trials that cost no more (or, on request, about the
same): a fast net is never stopped for being less accurate than slow ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwnas.core.fidelity import Fidelity
from hwnas.core.metrics import lookup
from hwnas.core.pareto import Objectives


class StopRule(ABC):
    """Decides, epoch by epoch, whether one running trial stops."""

    def start(self, metrics: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """The trial's metrics known before training (its costs)."""

    @abstractmethod
    def report(self, epoch: int, values: Mapping[str, float]) -> bool:
        """One epoch's metrics; True = stop the trial now."""


class Pruner(ABC):
    """Hands out stop rules; learns from finished trials (in trial order, also on resume)."""

    def observe(self, trial: Any) -> None:  # noqa: B027 - stateless pruners ignore results
        """A finished trial (complete or pruned), with its curve and metrics."""

    @abstractmethod
    def rule(self, fidelity: Fidelity) -> StopRule | None:
        """The stop rule for a trial about to run at ``fidelity``; None = never stop it."""


@dataclass
class Promotion:
    """Evaluate ``trial_id``'s arch again, as a new trial at rung ``rung``.

    ``fidelity`` is what the new trial trains. With ``warm_start`` it goes on from
    ``trial_id``'s trained weights, so ``fidelity`` holds only the extra epochs and
    ``epochs_total`` the epochs its weights will have seen in all; ``train`` holds the
    recipe keys that place it on its schedule (``schedule: resume``)."""

    trial_id: int
    arch: dict[str, Any]
    fidelity: Fidelity
    rung: int
    warm_start: bool = False
    epochs_total: int | None = None
    train: dict[str, Any] | None = None


class Scheduler:
    """Decides the fidelity of new proposals and which finished trials to promote (a
    promotion is a new trial of the same arch at a higher fidelity)."""

    #: promotions start from the promoted trial's weights; the experiment turns this off for
    #: an estimator that keeps no weights (a table)
    warm_start: bool = False

    def fidelity(self, requested: Fidelity | None) -> Fidelity | None:
        return requested

    def train(self, fidelity: Fidelity) -> dict[str, Any] | None:
        """Recipe keys for a new arch's trial at ``fidelity`` (``schedule: resume`` places a
        low rung on the top rung's schedule); None: the estimator's own."""
        return None

    def promotion(self) -> Promotion | None:
        return None

    def observe(self, trial: Any) -> None:
        """A finished trial (in trial order, also on resume)."""

    def launched(self, trial: Any) -> None:
        """A trial was started (a promotion is then taken)."""


class NoPruner(Pruner):
    """The `none` pruner: every trial trains to its fidelity."""

    def __init__(self, cfg: Any = None, objectives: Objectives = ()) -> None:
        pass

    def rule(self, fidelity: Fidelity) -> StopRule | None:
        return None


class NoScheduler(Scheduler):
    """The `none` scheduler: proposals run at the fidelity they ask for."""

    def __init__(self, cfg: Any = None, objectives: Objectives = (), default_epochs: int = 0):
        pass


def cost_objectives(objectives: Objectives) -> list[str]:
    """The objectives known before training (costs): the ones that pick a trial's peers."""
    out = []
    for metric, _ in objectives:
        m = lookup(metric)
        if m is not None and m.kind == "cost":
            out.append(metric)
    return out


def task_objectives(objectives: Objectives) -> list[str]:
    return [m for m, _ in objectives if m not in cost_objectives(objectives)]


def similar_costs(
    rows: list[Mapping[str, Any]], cols: list[Mapping[str, Any]], keys: list[str], band: float
) -> Any:
    """Boolean numpy array, ``[i, j]``: every cost in ``keys`` of ``cols[j]`` lies within a
    factor (1 + band) of ``rows[i]``'s (a missing or non-numeric cost: not similar). One rule
    for a trial against its peers (one row) and for a whole rung against itself: a rung of
    1000 trials is one array operation per cost, not a million calls."""
    import numpy as np

    def numbers(ms: list[Mapping[str, Any]], k: str) -> tuple[Any, Any]:
        vals = [m.get(k) for m in ms]
        ok = np.array([isinstance(v, int | float) for v in vals], dtype=bool)
        x = [abs(float(v)) if isinstance(v, int | float) else 0.0 for v in vals]
        return ok, np.array(x, dtype=float)

    out = np.ones((len(rows), len(cols)), dtype=bool)
    for k in keys:
        (ok_r, r), (ok_c, c) = numbers(rows, k), numbers(cols, k)
        lo, hi = np.minimum(r[:, None], c[None, :]), np.maximum(r[:, None], c[None, :])
        apart = (hi > lo * (1 + band)) & (hi - lo > 1e-12)
        out &= ok_r[:, None] & ok_c[None, :] & ~apart
    return out


def no_costlier(a: Mapping[str, Any], b: Mapping[str, Any], keys: list[str]) -> bool:
    """Every cost in ``keys`` of ``b`` is at most ``a``'s: ``b`` is a net that ``a`` must beat
    to have a place on the front."""
    for k in keys:
        x, y = a.get(k), b.get(k)
        if not isinstance(x, int | float) or not isinstance(y, int | float):
            return False
        if abs(float(y)) > abs(float(x)) + 1e-12:
            return False
    return True


def check_objectives(kind: str, objectives: Objectives, watched: str = "accuracy") -> None:
    """Refuse objectives a stop rule could cut the front with: only ``watched`` may be a task
    metric (one known after training); the rest must be costs, which pick a trial's peers."""
    others = [m for m in task_objectives(objectives) if m != watched]
    if others:
        raise ValueError(
            f"{kind}: objective {others[0]} is known only after training, so stopping trials "
            f"early could cut the front; use {watched} with cost objectives, or no {kind}"
        )
    if watched not in [m for m, _ in objectives]:
        raise ValueError(f"{kind}: needs {watched} among the objectives")
