"""Where along the latency axis does a two-objective NB201 search lose its hypervolume?

Hypervolume regret (accuracy x pixel3_ms, reference point = the table's worst point) is an
area: the true front's staircase minus the found one's. This splits that area into latency
bands, averaged over seeds, so a strategy change can aim at the band that costs the most
(e.g. the fastest nets, where few random draws land) instead of at the total.
Usage: python benchmarks/nb201_regret_bands.py [--strategy bo] [--seeds 30] [--budget 100]
       [--table PATH] [--set K=V ...] [--tag T]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _common import save

import hwnas
from hwnas.core.pareto import as_minimisation, hypervolume
from hwnas.experiment.study import true_front

REPO = Path(__file__).resolve().parents[1]
OBJ2 = [("accuracy", "max"), ("latency_ms", "min")]
BANDS = [0.0, 1.2, 2.0, 3.0, 6.0, 12.0, 20.0, float("inf")]


def staircase(points: np.ndarray, xs: np.ndarray, floor: float) -> np.ndarray:
    """Best accuracy among ``points`` (latency, accuracy) no slower than each x."""
    order = np.argsort(points[:, 0])
    lat, best = points[order, 0], np.maximum.accumulate(points[order, 1])
    idx = np.searchsorted(lat, xs, side="right") - 1
    return np.where(idx >= 0, best[np.maximum(idx, 0)], floor)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategy", default="bo")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument(
        "--table", default=str(REPO.parent / "shared/benchmarks/nb201_cifar10_hw.csv.gz")
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    sets = [f"estimator.path={a.table}", f"strategy={a.strategy}", *a.overrides]
    cfg = hwnas.load_config(REPO / "configs/nb201_pixel3.yaml", sets, budget=a.budget)
    truth, worst = true_front(cfg, OBJ2) or ([], [])
    hv_true = hypervolume(truth, worst)
    floor, right = -worst[0], worst[1]
    xs = np.linspace(0.0, right, 20_000)
    dx = xs[1] - xs[0]
    true_stair = staircase(np.array([(p[1], -p[0]) for p in truth]), xs, floor)
    names = [f"{lo:g}-{hi:g} ms" for lo, hi in zip(BANDS, BANDS[1:], strict=False)]
    per_band: dict[str, list[float]] = {n: [] for n in names}
    regrets = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(a.seeds):
            run = hwnas.load_config(
                REPO / "configs/nb201_pixel3.yaml", sets, budget=a.budget, seed=seed
            )
            res = hwnas.run_search(run, Path(tmp) / f"s{seed}", force=True)
            done = [t for t in res.trials if t.status == "complete" and t.stage == "search"]
            pts = [p for t in done[: a.budget] if (p := as_minimisation(t.metrics, OBJ2))]
            regrets.append(1 - hypervolume(pts, worst) / hv_true)
            gap = true_stair - staircase(np.array([(p[1], -p[0]) for p in pts]), xs, floor)
            for n, lo, hi in zip(names, BANDS, BANDS[1:], strict=False):
                per_band[n].append(float(gap[(xs >= lo) & (xs < hi)].sum() * dx / hv_true))
    mean = statistics.mean(regrets)
    bands = {
        n: {
            "mean": round(statistics.mean(v), 5),
            "share_of_regret": round(statistics.mean(v) / mean, 3),
            "share_of_latency_axis": round((min(hi, right) - lo) / right, 3),
        }
        for (n, v), lo, hi in zip(per_band.items(), BANDS, BANDS[1:], strict=False)
    }
    save(
        f"nb201_regret_bands-{a.strategy}" + (f"-{a.tag}" if a.tag else ""),
        {
            "strategy": a.strategy,
            "seeds": a.seeds,
            "budget": a.budget,
            "overrides": a.overrides,
            "hv_regret": {"mean": round(mean, 5), "std": round(statistics.stdev(regrets), 5)},
            "bands": bands,
        },
    )


if __name__ == "__main__":
    main()
