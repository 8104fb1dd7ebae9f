"""The strategy interface: ask for archs, tell results, in any order.

Strategies see archs and metrics only. Their whole state is JSON (``state`` /
``load_state``) so the store can save it with every trial: a resumed search continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from hwnas.experiment.pareto import Objectives
from hwnas.space.base import Arch, Space


class StrategyDone(Exception):
    """The strategy has nothing more to propose (e.g. NASH after its final net)."""


class StrategyWaiting(Exception):
    """No proposal until a result still in flight is told (e.g. NASH between steps)."""


@dataclass
class Proposal:
    """An arch to evaluate and where it came from.

    ``info`` is stored with the trial. Two keys change how it is evaluated: ``train`` overrides
    estimator settings (``epochs``, ``lr``, ``lr_min``), and ``inherit = {trial, morphs}`` starts
    from that trial's trained weights carried through the space's morphisms (the candidate is
    then evaluated even if its graph was seen before: its weights are new).
    """

    arch: Arch
    parent_id: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """What the strategy learns about one evaluated arch."""

    trial_id: int
    arch: Arch
    status: str  # complete | failed | pruned
    metrics: dict[str, Any]
    feasible: bool = True


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class Strategy(ABC):
    """Ask/tell search strategy."""

    name = "strategy"

    def __init__(self, space: Space, objectives: Objectives, seed: int) -> None:
        self.space = space
        self.objectives = list(objectives)
        self.rng = random.Random(seed)

    @abstractmethod
    def ask(self) -> Proposal:
        """The next arch to evaluate (may be one already evaluated: the experiment answers)."""

    def tell(self, result: Result) -> None:  # noqa: B027 - stateless strategies ignore results
        """Learn from one finished trial. Results may arrive out of order."""

    def state(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
