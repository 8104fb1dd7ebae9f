"""The process pool against Ray on the default digits search: trials per minute and the
executor's overhead per trial, side by side, alternating repeats so drift hits both alike.

Each run is a fresh `hwnas search` (default digits config, random search so both executors
train the same archs) with `--workers W`; Ray starts a local instance for the run, the pool
its processes. `first_result_after_s`: from the search's start to its first finished trial
(start-up plus one trial). Overhead per trial: wall time minus the trials' own evaluation
time (`cost_seconds + train_seconds`) shared over the workers, per trial -- what the
executor, its start-up and the driver add to each trial.
Usage: python benchmarks/ray_overhead.py [--budget 40] [--workers 2] [--repeats 3]
[--set K=V ...] [--tag T] [--config FILE --data PATH] [--gpus-per-trial F]
With ``--config`` (e.g. configs/cifar10_fast.yaml on one GPU, benchmarks/gpu_ray.sh) the runs
search that config instead; ``--gpus-per-trial`` gives each Ray trial that share of a GPU
(0.125: eight candidates on one card), as ``--workers 8`` does with the process pool.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import hwnas, save


def one(
    kind: str, budget: int, workers: int, sets: list[str], tmp: Path, a: argparse.Namespace
) -> dict[str, Any]:
    out = tmp / f"{kind}-{time.monotonic_ns()}"
    args = ["search", "--out", str(out), "--budget", str(budget), "--workers", str(workers)]
    if a.config:
        args += ["--config", a.config]
    if a.data:
        args += ["--data", a.data]
    extra = [f"executor.name={kind}", "strategy.name=random", *sets]
    if kind == "ray":
        extra.append(f"executor.local_cpus={workers}")
        if a.gpus_per_trial:
            extra.append(f"executor.gpus={a.gpus_per_trial}")
    for s in extra:
        args += ["--set", s]
    t0 = time.monotonic()
    hwnas(*args, "-q")
    wall = time.monotonic() - t0
    trials = json.loads(hwnas("show", str(out), "--json").stdout)
    own = sum(
        t["metrics"].get("train_seconds", 0.0) + t["metrics"].get("cost_seconds", 0.0)
        for t in trials
    )
    log = (out / "hwnas.log").read_text()
    stamps = re.findall(r"^(\S+ \S+),\d+ INFO (?:search|executor|trial)", log, re.M)
    first_trial = re.search(r"^(\S+ \S+),\d+ INFO trial 0 ", log, re.M)
    startup = None
    if stamps and first_trial:
        fmt = "%Y-%m-%d %H:%M:%S"
        startup = time.mktime(time.strptime(first_trial.group(1), fmt)) - time.mktime(
            time.strptime(stamps[0], fmt)
        )
    return {
        "wall_s": round(wall, 2),
        "trials": len(trials),
        "trials_per_min": round(60 * len(trials) / wall, 2),
        "first_result_after_s": startup,
        "overhead_per_trial_s": round((wall - own / workers) / len(trials), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--tag", default="")
    ap.add_argument("--config", default="", help="search this config (default: digits)")
    ap.add_argument("--data", default="", help="the config's data path")
    ap.add_argument("--gpus-per-trial", type=float, default=0.0, help="ray: GPU share per trial")
    a = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"process": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for kind in ("process", "ray") if r % 2 == 0 else ("ray", "process"):
                runs[kind].append(one(kind, a.budget, a.workers, a.sets, Path(tmp), a))
                print(kind, runs[kind][-1], flush=True)
    summary = {
        kind: {
            k: statistics.median(x[k] for x in rs if x[k] is not None)
            for k in ("trials_per_min", "overhead_per_trial_s", "first_result_after_s", "wall_s")
        }
        for kind, rs in runs.items()
    }
    summary["ray_vs_process_trials_per_min"] = round(
        summary["ray"]["trials_per_min"] / summary["process"]["trials_per_min"], 3
    )
    save(
        "ray_overhead" + (f"-{a.tag}" if a.tag else ""),
        {
            "budget": a.budget,
            "workers": a.workers,
            "repeats": a.repeats,
            "sets": a.sets,
            "config": a.config or "default digits search",
            "gpus_per_trial": a.gpus_per_trial,
            "summary": summary,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
