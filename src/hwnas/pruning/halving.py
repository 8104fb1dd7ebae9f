"""Asynchronous successive halving (ASHA, Li et al. 2020) as a fidelity scheduler.

Rungs train ``min_epochs * eta**k`` epochs up to ``max_epochs``. A new arch starts at rung 0.
Whenever a worker is free, the highest rung with a trial in the top ``1/eta`` of its rung
(that has not been promoted yet) promotes it: the same arch is evaluated again, as a new
trial, at the next rung's epochs. Nothing waits for a rung to fill. With several objectives a
trial is ranked only among rung-mates of similar cost (costs are known before training), so
the fast end of the front is promoted too. All state is rebuilt from the stored trials.

With ``warm_start`` a promotion goes on from the weights the arch reached at its rung: it
trains only ``rung[k+1] - rung[k]`` epochs, with a fresh cosine cycle (an SGDR warm restart),
so 2 -> 6 costs 4 epochs instead of 6. Such a trial's ``fidelity`` is the epochs it trains,
not the total: fidelity is what the estimator is asked to do and what the trial costs (as for
NASH's trials, which also go on from trained weights), so summing it, or ``len(curve)``, over
trials counts the epochs spent, and a 4-epoch warm run is never mistaken for a 6-epoch run
from scratch. Its ``info`` holds ``rung``, ``promoted_from``, ``inherit`` (the weights it
starts from) and ``epochs_total`` (the epochs its weights have seen); its trial key names the
evaluation it starts from, so no earlier trial answers it.
"""

from __future__ import annotations

from typing import Any

from hwnas.core.fidelity import Fidelity
from hwnas.core.pareto import Objectives
from hwnas.pruning.base import Promotion, Scheduler, cost_objectives, similar_cost


class AsyncHalving(Scheduler):
    def __init__(self, cfg: Any, objectives: Objectives, default_epochs: int | None) -> None:
        top = cfg.max_epochs or default_epochs
        if not top:
            raise ValueError("scheduler: halving needs max_epochs (the estimator has no epochs)")
        self.rungs = [cfg.min_epochs]
        while self.rungs[-1] * cfg.eta < top:
            self.rungs.append(self.rungs[-1] * cfg.eta)
        if self.rungs[-1] != top:
            self.rungs.append(top)
        self.eta, self.band = cfg.eta, cfg.cost_band
        self.warm_start = bool(getattr(cfg, "warm_start", False))
        self.cost_keys = cost_objectives(objectives)
        self.results: list[list[Any]] = [[] for _ in self.rungs]  # finished, complete trials
        self.promoted: set[int] = set()  # ids already promoted (or being)

    def fidelity(self, requested: Fidelity | None) -> Fidelity | None:
        if requested is not None and requested.epochs is not None:
            return requested  # the strategy asked for a budget itself
        return Fidelity(epochs=self.rungs[0])

    def _rung(self, trial: Any) -> int | None:
        """A promotion's rung is in its info (a warm start's fidelity is only its extra
        epochs); a strategy's proposal is at the rung of its epochs, if any."""
        rung = trial.info.get("rung")
        if rung is None:
            epochs = trial.info.get("epochs_total", trial.fidelity.get("epochs"))
            rung = self.rungs.index(epochs) if epochs in self.rungs else None
        return rung

    def observe(self, trial: Any) -> None:
        src = trial.info.get("promoted_from")
        if src is not None:
            self.promoted.add(int(src))
        rung = self._rung(trial)
        if rung is not None and trial.status == "complete" and "accuracy" in trial.metrics:
            self.results[rung].append(trial)

    def launched(self, trial: Any) -> None:
        src = trial.info.get("promoted_from")
        if src is not None:
            self.promoted.add(int(src))

    def promotion(self) -> Promotion | None:
        for k in range(len(self.rungs) - 2, -1, -1):
            done = self.results[k]
            for t in sorted(done, key=lambda t: -t.metrics["accuracy"]):
                if t.id in self.promoted:
                    continue
                mates = [
                    m for m in done if similar_cost(t.metrics, m.metrics, self.cost_keys, self.band)
                ]
                better = sum(m.metrics["accuracy"] > t.metrics["accuracy"] for m in mates)
                if better < len(mates) // self.eta:
                    top = self.rungs[k + 1]
                    if self.warm_start:  # from the weights of rung k: only the extra epochs
                        extra = Fidelity(epochs=top - self.rungs[k])
                        return Promotion(t.id, t.arch, extra, k + 1, True, top)
                    return Promotion(t.id, t.arch, Fidelity(epochs=top), k + 1, False, top)
        return None
