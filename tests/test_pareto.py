from __future__ import annotations

import math
import random

import pytest

from hwnas.core.pareto import (
    as_minimisation,
    crowding_distances,
    dominates,
    hypervolume,
    non_dominated_ranks,
    pareto_indices,
)

OBJ = [("accuracy", "max"), ("latency_ms", "min")]


def _pairwise_ranks(points):
    """Non-dominated ranks by their definition: peel off the points no remaining one
    dominates, front by front (the reference the fast versions are tested against)."""
    left, ranks, rank = set(range(len(points))), [0] * len(points), 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left, rank = left - front, rank + 1
    return ranks


def test_ranks_and_front():
    pts = [(0.0, 0.0), (1.0, 1.0), (0.5, 0.5), (0.0, 1.0), (2.0, 2.0)]
    assert non_dominated_ranks(pts) == [0, 2, 1, 1, 3]


def test_two_objective_ranks_by_sweeps_match_the_pairwise_definition():
    """Two objectives take a sweep per front instead of comparing all pairs; the ranks are
    the pairwise definition's, ties and equal points included."""

    rng = random.Random(0)
    for _ in range(1000):
        values = [0.0, 1.0, 2.0, 3.0, math.inf]  # few values: many ties and duplicates
        pts = [(rng.choice(values), rng.choice(values)) for _ in range(rng.randint(1, 25))]
        assert non_dominated_ranks(pts) == _pairwise_ranks(pts), pts
    assert non_dominated_ranks([]) == []


def test_front_matches_brute_force():
    rng = random.Random(0)
    metrics = [
        {"accuracy": rng.random(), "latency_ms": rng.random(), "macs": i} for i in range(200)
    ]
    front = set(pareto_indices(metrics, OBJ))
    for i, m in enumerate(metrics):
        dominated = any(
            o["accuracy"] >= m["accuracy"] and o["latency_ms"] <= m["latency_ms"] and o is not m
            for o in metrics
        )
        assert (i in front) == (not dominated)


def test_ties_broken_by_cheaper_model_not_order():
    a = {"accuracy": 0.9, "latency_ms": 1.0, "macs": 500, "params": 10}
    b = {"accuracy": 0.9, "latency_ms": 1.0, "macs": 100, "params": 10}
    assert pareto_indices([a, b], OBJ) == [1]
    assert pareto_indices([b, a], OBJ) == [0]


def test_missing_or_nan_metrics_never_on_front():
    ms = [
        {"accuracy": float("nan"), "latency_ms": 0.1},
        {"latency_ms": 0.1},
        {"accuracy": 0.5, "latency_ms": 1},
    ]
    assert pareto_indices(ms, OBJ) == [2]
    assert as_minimisation({"accuracy": 0.5, "latency_ms": 2}, OBJ) == (-0.5, 2.0)


def test_crowding_boundaries_infinite():
    d = crowding_distances([(0, 3), (1, 2), (2, 1), (3, 0)])
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == pytest.approx(4 / 3)


def test_hypervolume_known_values():
    assert hypervolume([(0.0, 0.0)], [1.0, 1.0]) == pytest.approx(1.0)
    assert hypervolume([(0.5, 0.0), (0.0, 0.5)], [1.0, 1.0]) == pytest.approx(0.75)
    assert hypervolume([(0.5, 0.5), (0.6, 0.6)], [1.0, 1.0]) == pytest.approx(0.25)
    assert hypervolume([(2.0, 2.0)], [1.0, 1.0]) == 0.0
    assert hypervolume([(0.5, 0.5, 0.5)], [1.0, 1.0, 1.0]) == pytest.approx(0.125)
    # Monte-Carlo check of a random 3-D front
    rng = random.Random(1)
    pts = [(rng.random(), rng.random(), rng.random()) for _ in range(15)]
    hits = 0
    n = 40000
    for _ in range(n):
        q = (rng.random(), rng.random(), rng.random())
        hits += any(all(p[k] <= q[k] for k in range(3)) for p in pts)
    assert hypervolume(pts, [1, 1, 1]) == pytest.approx(hits / n, abs=0.01)


def test_three_objective_front_matches_brute_force():
    rng = random.Random(2)
    obj = [("accuracy", "max"), ("latency_ms", "min"), ("params", "min")]
    ms = [
        {"accuracy": rng.random(), "latency_ms": rng.random(), "params": rng.random()}
        for _ in range(150)
    ]
    front = set(pareto_indices(ms, obj))
    for i, m in enumerate(ms):
        dominated = any(
            o["accuracy"] >= m["accuracy"]
            and o["latency_ms"] <= m["latency_ms"]
            and o["params"] <= m["params"]
            and o is not m
            for o in ms
        )
        assert (i in front) == (not dominated)


def test_ranks_of_three_or_more_objectives_match_the_pairwise_definition():
    """Three and four objectives are ranked by array operations in row blocks; the ranks are
    the pairwise definition's, ties, duplicates and infinities included, also when the blocks
    are smaller than the set."""
    import hwnas.core.pareto as P

    rng = random.Random(1)
    values = [0.0, 1.0, 2.0, math.inf]
    for trial in range(600):
        m = 3 if trial % 2 else 4
        pts = [tuple(rng.choice(values) for _ in range(m)) for _ in range(rng.randint(1, 25))]
        assert non_dominated_ranks(pts) == _pairwise_ranks(pts), pts
    small = P._BLOCK_CELLS
    try:
        P._BLOCK_CELLS = 7  # blocks of one or two rows
        for _ in range(50):
            pts = [tuple(rng.choice(values) for _ in range(3)) for _ in range(rng.randint(1, 25))]
            assert non_dominated_ranks(pts) == _pairwise_ranks(pts), pts
    finally:
        P._BLOCK_CELLS = small
