"""The DARTS family on the NAS-Bench-201 cell: table test accuracy of the derived cells.

Runs ``configs/darts_nb201.yaml`` (GDAS by default; ``--variant beta`` runs
``configs/beta_darts_nb201.yaml``, beta-DARTS's own setting) for several seeds at once -- one process
per seed, all on the same GPU, since one supernet step is launch-bound and leaves the GPU
mostly idle -- and scores each derived cell by the published table (original CIFAR-10,
while the supernet trains on the data given). Published, original CIFAR-10: DARTS (first
order) 54.30 after its collapse, GDAS 93.61 +- 0.09, beta-DARTS 94.36 +- 0.00, optimum 94.37.
Usage: python benchmarks/darts_nb201.py --data PATH --table CSV.gz [--seeds 0,1,2]
[--variant gdas] [--out DIR] [--tag T] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import save

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: each variant's search setting (GDAS's and DARTS's: darts_nb201.yaml)
CONFIG = {"beta": str(CONFIGS / "beta_darts_nb201.yaml")}
DEFAULT = str(CONFIGS / "darts_nb201.yaml")


def table(path: str) -> dict[str, dict[str, str]]:
    with gzip.open(path, "rt") as f:
        return {row["arch_str"]: row for row in csv.DictReader(f)}


def derived_cell(out: Path) -> dict[str, Any] | None:
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        trials = [t for t in study.store.trials() if t.stage == "derived"]
        spent = study.supernet_time() or {"epochs": 0, "epochs_timed": 0, "seconds": 0.0}
    finally:
        study.close()
    if not trials:
        return None
    t = trials[0]
    return {
        "describe": t.describe,
        "arch": t.arch,
        "status": t.status,
        # summed over the calls that resumed the search (epochs of studies made before the
        # history kept times are left out: epochs_timed says how many are in)
        "search_seconds": spent["seconds"] if spent["epochs_timed"] else None,
        "epochs_timed": f"{spent['epochs_timed']} of {spent['epochs']}",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="", help="the CIFAR-10 (JPEG) archive")
    ap.add_argument("--table", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variant", default="gdas")
    ap.add_argument("--out", default="/tmp/darts-nb201")
    ap.add_argument("--tag", default="")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    config = CONFIG.get(a.variant, DEFAULT)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    procs = {}
    t0 = time.monotonic()
    for s in seeds:
        d = out / f"{a.variant}-seed{s}"
        args = [sys.executable, "-m", "hwnas.cli", "search", "--config", config]
        args += ["--out", str(d), "--quiet", *(["--data", a.data] if a.data else [])]
        sets = [f"seed={s}", f"strategy.variant={a.variant}", f"estimator.path={a.table}", *a.set]
        for x in sets:
            args += ["--set", x]
        log = open(out / f"{a.variant}-seed{s}.log", "w")  # noqa: SIM115 - closed below
        procs[s] = (subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), log, d)
    rows = []
    tab = table(a.table)
    try:
        for p, _, _ in procs.values():
            p.wait()
    except KeyboardInterrupt:  # a call's time ran out: each search saves its work and stops
        for p, log, _ in procs.values():
            p.wait()
            log.close()
        print(f"interrupted: the studies in {out} resume when run again", flush=True)
        sys.exit(130)
    for s, (p, log, d) in procs.items():
        rc = p.wait()
        log.close()
        wall = time.monotonic() - t0
        cell = derived_cell(d) if d.exists() else None
        row: dict[str, Any] = {"seed": s, "rc": rc, "wall_s": wall}
        if cell is not None:
            key = cell["describe"].split(" ")[-1]
            hit = tab.get(key)
            row.update(
                search_seconds=cell["search_seconds"],
                epochs_timed=cell["epochs_timed"],
                cell=key,
                table_test_acc=float(hit["cifar10_test_acc"]) if hit else None,
                table_valid_acc=float(hit["cifar10_valid_acc"]) if hit else None,
            )
        rows.append(row)
        print(row, flush=True)
    accs = [r["table_test_acc"] for r in rows if r.get("table_test_acc") is not None]
    summary = {
        "variant": a.variant,
        "seeds": seeds,
        "mean_test_acc": statistics.mean(accs) if accs else None,
        "std_test_acc": statistics.stdev(accs) if len(accs) > 1 else None,
        "best_in_table": max(float(r["cifar10_test_acc"]) for r in tab.values()),
        "wall_s": time.monotonic() - t0,
        "parallel_processes": len(seeds),
    }
    print(summary)
    name = f"darts_nb201-{a.variant}" + (f"-{a.tag}" if a.tag else "")
    save(name, {"config": config, "sets": a.set, "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
