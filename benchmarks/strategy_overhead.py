"""Strategy overhead per proposal with a big study: ask + tell time of each strategy while its
study grows to ``--trials`` results (NAS-Bench-201 cell space, two objectives, the table's
validation accuracy and Pixel 3 latency as results; no training, no store).

Prints median, mean, 95th percentile and maximum over the last 100 proposals (the study then
holds ``trials - 100`` to ``trials`` results): a model-based strategy must stay usable at
1000 trials (a GP must not turn a 5 ms tabular trial into a second).
Usage: python benchmarks/strategy_overhead.py [--trials 1000] [--strategies random,evolution,...]
       [--tag NAME]   (bo-known: BO with the latency looked up for every candidate it weighs)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import time
from pathlib import Path

from _common import save

from hwnas.core.registry import strategies
from hwnas.space.cell import CellSpace
from hwnas.strategy import make_strategy
from hwnas.strategy.base import Result

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {
    "random": {"name": "random"},
    "evolution": {"name": "evolution"},
    "reinforce": {"name": "reinforce"},
    "bo": {"name": "bo"},  # two objectives: EHVI
    "bo-known": {"name": "bo"},  # EHVI with the latency looked up for every candidate
    "bo-parego": {"name": "bo", "acquisition": "parego"},
    "optuna-tpe": {"name": "optuna", "sampler": "tpe"},
}


def run(name: str, trials: int, table: dict[str, tuple[float, float]]) -> list[float]:
    space = CellSpace()
    cfg = strategies.validate(SECTIONS[name])
    s = make_strategy(cfg, space, [("accuracy", "max"), ("latency_ms", "min")], seed=0)
    if name.endswith("-known"):  # as the experiment sets it for a `tabular` target
        s.known_costs = lambda arch: {"latency_ms": table[space.key(arch)][1]}
    times = []
    for i in range(trials):
        t0 = time.perf_counter()
        arch = s.ask().arch
        acc, ms = table[space.key(arch)]
        s.tell(Result(i, arch, "complete", {"accuracy": acc, "latency_ms": ms}))
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--strategies", default="random,evolution,reinforce,bo,bo-parego,optuna-tpe")
    ap.add_argument("--tag", default="", help="appended to the result file's name")
    ap.add_argument(
        "--table", default=str(REPO.parent / "shared/benchmarks/nb201_cifar10_hw.csv.gz")
    )
    a = ap.parse_args()
    with gzip.open(a.table, "rt") as fh:
        table = {
            r["arch_str"]: (float(r["cifar10_valid_acc"]), float(r["pixel3_ms"]))
            for r in csv.DictReader(fh)
        }
    out = {}
    for name in a.strategies.split(","):
        t0 = time.perf_counter()
        times = run(name, a.trials, table)
        last = sorted(times[-100:])
        out[name] = {
            "median_ms": round(1000 * statistics.median(last), 3),
            "mean_ms": round(1000 * statistics.mean(last), 3),
            "p95_ms": round(1000 * last[94], 3),
            "max_ms": round(1000 * last[-1], 3),
            "whole_run_s": round(time.perf_counter() - t0, 2),
        }
        print(f"{name:>11}: {out[name]}", flush=True)
    name = "strategy_overhead" + (f"-{a.tag}" if a.tag else "")
    save(name, {"trials": a.trials, "per_proposal_last_100": out})


if __name__ == "__main__":
    main()
