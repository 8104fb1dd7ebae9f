"""Optuna's samplers as hwnas strategies (TPE, NSGA-II, random, ...), through ask/tell.

Each gene of an :class:`~hwnas.space.capabilities.Encodable` space becomes a categorical
parameter (``parameters``; ``from_parameters`` turns a pick into an arch). Results may arrive
in any order and for archs the study answered from its store: a result that matches a pending
Optuna trial finishes it, any other is added as a finished trial with the space's
``to_parameters`` of its arch, so the sampler learns from everything. The state saved with
each trial is the list of told (params, values); a resumed search rebuilds the Optuna study
from it (the sampler's random stream then differs from an uninterrupted run). An asked arch
that is ruled out untrained (a degenerate cell, a known cost over a constraint) is told to
Optuna as failed and asked again, as the other drawing strategies draw again. The strategy
never reads an arch's JSON itself: the space owns its genes.
"""

from __future__ import annotations

from typing import Any

from hwnas.core.pareto import Objectives, as_minimisation
from hwnas.space.base import Arch, Space
from hwnas.space.capabilities import Encodable
from hwnas.strategy.base import Proposal, Result, Strategy

SAMPLERS = ("tpe", "nsga2", "random")


class OptunaStrategy(Strategy):
    name = "optuna"
    requires = (Encodable,)

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        sampler: str = "tpe",
        population: int = 50,
    ) -> None:
        super().__init__(space, objectives, seed)
        import optuna

        assert isinstance(space, Encodable)
        self.genes: Encodable = space
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sampler_name = sampler
        self.params = space.parameters()
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {
            k: optuna.distributions.CategoricalDistribution(v) for k, v in self.params.items()
        }
        self.study = optuna.create_study(
            directions=["maximize" if d == "max" else "minimize" for _, d in self.objectives],
            sampler=self._sampler(sampler, seed, population),
        )
        self.pending: dict[str, list[Any]] = {}  # arch hash -> asked Optuna trials
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def _sampler(name: str, seed: int, population: int) -> Any:
        import optuna

        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        return optuna.samplers.RandomSampler(seed=seed)

    def weighs_known_costs(self) -> bool:
        return self.constraints_known()

    def ask(self) -> Proposal:
        def draw() -> tuple[Any, Arch]:
            trial = self.study.ask(self.distributions)
            return trial, self.genes.from_parameters(trial.params)

        # ruled out untrained: told failed at once and asked again (the last draw is taken
        # unchecked, so only a trial that is asked again is ever failed)
        trial, arch = self.feasible_draw(draw, self._failed)
        self.pending.setdefault(self.space.arch_hash(arch), []).append(trial)
        return Proposal(arch, info={"op": f"optuna-{self.sampler_name}"})

    def _failed(self, asked: tuple[Any, Arch]) -> bool:
        """Whether an asked trial is ruled out; if so it is told failed (and kept in the
        history, so a resumed study's sampler knows it too)."""
        import optuna

        trial, arch = asked
        if not self.ruled_out(arch):
            return False
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.history.append({"params": trial.params, "values": None})
        return True

    def tell(self, result: Result) -> None:
        import optuna

        vector = as_minimisation(result.metrics, self.objectives)
        values = None
        if result.status == "complete" and result.feasible and vector is not None:
            values = [
                -v if d == "max" else v for v, (_, d) in zip(vector, self.objectives, strict=True)
            ]
        queue = self.pending.get(self.space.arch_hash(result.arch))
        if queue:
            trial = queue.pop(0)
            params = trial.params
            if values is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, values)
        else:
            params = self.genes.to_parameters(result.arch)
            self._add(params, values)
        self.history.append({"params": params, "values": values})

    def _add(self, params: dict[str, Any], values: list[float] | None) -> None:
        import optuna

        self.study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=self.distributions,
                values=values,
                state=optuna.trial.TrialState.COMPLETE
                if values is not None
                else optuna.trial.TrialState.FAIL,
            )
        )

    def state(self) -> dict[str, Any]:
        return {**super().state(), "history": self.history}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.history = list(state.get("history", []))
        for item in self.history:
            self._add(item["params"], item["values"])
