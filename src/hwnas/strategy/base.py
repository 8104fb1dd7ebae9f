"""The strategy interface: ask for archs, tell results, in any order.

Strategies see archs and metrics only. Their whole state is JSON (``state`` /
``load_state``) so the store can save it with every trial: a resumed search continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hwnas.core.constraints import Constraint, violated
from hwnas.core.errors import UserError
from hwnas.core.fidelity import Fidelity
from hwnas.core.pareto import Objectives
from hwnas.space.base import Arch, Space
from hwnas.space.capabilities import missing, supports


class StrategyDone(Exception):
    """The strategy has nothing more to propose (e.g. NASH after its final net)."""


class StrategyWaiting(Exception):
    """No proposal until a result still in flight is told (e.g. NASH between steps)."""


@dataclass
class Proposal:
    """An arch to evaluate and where it came from.

    ``fidelity`` asks for a budget (None: the estimator's default or the scheduler's); ``stage``
    is ``search``, ``derived`` or ``final`` (a model trained on for delivery). ``info`` is
    stored with the trial. Two keys change how it is evaluated: ``train`` overrides recipe
    settings the estimator lets a proposal change (``lr``, ``lr_min``, ``cutout``), and
    ``inherit = {trial, morphs}`` starts from that trial's trained weights carried through the
    space's morphisms (the candidate is then evaluated even if its graph was seen before: its
    weights are new).
    """

    arch: Arch
    parent_id: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    fidelity: Fidelity | None = None
    stage: str = "search"


@dataclass
class Result:
    """What the strategy learns about one evaluated arch."""

    trial_id: int
    arch: Arch
    status: str  # complete | failed | pruned
    metrics: dict[str, Any]
    feasible: bool = True
    #: what the result was evaluated at (a warm start's epochs counted from scratch); None:
    #: the estimator's default. Multi-fidelity strategies (BOHB) rank results within one.
    fidelity: Fidelity | None = None


def check_space(strategy: type[Strategy], space: Space) -> None:
    """Raise a one-line UserError if ``space`` lacks a capability ``strategy`` requires."""
    for capability in strategy.requires:
        if not supports(space, capability):
            raise UserError(
                missing(f"strategy: {strategy.name}", capability, space, *strategy.requires)
            )


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


#: draws a strategy makes before it proposes an arch a known cost rules out anyway
FEASIBLE_TRIES = 100
#: archs in a row a strategy builds to weigh their counts before it lets one through
BUILT_TRIES = 20
T = TypeVar("T")


class Strategy(ABC):
    """Ask/tell search strategy.

    ``requires`` lists the space capabilities (:mod:`hwnas.space.capabilities`) the strategy
    calls beyond :class:`Space` itself; a space without one of them is refused up front with
    a one-line :class:`UserError`, not an AttributeError in the middle of a search.
    """

    name = "strategy"
    requires: ClassVar[tuple[type, ...]] = ()
    #: trains a supernet before its first ask: the loop calls :meth:`prepare` with a kit
    one_shot: ClassVar[bool] = False
    #: the costs of an untrained arch (metric -> value; None: not priceable), set by the
    #: experiment when a cost source prices archs unbuilt (a table, an arch-level predictor,
    #: a lookup table's timed entries): a hardware-aware strategy then weighs candidates by
    #: their true cost instead of predicting it from the archs it has trained
    known_costs: Callable[[Arch], dict[str, float] | None] | None = None
    #: the run's hard constraints, set with ``known_costs``: an arch whose known costs break
    #: one would be pruned untrained, so such a strategy need not propose it
    constraints: Sequence[Constraint] = ()
    #: the costs an arch's built net gives without a measurement (analytic counts, a
    #: datasheet device model), set by the experiment where a constraint is on one of them:
    #: a build and a count per arch, so only re-draws weigh them (not BO's candidate pools)
    built_costs: Callable[[Arch], dict[str, float] | None] | None = None

    def __init__(self, space: Space, objectives: Objectives, seed: int) -> None:
        check_space(type(self), space)
        self.space = space
        self.objectives = list(objectives)
        self.rng = random.Random(seed)
        #: draw again an arch the space calls degenerate (:meth:`ruled_out`); off for a study
        #: whose strategy state was written before this, so its proposals go on as they began
        self.skip_degenerate = True
        #: likewise, draw again an arch whose built costs break a constraint
        self.weigh_built = True
        self._built_streak = 0  # archs in a row whose built costs broke a constraint

    def weighs_known_costs(self) -> bool:
        """Whether this strategy uses ``known_costs`` when it proposes (the log says so)."""
        return False

    def constraints_known(self) -> bool:
        """Whether a constrained metric is among the costs known untrained (probed on one
        arch drawn apart from the strategy's own draws): only then can a known cost rule a
        candidate out, so only then does a strategy that re-draws on constraints weigh them."""
        if not self.constraints:
            return False
        if self.built_costs is not None and self.weigh_built:
            return True  # set only where a constraint is on a built cost
        if self.known_costs is None:
            return False
        try:  # one arch: a table that lacks it reads as "not known" (only the log depends on it)
            probe = self.known_costs(self.space.sample(random.Random(0)))
        except Exception:  # noqa: BLE001 - unpriceable: nothing known to weigh
            return False
        return probe is not None and any(c.metric in probe for c in self.constraints)

    def known_infeasible(self, arch: Arch) -> bool:
        """Whether a cost known before training breaks one of the run's constraints: a trial
        on ``arch`` would be pruned untrained, spending the budget on nothing. Costs known
        unbuilt are asked first; a built net's counts only where those break nothing."""
        if not self.constraints:
            return False
        constraints = list(self.constraints)
        costs = (self.known_costs(arch) if self.known_costs is not None else None) or {}
        return bool(violated(constraints, costs)) or self.built_infeasible(arch)

    def built_infeasible(self, arch: Arch) -> bool:
        """Whether ``arch``'s built net breaks a constraint by its counts (``built_costs``).
        After :data:`BUILT_TRIES` such archs in a row one is let through (and pruned as a
        trial): a build each, in the loop that hands out work, is bounded per proposal."""
        if self.built_costs is None or not self.weigh_built or not self.constraints:
            return False
        if self._built_streak >= BUILT_TRIES:
            self._built_streak = 0
            return False
        broken = bool(violated(list(self.constraints), self.built_costs(arch) or {}))
        self._built_streak = self._built_streak + 1 if broken else 0
        return broken

    def ruled_out(self, arch: Arch) -> bool:
        """Whether a trial on ``arch`` is known to be wasted before it runs: its net cannot
        learn (the space calls it degenerate: NB201's cells with no path from input to
        output all score ~10 %, and being the cheapest nets they draw a cost-aware search to
        them), or a known cost breaks a constraint (:meth:`known_infeasible`)."""
        if self.skip_degenerate and self.space.degenerate(arch):
            return True
        return self.known_infeasible(arch)

    @staticmethod
    def feasible_draw(draw: Callable[[], T], ruled_out: Callable[[T], bool]) -> T:
        """The first of up to :data:`FEASIBLE_TRIES` draws that ``ruled_out`` (e.g.
        :meth:`known_infeasible`) lets through, or the last one drawn if none is; when nothing
        is ruled out, the first draw, and nothing more is drawn."""
        got = draw()
        for _ in range(FEASIBLE_TRIES - 1):
            if not ruled_out(got):
                break
            got = draw()
        return got

    @classmethod
    def from_config(cls, cfg: Any, space: Space, objectives: Objectives, seed: int) -> Strategy:
        """The registry's factory: the section's keys (all but ``name``) are keyword arguments."""
        return cls(space, objectives, seed, **cfg.model_dump(exclude={"name"}))

    def check(self, kit: Any) -> None:  # noqa: B027 - only one-shot strategies need it
        """Refuse, with a one-line UserError, what :meth:`prepare` could not do with ``kit``;
        called before the study is written, so a refused start leaves nothing behind."""

    def prepare(self, kit: Any) -> None:  # noqa: B027 - only one-shot strategies need it
        """Before the first ask of a ``one_shot`` strategy: ``kit`` (a
        :class:`~hwnas.oneshot.kit.SupernetKit`) holds data, device and costs to train on."""

    def warnings(self) -> list[str]:
        """What in this run's set-up will make the search miss what it was asked for (said
        at the search's start, beside the estimator's)."""
        return []

    @abstractmethod
    def ask(self) -> Proposal:
        """The next arch to evaluate (may be one already evaluated: the experiment answers)."""

    def tell(self, result: Result) -> None:  # noqa: B027 - stateless strategies ignore results
        """Learn from one finished trial. Results may arrive out of order."""

    def state(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "skip_degenerate": self.skip_degenerate,
            "weigh_built": self.weigh_built,
            "built_streak": self._built_streak,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.skip_degenerate = bool(state.get("skip_degenerate", False))
        self.weigh_built = bool(state.get("weigh_built", False))
        self._built_streak = int(state.get("built_streak", 0))
