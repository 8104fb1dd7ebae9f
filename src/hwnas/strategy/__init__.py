"""Search strategies: how the space is explored (ask/tell)."""

from __future__ import annotations

from typing import Any

from hwnas.errors import UserError
from hwnas.experiment.pareto import Objectives
from hwnas.space.base import Space
from hwnas.strategy.base import Proposal, Result, Strategy, StrategyDone, StrategyWaiting

__all__ = ["Proposal", "Result", "Strategy", "StrategyDone", "StrategyWaiting", "make_strategy"]


def make_strategy(cfg: Any, space: Space, objectives: Objectives, seed: int) -> Strategy:
    """The strategy a validated ``strategy`` section names."""
    if cfg.name == "random":
        from hwnas.strategy.random import RandomSearch

        return RandomSearch(space, objectives, seed)
    if cfg.name == "evolution":
        from hwnas.strategy.evolution import RegularizedEvolution

        return RegularizedEvolution(
            space,
            objectives,
            seed,
            population=cfg.population,
            sample_size=cfg.sample_size,
            selection=cfg.selection,
            weights=cfg.weights,
            crossover_prob=cfg.crossover_prob,
            mutations=cfg.mutations,
            fresh_tries=cfg.fresh_tries,
        )
    if cfg.name == "optuna":
        try:
            from hwnas.strategy.optuna import OptunaStrategy
        except ImportError:
            raise UserError(
                "strategy: optuna needs the optuna package (pip install optuna)"
            ) from None
        try:
            return OptunaStrategy(
                space, objectives, seed, sampler=cfg.sampler, population=cfg.population
            )
        except NotImplementedError as exc:
            raise UserError(f"strategy: optuna: {exc}") from None
    if cfg.name == "nash":
        from hwnas.strategy.nash import Nash

        try:
            return Nash(
                space,
                objectives,
                seed,
                **cfg.model_dump(exclude={"name"}),
            )
        except ValueError as exc:
            raise UserError(f"strategy: {exc}") from None
    raise ValueError(f"strategy: unknown name {cfg.name!r}")
