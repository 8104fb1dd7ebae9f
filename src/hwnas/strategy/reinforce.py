"""REINFORCE over the space's choices (Zoph & Le 2017), hardware-aware as in MnasNet.

The policy is one categorical distribution per choice of an encodable space (its
``parameters()``), kept as logits. Each ask samples every choice (a small share uniformly, so
the policy keeps exploring); each result moves the logits of the choices it made by
``lr * advantage * (1[choice] - p)``, the gradient of the log-probability, where the advantage
is the reward minus a moving-average baseline, divided by a moving estimate of its spread (so
one learning rate fits rewards of any scale).

Reward: the first maximised objective (accuracy); with a minimised cost objective, MnasNet's
``acc * (cost / T) ** w`` (w = ``latency_exponent``, T = ``latency_target``, by default the median of the
recent costs, so the search centres on the middle of the front; set it to a latency bound to
aim there, as MnasNet does). A pruned or failed trial earns 0.
The whole state is JSON: a resumed search goes on with the same policy.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar

from hwnas.core.pareto import Objectives
from hwnas.space.base import Arch, Space
from hwnas.space.capabilities import Encodable
from hwnas.strategy.base import Proposal, Result, Strategy

#: costs remembered for the default target (their median): the recent ones, so the state
#: stored with every trial stays small
RECENT = 200


class Reinforce(Strategy):
    name = "reinforce"
    requires: ClassVar[tuple[type, ...]] = (Encodable,)

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        lr: float = 0.3,
        baseline_decay: float = 0.9,
        explore: float = 0.05,
        latency_exponent: float = -0.07,
        latency_target: float | None = None,
    ) -> None:
        super().__init__(space, objectives, seed)
        self.choices: dict[str, list[Any]] = space.parameters()  # type: ignore[attr-defined]
        self.logits = {k: [0.0] * len(v) for k, v in self.choices.items()}
        self.lr, self.decay, self.explore = lr, baseline_decay, explore
        self.exponent, self.target = latency_exponent, latency_target
        maxed = [m for m, d in self.objectives if d == "max"]
        mined = [m for m, d in self.objectives if d == "min"]
        self.quality = maxed[0] if maxed else None
        self.cost = mined[0] if mined else None
        self.baseline: float | None = None
        self.spread = 1.0
        self.costs: list[float] = []

    # ------------------------------------------------------------------ policy
    def _probs(self, key: str) -> list[float]:
        z = self.logits[key]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        s = sum(e)
        n = len(z)
        return [(1 - self.explore) * v / s + self.explore / n for v in e]

    def ask(self) -> Proposal:
        def draw() -> Arch:
            params = {}
            for key, options in self.choices.items():
                params[key] = self.rng.choices(options, weights=self._probs(key))[0]
            return self.space.from_parameters(params)  # type: ignore[attr-defined,no-any-return]

        # a degenerate arch, or one whose known cost breaks a constraint, is drawn again: the
        # policy then learns among the archs that can learn and be trained, and the budget is
        # not spent on pruned ones
        return Proposal(self.feasible_draw(draw, self.ruled_out), info={"op": "policy"})

    def weighs_known_costs(self) -> bool:
        return self.constraints_known()

    def _reward(self, result: Result) -> float:
        if result.status != "complete" or not result.feasible:
            return 0.0
        m = result.metrics
        if self.quality is None:  # costs only: cheaper is better
            c = m.get(self.cost or "", 0.0)
            return -float(c)
        q = float(m.get(self.quality, 0.0))
        if self.cost is None or self.cost not in m:
            return q
        cost = float(m[self.cost])
        self.costs = [*self.costs, cost][-RECENT:]
        target = self.target or statistics.median(self.costs)
        if cost <= 0 or target <= 0:
            return q
        return q * (cost / target) ** self.exponent

    def tell(self, result: Result) -> None:
        reward = self._reward(result)
        if self.baseline is None:
            self.baseline = reward
            return
        advantage = reward - self.baseline
        self.spread = self.decay * self.spread + (1 - self.decay) * advantage**2
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        step = self.lr * advantage / math.sqrt(self.spread + 1e-12)
        try:
            chosen = self.space.to_parameters(result.arch)  # type: ignore[attr-defined]
        except (KeyError, TypeError, ValueError):
            return
        for key, options in self.choices.items():
            if key not in chosen or chosen[key] not in options:
                continue
            c = options.index(chosen[key])
            p = self._probs(key)
            z = self.logits[key]
            for i in range(len(z)):
                z[i] += step * ((1.0 if i == c else 0.0) - p[i])

    # ------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "logits": self.logits,
            "baseline": self.baseline,
            "spread": self.spread,
            "costs": self.costs,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.logits = {k: list(v) for k, v in state["logits"].items()}
        self.baseline, self.spread = state["baseline"], state["spread"]
        self.costs = list(state["costs"])
