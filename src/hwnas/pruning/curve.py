"""Learning-curve extrapolation (after Domhan et al. 2015), as a predictor and a pruner.

A validation-accuracy curve seen for its first epochs is fitted by several parametric
families of saturating curves; the families' predictions at the schedule's last epoch are
averaged with Akaike weights (a family that fits the seen points better, with fewer
parameters, counts more) and their spread, plus the fit's residual, is the uncertainty.
Domhan et al. fit 11 families by MCMC; a handful of least-squares fits keeps a prediction at
milliseconds, which a pruner called every epoch needs.

The pruner stops a trial when even an optimistic extrapolation (mean + ``optimism`` sd)
stays below the final accuracy its peers reached (the best of them by default): the trial
is then very unlikely to join the front. Peers are as in the median rule: finished trials at
the same fidelity that cost no more on every cost objective (``peers: cheaper``: with the
best of them as the mark, a trial stops only when it is predicted dominated), or whose costs
are within a factor (1 + cost_band) of this trial's (``peers: similar``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from hwnas.core.fidelity import Fidelity
from hwnas.pruning.base import StopRule
from hwnas.pruning.median import Peer, PeerPruner, peers_for


def _pow3(t: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * t ** (-alpha)


def _exp3(t: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - a * np.exp(-b * t)


def _log2(t: np.ndarray, a: float, b: float) -> np.ndarray:
    return a + b * np.log(t)


def _mmf(t: np.ndarray, a: float, b: float, k: float, d: float) -> np.ndarray:
    return a - (a - b) / (1.0 + (k * t) ** d)


def _weibull(t: np.ndarray, a: float, b: float, k: float, d: float) -> np.ndarray:
    return a - (a - b) * np.exp(-((k * t) ** d))


#: name -> (function, initial guess from (last value, first value), lower, upper bounds)
Family = tuple[
    Callable[..., np.ndarray], Callable[[float, float], list[float]], list[float], list[float]
]
FAMILIES: dict[str, Family] = {
    "pow3": (_pow3, lambda last, first: [last, last - first, 0.5], [0, 0, 0], [1, 1, 10]),
    "exp3": (_exp3, lambda last, first: [last, last - first, 0.5], [0, -1, 0], [1, 2, 10]),
    "log2": (_log2, lambda last, first: [first, last - first], [-1, 0], [1, 1]),
    "mmf": (_mmf, lambda last, first: [last, first, 0.5, 1.0], [0, 0, 1e-3, 0.1], [1, 1, 10, 10]),
    "weibull": (
        _weibull,
        lambda last, first: [last, first, 0.5, 1.0],
        [0, 0, 1e-3, 0.1],
        [1, 1, 10, 10],
    ),
}


@dataclass
class Extrapolation:
    mean: float
    sd: float
    families: dict[str, float]  # each fitted family's prediction


def extrapolate(curve: list[float], total: int) -> Extrapolation:
    """The accuracy at epoch ``total`` from ``curve`` (accuracy after epochs 1..len(curve)).

    With fewer than 3 points, or if no family fits, the last value stands (sd 0)."""
    y = np.asarray(curve, dtype=float)
    last = float(y[-1]) if len(y) else 0.0
    if len(y) < 3 or total <= len(y):
        return Extrapolation(last, 0.0, {})
    t = np.arange(1, len(y) + 1, dtype=float)
    preds: dict[str, float] = {}
    scores: dict[str, float] = {}
    residual = 0.0
    for name, (f, guess, lo, hi) in FAMILIES.items():
        k = len(lo)
        if k >= len(y):  # as many parameters as points: it would fit anything
            continue
        p0 = np.clip(guess(float(y.max()), float(y[0])), lo, hi)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                params, _ = curve_fit(f, t, y, p0=p0, bounds=(lo, hi), maxfev=2000)
        except (RuntimeError, ValueError):
            continue
        fitted = f(t, *params)
        at_end = float(f(np.array([float(total)]), *params)[0])
        if not (np.isfinite(fitted).all() and math.isfinite(at_end)):
            continue
        sse = float(((fitted - y) ** 2).sum())
        preds[name] = min(max(at_end, 0.0), 1.0)
        scores[name] = len(y) * math.log(sse / len(y) + 1e-12) + 2 * k  # AIC
        residual = max(residual, math.sqrt(sse / len(y)))
    if not preds:
        return Extrapolation(last, 0.0, {})
    best = min(scores.values())
    w = {n: math.exp(-0.5 * (s - best)) for n, s in scores.items()}
    z = sum(w.values())
    mean = sum(w[n] * preds[n] for n in preds) / z
    spread = math.sqrt(sum(w[n] * (preds[n] - mean) ** 2 for n in preds) / z)
    return Extrapolation(mean, math.sqrt(spread**2 + residual**2), preds)


@dataclass
class CurveRule(StopRule):
    peers: list[Peer]
    cost_keys: list[str]
    cost_band: float
    min_epochs: int
    min_trials: int
    optimism: float
    quantile: float
    cheaper: bool = True
    _finals: list[float] = field(default_factory=list)
    _total: int = 0
    _seen: list[float] = field(default_factory=list)
    last: Extrapolation | None = None

    def start(self, metrics: Mapping[str, Any]) -> None:
        mine = peers_for(metrics, self.peers, self.cost_keys, self.cheaper, self.cost_band)
        full = max((len(p.accuracy) for p in self.peers), default=0)  # the schedule's length
        self._total = full
        self._finals = sorted(p.accuracy[-1] for p in mine if len(p.accuracy) == full)

    def report(self, epoch: int, values: Mapping[str, float]) -> bool:
        acc = values.get("accuracy")
        if acc is None:
            return False
        self._seen.append(float(acc))
        if epoch < max(3, self.min_epochs) or len(self._finals) < self.min_trials:
            return False
        if epoch >= self._total:
            return False
        self.last = extrapolate(self._seen, self._total)
        q = self._finals[min(len(self._finals) - 1, int(self.quantile * len(self._finals)))]
        return self.last.mean + self.optimism * self.last.sd < q


class CurvePruner(PeerPruner):
    #: complete trials only: a pruned trial's curve says nothing of a final accuracy
    statuses = ("complete",)

    def rule(self, fidelity: Fidelity) -> StopRule | None:
        c = self.cfg
        return CurveRule(
            self.peers_at(fidelity),
            self.cost_keys,
            c.cost_band,
            c.min_epochs,
            c.min_trials,
            c.optimism,
            c.quantile,
            c.peers == "cheaper",
        )
