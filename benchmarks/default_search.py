"""The default `hwnas search` (no config) on this machine: is it a 5-minute, 30+ trial search
with >= 97 % validation accuracy on digits and a Pareto front of >= 4 members spanning >= 3x
in latency?  Usage: python benchmarks/default_search.py [--out DIR] [--seed S] [--set K=V ...]
[--tag T]  (T names a variant's result file: default_search-T-seedS.json)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from _common import hwnas, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/bench-default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="", help="variant name in the result file's name")
    args = ap.parse_args()
    extra = [a for o in args.overrides for a in ("--set", o)]
    shutil.rmtree(args.out, ignore_errors=True)
    t0 = time.perf_counter()
    hwnas("search", "--out", args.out, "--seed", str(args.seed), "-q", *extra)
    wall = time.perf_counter() - t0
    trials = json.loads(hwnas("show", args.out, "--json").stdout)
    front = json.loads((Path(args.out) / "pareto.json").read_text())["pareto"]
    lat = [p["metrics"]["latency_ms"] for p in front]
    done = [t for t in trials if t["status"] == "complete"]
    save(
        f"default_search-{args.tag + '-' if args.tag else ''}seed{args.seed}",
        {
            "command": " ".join(["hwnas search --out", args.out, "--seed", str(args.seed), *extra]),
            "wall_seconds": round(wall, 1),
            "trials": len(trials),
            "complete": len(done),
            "best_val_accuracy": max(t["metrics"]["accuracy"] for t in done),
            "pareto_size": len(front),
            "pareto_latency_span": round(max(lat) / min(lat), 2) if lat else None,
            "pareto": [
                {
                    "id": p["id"],
                    "val_accuracy": round(p["metrics"]["accuracy"], 4),
                    "test_accuracy": round(p["metrics"].get("test_accuracy", float("nan")), 4),
                    "latency_ms": round(p["metrics"]["latency_ms"], 4),
                    "macs": p["metrics"]["macs"],
                    "describe": p["describe"],
                }
                for p in front
            ],
        },
    )


if __name__ == "__main__":
    main()
