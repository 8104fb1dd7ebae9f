"""Evolution vs random search, side by side on one task: hypervolume of each found front.

Same space, budget and training for both, several seeds, run alternately so that machine
drift hits both alike. Hypervolume is computed in one box for all runs: objectives normalised
by the best and worst values seen over every run (accuracy, latency_ms), reference point (1, 1).
Usage: python benchmarks/evolution_vs_random.py [--seeds 3] [--budget 30] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import hwnas, save

from hwnas.core.pareto import as_minimisation, hypervolume, pareto_indices

OBJ = [("accuracy", "max"), ("latency_ms", "min")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--out", default="runs/bench-evo-vs-random")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    extra = [x for o in args.overrides for x in ("--set", o)]
    runs: dict[str, list[list[dict]]] = {"evolution": [], "random": []}
    for seed in range(args.seeds):
        for strategy in runs:
            out = Path(args.out) / f"{strategy}-{seed}"
            hwnas(
                "search",
                "--out",
                str(out),
                "--budget",
                str(args.budget),
                "--seed",
                str(seed),
                "-q",
                "--set",
                f"strategy={strategy}",
                "--force",
                *extra,
            )
            trials = json.loads(hwnas("show", str(out), "--json").stdout)
            runs[strategy].append(
                [t["metrics"] for t in trials if t["status"] == "complete" and not t["error"]]
            )
    every = [m for rs in runs.values() for r in rs for m in r]
    vecs = [v for m in every if (v := as_minimisation(m, OBJ)) is not None]
    lo = [min(v[k] for v in vecs) for k in range(2)]
    hi = [max(v[k] for v in vecs) for k in range(2)]

    def hv(metrics: list[dict]) -> float:
        front = [as_minimisation(metrics[i], OBJ) for i in pareto_indices(metrics, OBJ)]
        pts = [tuple((p[k] - lo[k]) / (hi[k] - lo[k]) for k in range(2)) for p in front if p]
        return hypervolume(pts, [1.0, 1.0])

    result = {}
    for strategy, rs in runs.items():
        hvs = [hv(r) for r in rs]
        result[strategy] = {
            "hypervolume": [round(h, 4) for h in hvs],
            "mean": round(statistics.mean(hvs), 4),
            "std": round(statistics.stdev(hvs), 4) if len(hvs) > 1 else 0.0,
        }
    result["ratio_evolution_over_random"] = round(
        result["evolution"]["mean"] / result["random"]["mean"], 3
    )
    save(
        "evolution_vs_random",
        {
            "budget": args.budget,
            "seeds": args.seeds,
            "overrides": args.overrides,
            "box": {"lo": lo, "hi": hi},
            **result,
        },
    )


if __name__ == "__main__":
    main()
