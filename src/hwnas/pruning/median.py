"""The median stopping rule (as in Google Vizier and Optuna's MedianPruner), cost-aware.

A trial stops after epoch e when its best accuracy so far is below the median accuracy that
its peers had at epoch e (a peer stopped earlier counts with its best accuracy by then).
Peers are finished trials at the same fidelity. With cost objectives (known before
training) they are, by default (``peers: cheaper``), the trials that cost at most this trial's
on every cost: a trial stops only when half of the nets it must beat to reach the front beat
it, and the cheapest net of a study is never stopped. ``peers: similar`` takes the trials
whose every cost lies within a factor (1 + cost_band) of this trial's instead; where every
net costs about the same (the digits nets all time at ~0.03 ms on a fast CPU) that band holds
every trial and the cheap end of the front is stopped for being less accurate than the rest.

``percentile`` generalises the median as Optuna's PercentilePruner does: a trial goes on only
while it is in the top ``percentile`` % of its peers at that epoch (50: the median rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.core.fidelity import Fidelity
from hwnas.core.pareto import Objectives
from hwnas.pruning.base import Pruner, StopRule, cost_objectives, no_costlier, similar_costs


@dataclass
class Peer:
    costs: dict[str, float]
    accuracy: list[float]  # per epoch


def peers_for(
    metrics: Mapping[str, Any], peers: list[Peer], keys: list[str], cheaper: bool, band: float
) -> list[Peer]:
    """The peers a stop rule compares a trial costing ``metrics`` with: those that cost no
    more on every cost (``cheaper``: the nets it must beat to reach the front), or those
    within a factor (1 + ``band``) of its costs."""
    if cheaper:
        return [p for p in peers if no_costlier(metrics, p.costs, keys)]
    near = similar_costs([metrics], [p.costs for p in peers], keys, band)[0]
    return [p for p, ok in zip(peers, near, strict=True) if ok]


@dataclass
class MedianRule(StopRule):
    peers: list[Peer]
    cost_keys: list[str]
    cost_band: float
    warmup_epochs: int
    min_trials: int
    cheaper: bool = True
    percentile: float = 50.0
    _mine: list[Peer] = field(default_factory=list)
    _best: float = float("-inf")

    def start(self, metrics: Mapping[str, Any]) -> None:
        self._mine = peers_for(metrics, self.peers, self.cost_keys, self.cheaper, self.cost_band)

    def report(self, epoch: int, values: Mapping[str, float]) -> bool:
        acc = values.get("accuracy")
        if acc is None:
            return False
        self._best = max(self._best, float(acc))
        if epoch < max(1, self.warmup_epochs):
            return False
        # a peer stopped before this epoch counts with its best accuracy when it stopped:
        # the median of only the peers that got this far is the median of survivors, which
        # stops half of the rest at every epoch (on the digits search 52 of 60 trials)
        at = [
            p.accuracy[epoch - 1] if len(p.accuracy) >= epoch else max(p.accuracy)
            for p in self._mine
        ]
        if len(at) < self.min_trials:
            return False
        # the peers' accuracy that `percentile` % of them reach (50: their median)
        return self._best < float(np.percentile(at, 100.0 - self.percentile))


class PeerPruner(Pruner):
    """Keeps the finished trials' accuracy curves and costs, by fidelity: the peers a stop
    rule compares a running trial with."""

    #: the trial states whose curves count
    statuses: tuple[str, ...] = ("complete", "pruned")

    def __init__(self, cfg: Any, objectives: Objectives) -> None:
        self.cfg = cfg
        self.cost_keys = cost_objectives(objectives)
        self.peers: dict[str, list[Peer]] = {}  # by fidelity

    def observe(self, trial: Any) -> None:
        curve = [c.get("val_accuracy") for c in trial.curve]
        if trial.status not in self.statuses or not curve or None in curve:
            return
        costs = {k: trial.metrics[k] for k in self.cost_keys if k in trial.metrics}
        key = _fkey(trial.fidelity)
        self.peers.setdefault(key, []).append(Peer(costs, [float(a) for a in curve]))

    def peers_at(self, fidelity: Fidelity) -> list[Peer]:
        return list(self.peers.get(_fkey(fidelity.to_dict()), []))


class MedianPruner(PeerPruner):
    def rule(self, fidelity: Fidelity) -> StopRule | None:
        c = self.cfg
        return MedianRule(
            self.peers_at(fidelity),
            self.cost_keys,
            c.cost_band,
            c.warmup_epochs,
            c.min_trials,
            c.peers == "cheaper",
            c.percentile,
        )


def _fkey(fidelity: Mapping[str, Any]) -> str:
    return repr(sorted(fidelity.items()))
