"""Pareto fronts, non-dominated sorting, crowding distance and hypervolume.

Everything works on *minimisation* vectors: a maximised objective is negated by
:func:`as_minimisation`. Ties are broken by the cheaper model (MACs, then params), never by
arrival order, so a front does not depend on which equal candidate came first. Pure Python:
imported by the CLI without torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

Objectives = Sequence[tuple[str, str]]  # (metric, "max" | "min")


def as_minimisation(metrics: Mapping[str, Any], objectives: Objectives) -> tuple[float, ...] | None:
    """Objective vector to minimise, or None when a metric is missing or not finite."""
    out = []
    for metric, direction in objectives:
        v = metrics.get(metric)
        if v is None or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out.append(-float(v) if direction == "max" else float(v))
    return tuple(out)


_EXPENSIVE = sys.float_info.max  # finite, so it survives JSON (strategy state) unchanged


def cost_key(metrics: Mapping[str, Any]) -> tuple[float, float]:
    """Cheaper first: MACs, then params (missing counts as most expensive)."""
    return (
        float(metrics.get("macs") or _EXPENSIVE),
        float(metrics.get("params") or _EXPENSIVE),
    )


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def non_dominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Rank 0 = non-dominated, 1 = non-dominated once rank 0 is removed, ... (NSGA-II)."""
    if not points:
        return []
    if len(points[0]) == 2:
        return _ranks_2d(points)
    return _ranks_nd(points)


def _ranks_nd(points: Sequence[Sequence[float]]) -> list[int]:
    """:func:`non_dominated_ranks` for any number of objectives: the dominance relation of
    all pairs as one boolean matrix, built in row blocks (array operations, not a Python loop
    over pairs: a rung of 1000 trials with three objectives took 0.5 s a promotion), then
    fronts peeled off by counting who still dominates each point."""
    import numpy as np  # lazily: the CLI imports this module and must start fast

    p = np.asarray(points, dtype=float)
    n = len(p)
    dom = np.empty((n, n), dtype=bool)  # dom[i, j]: point i dominates point j
    step = max(1, _BLOCK_CELLS // max(1, n))
    for lo in range(0, n, step):
        le = np.ones((len(p[lo : lo + step]), n), dtype=bool)
        lt = np.zeros_like(le)
        for k in range(p.shape[1]):  # one objective at a time: no points x points x m array
            col = p[lo : lo + step, k, None]
            le &= col <= p[None, :, k]
            lt |= col < p[None, :, k]
        dom[lo : lo + step] = le & lt
    count = dom.sum(0)  # how many points dominate each one
    ranks = np.zeros(n, dtype=int)
    current, rank = np.flatnonzero(count == 0), 0
    while current.size:
        ranks[current] = rank
        count = count - dom[current].sum(0)
        count[current] = -1  # ranked: out of play
        current, rank = np.flatnonzero(count == 0), rank + 1
    return [int(r) for r in ranks]


#: elements of one row block's comparison (rows x points): a few 16 MB boolean arrays
_BLOCK_CELLS = 1 << 24


def _ranks_2d(points: Sequence[Sequence[float]]) -> list[int]:
    """:func:`non_dominated_ranks` for two objectives by sweeps, O(n log n + fronts x n)
    instead of all pairs: a scheduler ranks whole rungs of a long study on every promotion.
    Sorted by (first, second), whatever dominates a point comes before it; so a point is
    dominated when an earlier one left in play has a smaller second value, or the same second
    value with a smaller first one (an equal point does not dominate it)."""
    left = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    ranks = [0] * len(points)
    rank = 0
    while left:
        best_y, best_x = math.inf, math.inf  # the least second value so far, and its first
        rest = []
        for i in left:
            x, y = points[i][0], points[i][1]
            if best_y < y or (best_y == y and best_x < x):
                rest.append(i)
            else:
                ranks[i] = rank
            if (y, x) < (best_y, best_x):  # also an infinite second value's first point
                best_y, best_x = y, x
        left, rank = rest, rank + 1
    return ranks


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance within one set of points (boundary points: infinity)."""
    n = len(points)
    if n == 0:
        return []
    dist = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for k in range(1, n - 1):
            dist[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (hi - lo)
    return dist


def nsga2_keys(points: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """NSGA-II's order of minimisation vectors as one sort key per point: its non-dominated
    rank, then minus its crowding distance within that rank (lower sorts first)."""
    ranks = non_dominated_ranks(points)
    crowd = [0.0] * len(points)
    for r in set(ranks):
        idx = [i for i, x in enumerate(ranks) if x == r]
        for i, d in zip(idx, crowding_distances([points[i] for i in idx]), strict=True):
            crowd[i] = d
    return [(r, -d) for r, d in zip(ranks, crowd, strict=True)]


def pareto_indices(metrics: Sequence[Mapping[str, Any]], objectives: Objectives) -> list[int]:
    """Indices of the non-dominated entries; of equal objective vectors only the cheapest."""
    best_by_vector: dict[tuple[float, ...], int] = {}
    for i, m in enumerate(metrics):
        v = as_minimisation(m, objectives)
        if v is None:
            continue
        j = best_by_vector.get(v)
        if j is None or cost_key(m) < cost_key(metrics[j]):
            best_by_vector[v] = i
    # lexicographic order: whatever dominates a vector comes before it, so comparing with the
    # front accepted so far suffices (O(n * front) instead of O(n^2))
    front: list[int] = []
    ordered = sorted(best_by_vector)
    if len(objectives) == 2:  # sweep: on the front iff better in the 2nd than all before
        best = math.inf
        for v in ordered:
            if v[1] < best:
                best = v[1]
                front.append(best_by_vector[v])
        return sorted(front)
    accepted: list[tuple[float, ...]] = []
    for v in ordered:
        if not any(dominates(w, v) for w in accepted):
            accepted.append(v)
            front.append(best_by_vector[v])
    return sorted(front)


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) up to ``reference``.

    Slices along the first objective and recurses (HSO); fast enough for the fronts of a
    search (tens of points, 2-3 objectives).
    """
    pts = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference, strict=True))]
    if not pts:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in pts)
    pts.sort()
    if len(reference) == 2:  # sweep in x, the height is set by the lowest y so far
        volume, low = 0.0, math.inf
        for i, (x, y) in enumerate(pts):
            low = min(low, y)
            upper = pts[i + 1][0] if i + 1 < len(pts) else reference[0]
            volume += (upper - x) * (reference[1] - low)
        return volume
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][0] if i + 1 < len(pts) else reference[0]
        width = upper - p[0]
        if width <= 0:
            continue
        volume += width * hypervolume([q[1:] for q in pts[: i + 1]], reference[1:])
    return volume
