"""Regularized (aging) evolution, Real et al. 2019, made multi-objective.

A population of the P most recent good results; each child mutates the winner of a tournament
of S random members, and the oldest member dies. Aging, rather than killing the worst, keeps
lucky evaluations from ruling forever. Selection is NSGA-II's order (Pareto rank over the
population, then crowding distance, then the cheaper model) or a scalarised reward. Until P
results have arrived, children are random samples; results arriving out of order simply join
the population when they arrive. ``start`` names archs proposed before the first sample (a
hand-designed net to improve on): they join the population like any result, so the first
children are their mutants.

With ``guide`` (predictor-guided evolution, e.g. NASLib's and BANANAS' mutation-based
acquisition) each proposal mutates ``guide`` children and keeps the one a surrogate fitted on
every result so far ranks best by an optimistic bound (:mod:`hwnas.strategy.surrogate`);
the predicted mean is stored
with the trial so the study reports how well the surrogate predicted unseen archs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwnas.core.errors import UserError
from hwnas.core.pareto import (
    Objectives,
    as_minimisation,
    cost_key,
    nsga2_keys,
)
from hwnas.space.arch_spec import parse_arch
from hwnas.space.base import Space
from hwnas.space.capabilities import Encodable, Evolvable, missing, supports
from hwnas.strategy.base import Proposal, Result, Strategy
from hwnas.strategy.gp import gene_codes
from hwnas.strategy.surrogate import GeneSurrogate, best_predicted


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
        guide: int = 0,
        guide_optimism: float = 1.0,
        start: Sequence[str] = (),
    ) -> None:
        super().__init__(space, objectives, seed)
        # parsed now, so a bad spec is a one-line error before anything is written
        self.start = [parse_arch(spec, space, "strategy.start") for spec in start]
        self.started = 0  # how many of ``start`` were proposed
        if guide > 1 and not supports(space, Encodable):
            raise UserError(missing("strategy: evolution with guide", Encodable, space))
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
        self.guide, self.guide_optimism = guide, guide_optimism
        self.genes: dict[str, list[Any]] = space.parameters() if guide > 1 else {}  # type: ignore[attr-defined]
        self.told: list[dict[str, Any]] = []  # guided: every good result's codes and vector
        self.surrogate = GeneSurrogate(len(self.objectives))

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
        return [(float(r), d) for r, d in nsga2_keys(vectors)]

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
        if self.started < len(self.start):
            self.started += 1
            arch = self.start[self.started - 1]
            return self._remember(Proposal(arch, info={"op": "start"}))
        # a degenerate arch, or one whose known cost breaks a constraint (it would be pruned
        # untrained), is drawn again
        if len(self.population) < self.population_size:
            arch = self.feasible_draw(lambda: self.space.sample(self.rng), self.ruled_out)
            return self._remember(Proposal(arch, info={"op": "sample"}))
        if self.guide > 1 and len(self.told) >= 3:
            guided = self._guided()
            if guided is not None:
                return self._remember(guided)
        child = self.feasible_draw(self._child, lambda c: self.ruled_out(c[0].arch))
        return self._remember(*child)

    def weighs_known_costs(self) -> bool:
        return self.constraints_known()

    def _child(self) -> tuple[Proposal, str | None]:
        """A mutated (or crossed-over) child of a tournament's winner."""
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
        return Proposal(child, parent_id=parent["id"], info={"op": op}), h

    def _guided(self) -> Proposal | None:
        """``guide`` children; the one the surrogate ranks best, with its prediction."""
        children = [self._child()[0] for _ in range(self.guide)]
        children = [c for c in children if not self.ruled_out(c.arch)]
        if not children:  # all ruled out: ask's re-draws take over
            return None
        known = {tuple(t["codes"]) for t in self.told}
        fresh: list[tuple[int, list[int]]] = []  # children not told yet, with their codes
        for i, c in enumerate(children):
            codes = gene_codes(self.space, self.genes, c.arch)
            if codes is not None and tuple(codes) not in known:
                fresh.append((i, codes))
        if not fresh or not self.surrogate.fit(
            [t["codes"] for t in self.told], [t["vector"] for t in self.told], self.rng
        ):
            return None
        mean, sd = self.surrogate.predict([codes for _, codes in fresh])
        pick = best_predicted(mean - self.guide_optimism * sd, [t["vector"] for t in self.told])
        child = children[fresh[pick][0]]
        signs = [1.0 if d == "min" else -1.0 for _, d in self.objectives]
        child.info = {
            **child.info,
            "guided": self.guide,
            "predicted": {
                m: round(float(v) * s, 6)
                for (m, _), v, s in zip(self.objectives, mean[pick], signs, strict=True)
            },
        }
        return child

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
        if self.guide > 1:
            codes = gene_codes(self.space, self.genes, result.arch)
            if codes is not None:
                self.told.append({"codes": codes, "vector": list(vector)})
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
        out = {
            **super().state(),
            "population": self.population,
            "seen": sorted(self.seen),
            "started": self.started,
        }
        if self.guide > 1:
            out.update(told=self.told, surrogate=self.surrogate.state())
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.population = state.get("population", [])
        self._keys = None
        self.seen = set(state.get("seen", []))
        self.started = int(state.get("started", 0))
        self.told = list(state.get("told", []))
        if "surrogate" in state:
            self.surrogate.load_state(state["surrogate"])
