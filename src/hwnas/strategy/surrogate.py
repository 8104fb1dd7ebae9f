"""Accuracy (and cost) surrogates trained on a study's own results, to pre-screen candidates.

One Gaussian process per objective on the space's genes (:mod:`hwnas.strategy.gp`): the
objectives a search ranks by, in minimisation form, so a cost the table or the target knows
and an accuracy known only after training are predicted alike. Predictor-guided evolution
(``strategy: evolution`` with ``guide``) mutates several children per proposal and keeps the
one the surrogate ranks best; every guided trial stores what was predicted for it
(``info.predicted``), and the study's summary reports the surrogate's held-out accuracy:
each prediction was made before its arch was evaluated.

Children are ranked by an optimistic value, mean minus ``optimism`` standard deviations (a
lower confidence bound): on the NB201 table (50 seeds, 100 archs) ranking by the mean alone
made evolution worse (regret 0.28 against 0.16 unguided: it picks near-copies of the best
arch), the bound made it better (0.084, the optimum found in 41 of 50 seeds against 24; on
other seeds, 0-29, the mean was level and the hits 22 against 19 of 30). With two objectives
the first pick rule (fewest told results dominating it) crowded part of the front (HV regret
at 100 / 300 archs 0.0130 / 0.0087 against 0.0123 / 0.0036 unguided); the largest predicted
hypervolume gain over the told front gives 0.0106 / 0.0041 (30 paired seeds).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.core.pareto import dominates, hypervolume, non_dominated_ranks
from hwnas.strategy.gp import GenePosterior, fit_bounded, refit_due


class GeneSurrogate:
    """Per-objective GPs; hyperparameters re-chosen while few results exist and then whenever
    the results have grown by a tenth (the cost per proposal stays bounded at 1000 trials)."""

    def __init__(self, objectives: int) -> None:
        self.hyper: list[tuple[np.ndarray, float] | None] = [None] * objectives
        self.hyper_n = [0] * objectives
        self.models: list[tuple[GenePosterior, float, float]] = []

    def fit(
        self, codes: Sequence[Sequence[int]], vectors: Sequence[Sequence[float]], rng: random.Random
    ) -> bool:
        """Fit on the told archs' gene codes and minimisation vectors; False: too few
        results or no kernel factorises (the caller then proposes as it would unguided)."""
        x = np.asarray(codes, dtype=float)
        v = np.asarray(vectors, dtype=float)
        if len(x) < 3:
            return False
        self.models = []
        for k in range(v.shape[1]):
            mu, sd = float(v[:, k].mean()), float(v[:, k].std()) or 1.0
            y = (v[:, k] - mu) / sd
            n = len(x)
            try:
                hyper = self.hyper[k]
                if refit_due(None if hyper is None else self.hyper_n[k], n):
                    chosen = fit_bounded(x, y, rng)
                    hyper = (chosen.weights, chosen.noise)
                    self.hyper[k], self.hyper_n[k] = hyper, n
                assert hyper is not None  # chosen above whenever there was none
                gp = GenePosterior(x, y, hyper[0], hyper[1])
            except np.linalg.LinAlgError:
                self.models = []
                return False
            self.models.append((gp, mu, sd))
        return True

    def state(self) -> dict[str, Any]:
        return {
            "hyper": [None if h is None else [h[0].tolist(), h[1]] for h in self.hyper],
            "hyper_n": self.hyper_n,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.hyper = [None if h is None else (np.array(h[0]), float(h[1])) for h in state["hyper"]]
        self.hyper_n = [int(n) for n in state["hyper_n"]]

    def predict(self, codes: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and standard deviations of the minimisation vectors, one row per
        arch (rounded: the same picks after a resume)."""
        z = np.asarray(codes, dtype=float)
        means, sds = [], []
        for gp, mu, sd in self.models:
            m, s = gp.predict(z)
            means.append(m * sd + mu)
            sds.append(s * sd)
        return np.round(np.stack(means, axis=1), 9), np.round(np.stack(sds, axis=1), 9)


def best_predicted(predicted: np.ndarray, told: Sequence[Sequence[float]]) -> int:
    """The row the search should evaluate. One objective: the lowest. Several: the largest
    hypervolume the row would add to the told front (objectives scaled by the told range,
    reference point a tenth beyond the worst told), so the picks spread along the front
    instead of crowding where the front is already dense; rows that would add nothing go by
    the fewest told results dominating them, then the lowest scaled sum."""
    told_a = np.asarray(told, dtype=float)
    lo, span = told_a.min(0), np.ptp(told_a, 0)
    if predicted.shape[1] == 1:
        return int(np.argmin(predicted[:, 0]))
    span = np.where(span > 0, span, 1.0)
    scaled = (predicted - lo) / span
    told_scaled = ((told_a - lo) / span).tolist()
    ranks = non_dominated_ranks(told_scaled)
    front = [p for p, r in zip(told_scaled, ranks, strict=True) if r == 0]
    ref = [1.1] * predicted.shape[1]
    base = hypervolume(front, ref)
    keys = []
    for i, row in enumerate(predicted):
        gain = hypervolume([*front, scaled[i].tolist()], ref) - base
        beaten = sum(dominates(t, row) for t in told_a)
        keys.append((-round(gain, 12), beaten, float(scaled[i].sum()), i))
    return min(keys)[3]
