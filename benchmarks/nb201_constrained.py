"""A hard latency bound on NAS-Bench-201: how much of the budget a strategy trains, and how
close its pick comes to the best cell within the bound.

    python benchmarks/nb201_constrained.py [--bound 5] [--latency pixel3_ms] [--budget 100]
        [--seeds 10] [--strategies evolution,random,bo] [--tag T]

Each seed runs ``hwnas search --config configs/nb201_pixel3.yaml`` with the constraint
``latency_ms <= BOUND`` (the `tabular` target knows every cell's latency before training).
Per strategy: trials trained and pruned untrained, and the regret of the pick (the best
validation accuracy among feasible trials) against the cell the table ranks first on
validation within the bound, in test accuracy points. Saves
benchmarks/results/DATE-nb201_constrained[-TAG].json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import hwnas, save

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "benchmarks" / "nb201_cifar10_hw.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(TABLE))
    ap.add_argument("--bound", type=float, default=5.0, help="latency_ms <= BOUND")
    ap.add_argument("--latency", default="pixel3_ms", help="the table's latency column")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--strategies", default="evolution,random")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    with gzip.open(a.table, "rt") as f:
        rows = list(csv.DictReader(f))
    feasible = [r for r in rows if float(r[a.latency]) <= a.bound]
    best = max(feasible, key=lambda r: float(r["cifar10_valid_acc"]))
    optimum = float(best["cifar10_test_acc"])
    out = Path(tempfile.mkdtemp(prefix="hwnas-nb201-bound-"))
    results: dict[str, Any] = {}
    for strategy in a.strategies.split(","):
        runs = []
        for seed in range(a.seeds):
            d = out / f"{strategy}-{seed}"
            hwnas(
                "search", "--config", str(REPO / "configs" / "nb201_pixel3.yaml"),
                "--set", f"estimator.path={a.table}", "--set", f"target.path={a.table}",
                "--set", f"target.metrics={{latency_ms: {a.latency}}}",
                "--set", f"strategy={strategy}",
                "--set", f"constraints=['latency_ms <= {a.bound}']",
                "--budget", str(a.budget), "--seed", str(seed), "-q", "--out", str(d),
            )  # fmt: skip
            trials = json.loads(hwnas("show", str(d), "--json").stdout)
            ok = [t for t in trials if t["status"] == "complete" and not t["error"]]
            pick = max(ok, key=lambda t: t["metrics"]["accuracy"]) if ok else None
            test = pick["metrics"].get("test_accuracy") if pick else None
            runs.append(
                {
                    "seed": seed,
                    "trained": len(ok),
                    "pruned": sum(t["status"] == "pruned" for t in trials),
                    "regret": optimum - 100 * test if test is not None else None,
                }
            )
        regrets = [r["regret"] for r in runs if r["regret"] is not None]
        results[strategy] = {
            "trained_mean": statistics.mean(r["trained"] for r in runs),
            "pruned_mean": statistics.mean(r["pruned"] for r in runs),
            "regret_mean": statistics.mean(regrets),
            "regret_se": statistics.stdev(regrets) / len(regrets) ** 0.5
            if len(regrets) > 1
            else None,
            "runs": runs,
        }
        print(strategy, {k: v for k, v in results[strategy].items() if k != "runs"}, flush=True)
    save(
        "nb201_constrained" + (f"-{a.tag}" if a.tag else ""),
        {
            "bound_ms": a.bound,
            "latency": a.latency,
            "feasible_cells": len(feasible),
            "cells": len(rows),
            "optimum_within_bound": {"arch": best["arch_str"], "test": optimum},
            "budget": a.budget,
            "seeds": a.seeds,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
