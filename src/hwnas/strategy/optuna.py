"""Optuna's samplers as hwnas strategies (TPE, NSGA-II, random, ...), through ask/tell.

Each space gene becomes a categorical parameter (:meth:`Space.parameters`). Results may arrive
in any order and for archs the study answered from its store: a result that matches a pending
Optuna trial finishes it, any other is added as a finished trial, so the sampler learns from
everything. The state saved with each trial is the list of told (params, values); a resumed
search rebuilds the Optuna study from it (the sampler's random stream then differs from an
uninterrupted run).
"""

from __future__ import annotations

from typing import Any

from hwnas.core.pareto import Objectives, as_minimisation
from hwnas.space.base import Space
from hwnas.strategy.base import Proposal, Result, Strategy

SAMPLERS = ("tpe", "nsga2", "random")


class OptunaStrategy(Strategy):
    name = "optuna"

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        sampler: str = "tpe",
        population: int = 50,
    ) -> None:
        import optuna

        super().__init__(space, objectives, seed)
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

    def ask(self) -> Proposal:
        trial = self.study.ask(self.distributions)
        arch = self.space.from_parameters(trial.params)
        self.pending.setdefault(self.space.arch_hash(arch), []).append(trial)
        return Proposal(arch, info={"op": f"optuna-{self.sampler_name}"})

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
            params = self._params_of(result.arch)
            self._add(params, values)
        self.history.append({"params": params, "values": values})

    def _params_of(self, arch: dict[str, Any]) -> dict[str, Any]:
        """Recover gene values of an arch that Optuna did not propose (e.g. on resume)."""
        for trial_list in self.pending.values():
            for t in trial_list:
                if self.space.from_parameters(t.params) == arch:
                    return dict(t.params)
        return _flatten_by_search(self.space, arch, self.params)

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


def _flatten_by_search(
    space: Space, arch: dict[str, Any], params: dict[str, list[Any]]
) -> dict[str, Any]:
    """Gene values for an arch, read from its JSON by the parameter names the spaces use."""
    if "ops" in arch and all(k.startswith("edge") for k in params):  # cell
        return dict(zip(params, arch["ops"], strict=True))
    if "stages" in arch:  # chain
        out: dict[str, Any] = {}
        for i, s in enumerate(arch["stages"]):
            out[f"s{i}.depth"], out[f"s{i}.width"] = s["depth"], s["width"]
            out.update({f"s{i}.op{b}": op for b, op in enumerate(s["ops"])})
        return out
    return {k: arch[k] for k in params}  # user spaces: the arch is the parameters
