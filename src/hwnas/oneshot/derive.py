"""From theta's probabilities to archs: the most likely picks, the next most likely, and the
fix-up that brings a net asked for at a cost target within tolerance of it (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hwnas.oneshot.costs import ChoiceCosts

MAX_FIX_STEPS = 500


def _logp(probs: list[list[float]], j: int, i: int) -> float:
    return math.log(max(probs[j][i], 1e-12))


def most_likely(probs: list[list[float]], k: int) -> list[list[int]]:
    """The argmax picks, then up to ``k - 1`` more, each the argmax with the one position
    changed that loses the least log-probability (distinct, in order of likelihood)."""
    best = [max(range(len(row)), key=row.__getitem__) for row in probs]
    out = [best]
    swaps = sorted(
        (_logp(probs, j, best[j]) - _logp(probs, j, i), j, i)
        for j, row in enumerate(probs)
        for i in range(len(row))
        if i != best[j]
    )
    for _, j, i in swaps[: k - 1]:
        picks = list(best)
        picks[j] = i
        out.append(picks)
    return out


def fix_up(
    picks: list[int], probs: list[list[float]], costs: ChoiceCosts, target: float, tol: float
) -> tuple[list[int], int]:
    """Greedy changes until ``costs.of(picks)`` is within ``tol`` of ``target``: each step
    takes the change that gives up the least log-probability per unit of relative error it
    removes. Returns the picks and the number of changes (0: already within)."""
    picks, moves = list(picks), 0

    def err(p: list[int]) -> float:
        return abs(costs.of(p) / target - 1.0)

    while err(picks) > tol and moves < MAX_FIX_STEPS:
        now, best, best_score = err(picks), None, math.inf
        for j, row in enumerate(costs.table):
            for i in range(len(row)):
                if i == picks[j]:
                    continue
                trial = list(picks)
                trial[j] = i
                gain = now - err(trial)
                if gain <= 1e-12:
                    continue
                score = (_logp(probs, j, picks[j]) - _logp(probs, j, i)) / gain
                if score < best_score:
                    best, best_score = (j, i), score
        if best is None:
            break  # no change brings it closer: the target is outside the space's range
        picks[best[0]] = best[1]
        moves += 1
    return picks, moves


#: the default of ``strategy.load_factor``: a reading this many times the table's cost of the
#: very net is taken as load on the host, not as the table's error (the table's fit erred
#: within 25 % on every kind of net measured, ``benchmarks/lut_composition.py``); on an H100
#: box's CPU, readings taken right after the supernet trained ran 1.5-2.2x the same nets'
#: quiet ones, and the fix-up acting on them derived nets 27 % under their targets
DISTURBED = 1.35


def refit_measured(
    picks: list[int],
    probs: list[list[float]],
    costs: ChoiceCosts,
    target: float,
    tol: float,
    measure: Callable[[list[int]], float | None],
    readings: int,
    bound: bool = False,
    load_factor: float = DISTURBED,
) -> tuple[list[int], int, list[float], bool]:
    """Measure the net; while it misses ``target`` by more than ``tol`` and a reading is
    left, ask the table for ``target`` scaled by the table's error on this very net
    (measured / table cost) and fix up again, up to ``readings`` measurements. Returns the
    picks, the extra changes, the readings taken and whether they were disturbed; the last
    reading is the net returned. With ``bound`` (``target`` then sits ``tol`` below a
    constraint's bound) a reading counts only at or below ``target``: one at 0.99 x the
    bound was accepted, and the trial's own reading, 4 % slower, pruned the net the search
    was asked for. A reading ``load_factor`` times the table's is read again (a burst of
    load passes); twice in a row, or as the last reading, it stops the refit: the net is kept
    as the table fixed it up (load only ever slows a reading). Every reading counts."""
    taken: list[float] = []
    moves, suspect = 0, False
    for left in range(readings - 1, -1, -1):
        ms = measure(picks)
        if ms is None or ms <= 0:
            break
        taken.append(ms)
        if ms > load_factor * costs.of(picks):
            if suspect or left == 0:
                return picks, moves, taken, True
            suspect = True
            continue
        suspect = False
        if bound:  # at most target, and not needlessly far below it
            within = target * (1.0 - 2.0 * tol) <= ms <= target
        else:
            within = abs(ms / target - 1.0) <= tol
        if within or left == 0:
            break
        aim = target * costs.of(picks) / ms  # the table's reading of a net that measures target
        if bound:  # the fix-up's band then ends at target, not tol above it
            aim /= 1.0 + tol
        new, more = fix_up(picks, probs, costs, aim, tol)
        if new == picks:
            break  # the table cannot move it closer: keep it as measured
        picks, moves = new, moves + more
    return picks, moves, taken, False


def derive(
    probs: list[list[float]],
    costs: ChoiceCosts,
    k: int,
    target: float | None,
    tol: float,
    measure: Callable[[list[int]], float | None] | None = None,
    readings: int = 0,
    bound: bool = False,
    load_factor: float = DISTURBED,
) -> list[tuple[list[int], dict[str, Any]]]:
    """The ``k`` nets one setting yields, each with what the study keeps about it. With a
    ``target`` and ``measure`` (the run's target on a net's picks), a net is measured and
    fixed up against the measurement too (:func:`refit_measured`)."""
    out = []
    for picks in most_likely(probs, k):
        info: dict[str, Any] = {}
        if target is not None:
            before = costs.of(picks)
            picks, moves = fix_up(picks, probs, costs, target, tol)
            taken: list[float] = []
            disturbed = False
            if measure is not None and readings > 0:
                picks, more, taken, disturbed = refit_measured(
                    picks, probs, costs, target, tol, measure, readings, bound, load_factor
                )
                moves += more
            if moves or taken:
                info["fixed_up"] = {"changes": moves, "cost_before": before}
                if taken:
                    info["fixed_up"]["measured"] = taken
                if disturbed:
                    info["fixed_up"].update(disturbed=True, load_factor=load_factor)
        info["predicted_cost"] = costs.of(picks)
        info["log_prob"] = sum(_logp(probs, j, i) for j, i in enumerate(picks))
        out.append((picks, info))
    return out
