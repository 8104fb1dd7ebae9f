"""Regularized (aging) evolution, Real et al. 2019, made multi-objective.

A population of the P most recent good results; each child mutates the winner of a tournament
of S random members, and the oldest member dies. Aging, rather than killing the worst, keeps
lucky evaluations from ruling forever. Selection is NSGA-II's order (Pareto rank over the
population, then crowding distance, then the cheaper model) or a scalarised reward. Until P
results have arrived, children are random samples; results arriving out of order simply join
the population when they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwnas.core.pareto import (
    Objectives,
    as_minimisation,
    cost_key,
    crowding_distances,
    non_dominated_ranks,
)
from hwnas.space.base import Space
from hwnas.space.capabilities import Evolvable
from hwnas.strategy.base import Proposal, Result, Strategy


class RegularizedEvolution(Strategy):
    name = "evolution"
    requires = (Evolvable,)

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        population: int = 12,
        sample_size: int = 4,
        selection: str = "pareto",
        weights: dict[str, float] | None = None,
        crossover_prob: float = 0.1,
        mutations: int = 1,
        fresh_tries: int = 0,
    ) -> None:
        super().__init__(space, objectives, seed)
        assert isinstance(space, Evolvable)
        self.evolvable: Evolvable = space
        self.population_size = population
        self.sample_size = sample_size
        self.selection = selection
        self.weights = weights or {}
        self.crossover_prob = crossover_prob
        self.mutations = mutations
        self.fresh_tries = fresh_tries
        self.seen: set[str] = set()  # hashes of archs proposed (for fresh_tries)
        # members: {"id", "arch", "vector", "cost"}; oldest first
        self.population: list[dict[str, Any]] = []
        self._keys: list[tuple[float, float]] | None = None  # _order of the population
        self.pending_random = 0

    # ----------------------------------------------------------------- selection
    def _order(self, members: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
        """A sort key per member: lower is better."""
        vectors = [m["vector"] for m in members]
        if self.selection == "scalar":
            n_obj = len(self.objectives)
            lo = [min(v[k] for v in vectors) for k in range(n_obj)]
            hi = [max(v[k] for v in vectors) for k in range(n_obj)]
            scores = []
            for v in vectors:
                s = 0.0
                for k, (metric, _) in enumerate(self.objectives):
                    span = hi[k] - lo[k]
                    s += self.weights.get(metric, 1.0) * ((v[k] - lo[k]) / span if span else 0.0)
                scores.append((s, 0.0))  # weighted sum of normalised costs: lower wins
            return scores
        ranks = non_dominated_ranks(vectors)
        crowd = [0.0] * len(members)
        for r in set(ranks):
            idx = [i for i, x in enumerate(ranks) if x == r]
            for i, d in zip(idx, crowding_distances([vectors[i] for i in idx]), strict=True):
                crowd[i] = d
        return [(float(r), -d) for r, d in zip(ranks, crowd, strict=True)]

    def _select(self) -> dict[str, Any]:
        if self._keys is None:  # the order changes only when the population does
            self._keys = self._order(self.population)
        keys = self._keys
        idx = self.rng.sample(
            range(len(self.population)), min(self.sample_size, len(self.population))
        )
        return self.population[min(idx, key=lambda i: (keys[i], self.population[i]["cost"]))]

    # ------------------------------------------------------------------- ask/tell
    def ask(self) -> Proposal:
        if len(self.population) < self.population_size:
            return self._remember(Proposal(self.space.sample(self.rng), info={"op": "sample"}))
        parent = self._select()
        h = None  # the child's hash, once fresh_tries has computed it
        for _ in range(self.fresh_tries + 1):
            child = parent["arch"]
            op = "mutate"
            if self.rng.random() < self.crossover_prob:
                other = self._select()
                child = self.evolvable.crossover(parent["arch"], other["arch"], self.rng)
                op = "crossover"
            for _ in range(self.mutations):
                child = self.evolvable.mutate(child, self.rng)
            if not self.fresh_tries:
                break
            h = self.space.arch_hash(child)
            if h not in self.seen:
                break
        return self._remember(Proposal(child, parent_id=parent["id"], info={"op": op}), h)

    def _remember(self, proposal: Proposal, arch_hash: str | None = None) -> Proposal:
        if self.fresh_tries:
            self.seen.add(arch_hash or self.space.arch_hash(proposal.arch))
        return proposal

    def tell(self, result: Result) -> None:
        if result.status != "complete" or not result.feasible:
            return
        vector = as_minimisation(result.metrics, self.objectives)
        if vector is None:
            return
        self.population.append(
            {
                "id": result.trial_id,
                "arch": result.arch,
                "vector": list(vector),
                "cost": list(cost_key(result.metrics)),
            }
        )
        if len(self.population) > self.population_size:
            self.population.pop(0)  # aging: the oldest dies, however good
        self._keys = None

    def state(self) -> dict[str, Any]:
        return {**super().state(), "population": self.population, "seen": sorted(self.seen)}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.population = state.get("population", [])
        self._keys = None
        self.seen = set(state.get("seen", []))
