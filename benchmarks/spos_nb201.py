"""SPOS on the NAS-Bench-201 cell: ranking quality of inherited weights, and the pick.

1. ``spos``: ``configs/spos_nb201.yaml`` -- the supernet trains along uniform single paths on
   the data given, evolution searches it with inherited weights, the best cells are looked up
   in the published table (original CIFAR-10).
2. ``tau``: random search over the same supernet with ``estimator: supernet`` (200 archs by
   default, each a trial), and Kendall's tau between those inherited-weight accuracies and the
   table's validation accuracy (published one-shot estimators reach about 0.6-0.75).
Usage: python benchmarks/spos_nb201.py --data PATH --table CSV.gz [--archs 200] [--out DIR]
[--tag T] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from pathlib import Path
from typing import Any

from _common import save, timed_search

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "spos_nb201.yaml")


def search(out: Path, data: str, sets: list[str]) -> float:
    return timed_search(CONFIG, out, data, sets)


def trials(out: Path) -> list[Any]:
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        return [t for t in study.store.trials() if t.status == "complete"]
    finally:
        study.close()


def main() -> None:
    from scipy.stats import kendalltau, spearmanr

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="", help="the CIFAR-10 (JPEG) archive")
    ap.add_argument("--table", required=True)
    ap.add_argument("--archs", type=int, default=200)
    ap.add_argument("--out", default="/tmp/spos-nb201")
    ap.add_argument("--tag", default="")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(a.table, "rt") as f:
        tab = {row["arch_str"]: row for row in csv.DictReader(f)}
    wall: dict[str, float] = {}
    spos, tau = out / "spos", out / "tau"
    wall["spos"] = search(spos, a.data, [f"estimator.path={a.table}", *a.set])
    print(f"spos study: {wall['spos']:.0f} s", flush=True)
    weights = spos / "supernet" / "warmup.pt"
    sets = [
        *a.set,  # first: the strategy's own keys go with the change of kind
        "strategy=random",
        f"budget.trials={a.archs}",
        "estimator=supernet",
        f"estimator.weights={weights}",
        f"target.path={a.table}",
    ]
    wall["tau"] = search(tau, a.data, sets)
    print(f"tau study: {wall['tau']:.0f} s", flush=True)

    def key(t: Any) -> str:
        return str(t.describe.split(" ")[-1])

    scored = [(t.metrics["accuracy"], float(tab[key(t)]["cifar10_valid_acc"])) for t in trials(tau)]
    inherited, truth = [s for s, _ in scored], [v for _, v in scored]
    derived = [
        {
            "cell": key(t),
            "inherited_accuracy": t.info.get("inherited_accuracy"),
            "table_valid_acc": float(tab[key(t)]["cifar10_valid_acc"]),
            "table_test_acc": float(tab[key(t)]["cifar10_test_acc"]),
        }
        for t in trials(spos)
        if t.stage == "derived"
    ]
    summary = {
        "archs_scored": len(scored),
        "kendall_tau": kendalltau(inherited, truth).statistic,
        "spearman": spearmanr(inherited, truth).statistic,
        "picked": derived[0] if derived else None,
        "derived": derived,
        "best_in_table": max(float(r["cifar10_test_acc"]) for r in tab.values()),
        "wall_s": wall,
    }
    print(json.dumps(summary, indent=1))
    name = "spos_nb201" + (f"-{a.tag}" if a.tag else "")
    save(name, {"config": CONFIG, "sets": a.set, "scored": scored, "summary": summary})


if __name__ == "__main__":
    main()
