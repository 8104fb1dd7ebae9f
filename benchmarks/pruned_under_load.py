"""How many latency-pruned nets were pruned only because other workers trained beside them?

Runs the default digits search with ``--workers N`` and a latency bound near the typical
latency, then reads the study: every trial pruned by the bound alone is measured again once the
pool has stopped, and one that meets the bound on the quiet machine is trained.
Usage: python benchmarks/pruned_under_load.py [--workers 2] [--bound 0.015] [--budget 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter

from _common import hwnas, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bound", type=float, default=0.015, help="latency_ms bound")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-pruned-under-load")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cmd = [
        "search", "--out", args.out, "--budget", str(args.budget), "--seed", str(args.seed),
        "--workers", str(args.workers), "--set", f"constraints=['latency_ms <= {args.bound}']",
    ]  # fmt: skip
    t0 = time.perf_counter()
    hwnas(*cmd, "-q")
    wall = time.perf_counter() - t0
    trials = json.loads(hwnas("show", args.out, "--json").stdout)
    revived = [t for t in trials if "pruned_under_load_ms" in (t.get("info") or {})]
    save(
        f"pruned_under_load-w{args.workers}-seed{args.seed}",
        {
            "command": "hwnas " + " ".join(cmd),
            "wall_seconds": round(wall, 1),
            "statuses": dict(Counter(t["status"] for t in trials)),
            "pruned_by_a_loaded_reading": len(revived),
            "revived": [
                {
                    "id": t["id"],
                    "loaded_ms": t["info"]["pruned_under_load_ms"],
                    "quiet_ms": round(t["metrics"]["latency_ms"], 5),
                    "accuracy": round(t["metrics"].get("accuracy", float("nan")), 4),
                }
                for t in revived
            ],
        },
    )


if __name__ == "__main__":
    main()
