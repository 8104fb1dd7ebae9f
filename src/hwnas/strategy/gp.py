"""A Gaussian process on integer-coded genes, shared by the model-based strategies (`bo`,
predictor-guided `evolution`): the kernel ``s2 * exp(-sum_g w_g [a_g != b_g])`` compares
archs gene by gene, is positive definite on categorical values and needs no embedding; its
hyperparameters come from marginal likelihood over a small grid (no gradient steps)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import ndtr

from hwnas.space.base import Arch, Space

#: length scales, as shares of the number of genes, and noise variances (of standardised y)
LENGTHS = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0)
NOISES = (1e-4, 1e-2, 1e-1)
#: results the hyperparameters are chosen on (a random subset beyond): about 70 kernels are
#: factorised per choice, which at 1000 results would take seconds
FIT_POINTS = 200


class GenePosterior:
    """A GP posterior on integer-coded genes: ``k(a, b) = s2 * exp(-sum_g w_g [a_g != b_g])``,
    a weight (inverse length scale) per gene, so genes that matter little stop counting."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray,
        noise: float,
        chol: np.ndarray | None = None,
    ) -> None:
        """``chol``: the kernel's Cholesky factor for the first rows of ``x`` (same weights and
        noise), extended here by the rows after them: O(n^2) per new result, not O(n^3)."""
        self.x, self.weights, self.noise = x, weights, noise
        self.chol = _extend(chol, x, weights, noise)
        self.alpha = _solve(self.chol, y)
        self.s2 = max(float(y @ self.alpha) / len(x), 1e-12)
        self.lml = -0.5 * len(x) * math.log(self.s2) - float(np.log(np.diag(self.chol)).sum())

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> GenePosterior:
        """Hyperparameters chosen by marginal likelihood: the best shared weight and noise of
        a grid, then each gene's weight scaled while that helps."""
        genes = x.shape[1]
        best = None
        for share in LENGTHS:
            for noise in NOISES:
                best = _better(best, x, y, np.full(genes, 1.0 / (share * genes)), noise)
        if best is None:
            raise np.linalg.LinAlgError("no kernel of the grid factorises")
        found: GenePosterior = best
        for _ in range(2):  # coordinate search of per-gene weights (ARD)
            for g in range(genes):
                for factor in (0.25, 0.5, 2.0, 4.0):
                    w = found.weights.copy()
                    w[g] *= factor
                    found = _better(found, x, y, w, found.noise) or found
        return found

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the latent function at ``z``."""
        ks = np.exp(-_distance(z, self.x, self.weights))
        mean = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True)
        var = self.s2 * np.clip(1.0 - (v * v).sum(0), 1e-12, None)
        return mean, np.sqrt(var)


def _better(
    best: GenePosterior | None, x: np.ndarray, y: np.ndarray, w: np.ndarray, noise: float
) -> GenePosterior | None:
    try:
        gp = GenePosterior(x, y, w, noise)
    except np.linalg.LinAlgError:
        return best
    return gp if best is None or gp.lml > best.lml else best


def _extend(chol: np.ndarray | None, x: np.ndarray, w: np.ndarray, noise: float) -> np.ndarray:
    """The Cholesky factor of the kernel on ``x``, from that of its first rows (or none)."""
    m = 0 if chol is None else len(chol)
    new = x[m:]
    k_nn = np.exp(-_distance(new, new, w)) + noise * np.eye(len(new))
    if chol is None or m == 0:
        return np.linalg.cholesky(k_nn)
    b = solve_triangular(chol, np.exp(-_distance(x[:m], new, w)), lower=True)
    tail = np.linalg.cholesky(k_nn - b.T @ b)
    return np.block([[chol, np.zeros((m, len(new)))], [b.T, tail]])


def _distance(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Hamming distance between the rows of ``a`` and ``b``."""
    out = np.zeros((len(a), len(b)))
    for g, w in enumerate(weights):
        out += w * (a[:, g, None] != b[None, :, g])
    return out


def _solve(chol: np.ndarray, y: np.ndarray) -> np.ndarray:
    return solve_triangular(chol.T, solve_triangular(chol, y, lower=True), lower=False)


def expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """EI below ``best`` (minimisation)."""
    z = (best - mean) / sd
    return (best - mean) * ndtr(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def gene_codes(space: Space, genes: dict[str, list[Any]], arch: Arch) -> list[int] | None:
    """``arch`` as the index of each gene's value (None: not an arch of these genes)."""
    try:
        params = space.to_parameters(arch)  # type: ignore[attr-defined]
        return [values.index(params[k]) for k, values in genes.items()]
    except (KeyError, ValueError, TypeError):
        return None


def refit_due(fitted_on: int | None, n: int) -> bool:
    """Whether to choose the hyperparameters again with ``n`` results (``fitted_on``: the
    results they were last chosen on, None: never): while few, and then per tenth grown."""
    return fitted_on is None or n < 50 or n >= 1.1 * fitted_on


def fit_bounded(x: np.ndarray, y: np.ndarray, rng: Any) -> GenePosterior:
    """:meth:`GenePosterior.fit` on at most ``FIT_POINTS`` of the results (a seeded random
    subset): the cost of choosing hyperparameters stays bounded at 1000 trials."""
    n = len(x)
    pick = sorted(rng.sample(range(n), min(n, FIT_POINTS)))
    return GenePosterior.fit(x[pick], y[pick])
