"""Asynchronous successive halving (ASHA, Li et al. 2020) and asynchronous Hyperband as
fidelity schedulers.

Rungs train ``min_epochs * eta**k`` epochs up to ``max_epochs`` (or, for Hyperband over the
data, ``min_fraction * eta**k`` of the training split up to all of it). A new arch starts at
rung 0. Whenever a worker is free, the highest rung with a trial in the top ``1/eta`` of its
rung (that has not been promoted yet) promotes it: the same arch is evaluated again, as a new
trial, at the next rung's fidelity. Nothing waits for a rung to fill. With several objectives
the rung is ordered as NSGA-II orders a population (``promote: front``, as MO-ASHA, Schmucker
et al. 2021): by non-dominated rank on accuracy and the costs (known before training), then by
crowding distance, so the rung's own front -- its fast end included -- is promoted first;
``promote: similar`` ranks a trial by accuracy among rung-mates of similar cost instead. All
state is rebuilt from the stored trials.

Hyperband (Li et al. 2018) hedges halving's bet that early rankings hold: bracket ``b``
starts its archs at rung ``b`` (bracket 0 is ASHA itself, the last bracket trains every arch
at full fidelity) and halves only among its own archs. New archs are dealt to brackets in
Hyperband's proportions (bracket ``b`` gets ``ceil((B) / (B - b) * eta**(B - 1 - b))`` of
every round, B brackets over all rungs), asynchronously as in ASHA's paper: a free worker
never waits for a bracket. A root trial's bracket is its rung; a promotion's, its source's.

With ``warm_start`` a promotion goes on from the weights the arch reached at its rung: it
trains only ``rung[k+1] - rung[k]`` epochs, so 2 -> 6 costs 4 epochs instead of 6: with a
fresh cosine cycle (an SGDR warm restart, ``schedule: restart``), or (``schedule: resume``)
where its rung paused one training on the top rung's schedule, with the optimiser's momentum
and the data order (:mod:`hwnas.estimate.resume`), so an arch promoted to the top has been
trained exactly as one uninterrupted run. Such a trial's ``fidelity`` is the epochs it trains,
not the total: fidelity is what the estimator is asked to do and what the trial costs (as for
NASH's trials, which also go on from trained weights), so summing it, or ``len(curve)``, over
trials counts the epochs spent, and a 4-epoch warm run is never mistaken for a 6-epoch run
from scratch. Its ``info`` holds ``rung``, ``promoted_from``, ``inherit`` (the weights it
starts from) and ``epochs_total`` (the epochs its weights have seen); its trial key names the
evaluation it starts from, so no earlier trial answers it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas.core.fidelity import Fidelity
from hwnas.core.pareto import Objectives, as_minimisation, nsga2_keys
from hwnas.pruning.base import Promotion, Scheduler, cost_objectives, similar_costs


def ladder(low: float, top: float, eta: int) -> list[float]:
    """``low * eta**k`` below ``top``, then ``top``."""
    rungs = [low]
    while rungs[-1] * eta < top * (1 - 1e-9):
        rungs.append(rungs[-1] * eta)
    if abs(rungs[-1] - top) > 1e-9 * top:
        rungs.append(top)
    return rungs


def bracket_shares(brackets: int, eta: int) -> list[int]:
    """New archs per bracket in one Hyperband round: the most aggressive bracket (0) starts
    the most archs at the lowest fidelity, the last one a few at full fidelity."""
    return [
        math.ceil(brackets / (brackets - b) * eta ** (brackets - 1 - b)) for b in range(brackets)
    ]


class AsyncHalving(Scheduler):
    """ASHA: one bracket over epochs (``scheduler: halving``)."""

    resource = "epochs"

    def __init__(self, cfg: Any, objectives: Objectives, default_epochs: int | None) -> None:
        self.rungs = self._rungs(cfg, default_epochs)
        self.eta, self.band = cfg.eta, cfg.cost_band
        self.warm_start = bool(getattr(cfg, "warm_start", False))
        self._resume = getattr(cfg, "schedule", "restart") == "resume"
        self.cost_keys = cost_objectives(objectives)
        self.objectives = list(objectives)
        self.by_front = bool(self.cost_keys) and cfg.promote == "front"
        self.brackets = self._brackets(cfg)
        self.shares = bracket_shares(self.brackets, self.eta)
        # finished, complete trials per bracket and rung
        self.results: list[list[list[Any]]] = [
            [[] for _ in self.rungs] for _ in range(self.brackets)
        ]
        self.promoted: set[int] = set()  # ids already promoted (or being)
        self.bracket_of: dict[int, int] = {}  # trial id -> bracket
        self.roots: list[set[int]] = [set() for _ in range(self.brackets)]  # new archs dealt

    # ------------------------------------------------------------ the ladder
    def _rungs(self, cfg: Any, default_epochs: int | None) -> list[Any]:
        top = cfg.max_epochs or default_epochs
        if not top:
            raise ValueError(
                f"scheduler: {cfg.name} needs max_epochs (the estimator has no epochs)"
            )
        return [int(r) for r in ladder(cfg.min_epochs, top, cfg.eta)]

    def _brackets(self, cfg: Any) -> int:
        return 1

    def _fidelity(self, rung: int) -> Fidelity:
        return Fidelity(epochs=self.rungs[rung])

    def _rung_of(self, fidelity: dict[str, Any]) -> int | None:
        epochs = fidelity.get("epochs")
        return self.rungs.index(epochs) if epochs in self.rungs else None

    # ------------------------------------------------------------- the rules
    def fidelity(self, requested: Fidelity | None) -> Fidelity | None:
        if requested is not None and requested.epochs is not None:
            return requested  # the strategy asked for a budget itself
        return self._fidelity(self._next_bracket())

    @property
    def resume(self) -> bool:
        """Rungs are pauses of one training (off with the warm starts it needs)."""
        return self.warm_start and self._resume

    def train(self, fidelity: Fidelity) -> dict[str, Any] | None:
        top = self.rungs[-1]
        if self.resume and fidelity.epochs in self.rungs and fidelity.epochs < top:
            return {"schedule_epochs": top}
        return None

    def _next_bracket(self) -> int:
        """The bracket furthest behind its share of the new archs dealt so far (ties: the
        lower), so brackets are dealt in Hyperband's proportions, also after a resume."""
        dealt = [len(r) for r in self.roots]
        return min(range(self.brackets), key=lambda b: ((dealt[b] + 1) / self.shares[b], b))

    def _rung(self, trial: Any) -> int | None:
        """A promotion's rung is in its info (a warm start's fidelity is only its extra
        epochs); a strategy's proposal is at the rung of its fidelity, if any."""
        rung = trial.info.get("rung")
        if rung is None:
            total = trial.info.get("epochs_total")
            fid = dict(trial.fidelity or {})
            if total is not None:
                fid["epochs"] = total
            rung = self._rung_of(fid)
        return rung

    def _place(self, trial: Any) -> int | None:
        """The trial's bracket (None: at no rung, e.g. a strategy's own fidelity); placing a
        trial twice is harmless (it is launched, then observed)."""
        src = trial.info.get("promoted_from")
        if src is not None:
            self.promoted.add(int(src))
            bracket = self.bracket_of.get(int(src), 0)
        else:
            rung = self._rung(trial)
            if rung is None:
                return None
            bracket = min(rung, self.brackets - 1)
            if rung == bracket:  # dealt by :meth:`fidelity` (not a strategy's own request)
                self.roots[bracket].add(trial.id)
        self.bracket_of[trial.id] = bracket
        return bracket

    def observe(self, trial: Any) -> None:
        bracket = self._place(trial)
        rung = self._rung(trial)
        if bracket is None or rung is None:
            return
        if trial.status == "complete" and "accuracy" in trial.metrics:
            self.results[bracket][rung].append(trial)

    def launched(self, trial: Any) -> None:
        self._place(trial)

    def promotion(self) -> Promotion | None:
        for k in range(len(self.rungs) - 2, -1, -1):
            for b in range(min(k, self.brackets - 1) + 1):
                promo = self._promote(self.results[b][k], k)
                if promo is not None:
                    return promo
        return None

    def _promote(self, done: list[Any], k: int) -> Promotion | None:
        for t in self._candidates(done):
            if t.id not in self.promoted:
                top = self.rungs[k + 1]
                if self.warm_start:  # from the weights of rung k: only the extra epochs
                    extra = Fidelity(epochs=top - self.rungs[k])
                    train = None
                    if self.resume:  # on where rung k paused, on the top rung's schedule
                        train = {"schedule_epochs": self.rungs[-1], "start_epoch": self.rungs[k]}
                    return Promotion(t.id, t.arch, extra, k + 1, True, top, train)
                return Promotion(t.id, t.arch, self._fidelity(k + 1), k + 1, False, top)
        return None

    def _candidates(self, done: list[Any]) -> list[Any]:
        """The rung's trials that have earned a promotion, best first: its top 1/eta in
        NSGA-II's order (``promote: front``; one objective: by accuracy), or those in the top
        1/eta of their rung-mates of similar cost (``promote: similar``)."""
        if self.by_front:
            worst = (float("inf"),) * len(self.objectives)
            vecs = [as_minimisation(t.metrics, self.objectives) or worst for t in done]
            keys = nsga2_keys(vecs)
            order = sorted(range(len(done)), key=lambda i: (keys[i], done[i].id))
            return [done[i] for i in order[: len(done) // self.eta]]
        ordered = sorted(done, key=lambda t: -t.metrics["accuracy"])
        ms = [t.metrics for t in ordered]
        mates = similar_costs(ms, ms, self.cost_keys, self.band)
        acc = np.array([t.metrics["accuracy"] for t in ordered], dtype=float)
        better = (mates & (acc[None, :] > acc[:, None])).sum(1)
        keep = better < mates.sum(1) // self.eta
        return [t for t, k in zip(ordered, keep, strict=True) if k]


class AsyncHyperband(AsyncHalving):
    """Hyperband's brackets over epochs or the share of the data (``scheduler: hyperband``)."""

    def __init__(self, cfg: Any, objectives: Objectives, default_epochs: int | None) -> None:
        self.resource = cfg.resource
        super().__init__(cfg, objectives, default_epochs)

    def _rungs(self, cfg: Any, default_epochs: int | None) -> list[Any]:
        if cfg.resource == "epochs":
            return super()._rungs(cfg, default_epochs)
        return [round(r, 6) for r in ladder(cfg.min_fraction, 1.0, cfg.eta)]

    def _brackets(self, cfg: Any) -> int:
        return min(cfg.brackets or len(self.rungs), len(self.rungs))

    def _fidelity(self, rung: int) -> Fidelity:
        if self.resource == "epochs":
            return super()._fidelity(rung)
        return Fidelity(data_fraction=self.rungs[rung])

    def _rung_of(self, fidelity: dict[str, Any]) -> int | None:
        if self.resource == "epochs":
            return super()._rung_of(fidelity)
        share = round(float(fidelity.get("data_fraction") or 1.0), 6)
        return self.rungs.index(share) if share in self.rungs else None

    def fidelity(self, requested: Fidelity | None) -> Fidelity | None:
        if requested is not None and getattr(requested, self.resource) is not None:
            return requested
        return self._fidelity(self._next_bracket())
