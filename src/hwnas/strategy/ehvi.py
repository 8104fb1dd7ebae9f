"""Expected hypervolume improvement for two objectives, by Monte Carlo over a model's
independent normal predictions: what ``bo`` maximises when it searches a front.

Two objectives have a closed staircase: the area a point adds to a front is a sum over the
front's steps, so thousands of (candidate, draw) pairs cost a few array operations. Every
vector is a minimisation vector.
"""

from __future__ import annotations

import numpy as np


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` (n x 2) that no other row dominates, ascending; of
    equal rows the first. Sorted by the first objective, a row is on the front when it beats
    every row before it on the second: O(n log n), not the pairwise O(n^2)."""
    best, keep = np.inf, []
    for i in np.lexsort((points[:, 1], points[:, 0])):
        if points[i, 1] < best:
            best = points[i, 1]
            keep.append(int(i))
    return np.array(sorted(keep), dtype=int)


def hvi_2d(front: np.ndarray, points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The area each row of ``points`` (k x 2) adds to the region ``front`` dominates, both
    bounded by ``ref``: the sum over the front's staircase steps of width times the height
    of the step above the point."""
    f = front[np.lexsort((front[:, 1], front[:, 0]))]
    levels = np.concatenate([[ref[1]], np.minimum.accumulate(f[:, 1])])
    edges = np.concatenate([[-np.inf], f[:, 0], [ref[0]]])
    lo = np.maximum(edges[None, :-1], points[:, :1])
    hi = np.minimum(edges[None, 1:], ref[0])
    width = np.clip(hi - lo, 0.0, None)
    height = np.clip(np.minimum(levels[None, :], ref[1]) - points[:, 1:2], 0.0, None)
    return np.asarray((width * height).sum(1))


def expected_hvi(
    front: np.ndarray, mean: np.ndarray, sd: np.ndarray, ref: np.ndarray, draws: np.ndarray
) -> np.ndarray:
    """EHVI of k candidates predicted as independent normals (``mean``, ``sd``: k x 2),
    averaged over ``draws`` (s x k x 2 standard normal samples)."""
    samples = mean[None] + sd[None] * draws
    gains = hvi_2d(front, samples.reshape(-1, 2), ref)
    return np.asarray(gains.reshape(len(draws), len(mean)).mean(0))
