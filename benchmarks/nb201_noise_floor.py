"""How low can one-objective regret go on a noisy NB201 table? An oracle's floor.

On `nb201_tabular.py --noise SD` every trial's validation accuracy carries Gaussian noise, and
the pick is the arch with the best (mean) validation figure; regret is 94.37 minus the pick's
test accuracy. This asks what an oracle gets that needs no search at all: it evaluates exactly
the table's top-k archs by true validation accuracy, each ``reps`` times, and picks by the mean.
No strategy that picks by validation can beat that floor with as many evaluations, so a
regret goal below it is out of reach at that noise, whatever the search.
Usage: python benchmarks/nb201_noise_floor.py [--table PATH] [--noise 0.3] [--draws 2000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import statistics
from pathlib import Path

from _common import save

BEST_TEST = 94.37
REPO = Path(__file__).resolve().parents[1]


def floor(top: list[tuple[float, float]], reps: int, noise: float, draws: int) -> float:
    """Mean regret of picking, among ``top`` (validation, test), the best mean of ``reps``
    noisy validation readings each, over ``draws`` seeded draws."""
    regrets = []
    for s in range(draws):
        rng = random.Random(s)
        noisy = [
            (statistics.fmean(v + rng.gauss(0.0, noise) for _ in range(reps)), t) for v, t in top
        ]
        regrets.append(BEST_TEST - max(noisy)[1])
    return statistics.fmean(regrets)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--table", default=str(REPO.parent / "shared/benchmarks/nb201_cifar10_hw.csv.gz")
    )
    ap.add_argument("--noise", type=float, default=0.3, help="points of accuracy (0.3 = 0.003)")
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    with gzip.open(args.table, "rt") as fh:
        rows = [
            (float(r["cifar10_valid_acc"]), float(r["cifar10_test_acc"]))
            for r in csv.DictReader(fh)
        ]
    rows.sort(reverse=True)
    floors = {
        f"top{k}_x{reps}": round(floor(rows[:k], reps, args.noise, args.draws), 4)
        for k in (2, 3, 10, 30)
        for reps in (1, 3, 10, 100)
    }
    for name, value in floors.items():
        print(f"{name:>12}: {value:.3f}")
    save(
        "nb201_noise_floor",
        {
            "noise_points": args.noise,
            "draws": args.draws,
            "top5_valid_test": rows[:5],
            "oracle_regret": floors,
            "reading": "topK_xR: evaluate the table's true top-K archs (by validation) R times "
            "each with N(0, noise) on validation, pick the best mean; mean test regret.",
        },
    )


if __name__ == "__main__":
    main()
