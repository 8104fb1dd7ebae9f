"""Search strategies: how the space is explored (ask/tell)."""

from __future__ import annotations

from typing import Any

from hwnas.core.errors import UserError
from hwnas.core.pareto import Objectives
from hwnas.core.registry import strategies
from hwnas.space.base import Space
from hwnas.strategy.base import (
    Proposal,
    Result,
    Strategy,
    StrategyDone,
    StrategyWaiting,
    check_space,
)

__all__ = ["Proposal", "Result", "Strategy", "StrategyDone", "StrategyWaiting", "make_strategy"]


def make_strategy(cfg: Any, space: Space, objectives: Objectives, seed: int) -> Strategy:
    """The strategy a validated ``strategy`` section names, built from that section alone.

    A strategy that cannot work with the space (it lacks a capability the strategy
    ``requires``: NASH without morphisms, Optuna without named genes) or without its package
    is a one-line error naming the strategy, raised before anything is built.
    """
    try:
        factory = strategies.entry(cfg.name).resolve()
        owner = getattr(factory, "__self__", factory)  # ``Class.from_config`` -> Class
        if isinstance(owner, type) and issubclass(owner, Strategy):
            check_space(owner, space)
        strategy: Strategy = strategies.create(cfg, space, objectives, seed)
    except ImportError as exc:
        raise UserError(
            f"strategy: {cfg.name} needs the {exc.name} package (pip install {exc.name})"
        ) from None
    except (ValueError, NotImplementedError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"strategy: {cfg.name}: {exc}") from None
    return strategy
