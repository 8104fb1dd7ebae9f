"""Learning-curve extrapolation as a predictor of final accuracy, against the last observed
accuracy, on real training (digits, CPU).

Per seed, one `hwnas search` of random archs of the default space trained for `--epochs`
(default 16) with per-epoch validation accuracy; then, from each complete trial's first
`--share` of epochs (default 25 %), the final validation accuracy is predicted by
`hwnas.pruning.curve.extrapolate` and by the last observed value. Prints Spearman rho
(per seed and pooled) of each predictor with the true final accuracy, the mean absolute
error, and milliseconds per extrapolation.
With ``--from DIR`` (repeatable) the curves are read from stored studies instead (e.g. the
unpruned runs of ``benchmarks/gpu_pruning_cifar10.sh``), one row per study.
Usage: python benchmarks/curve_extrapolation.py [--seeds 5] [--trials 24] [--epochs 16]
[--from DIR ...] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import hwnas, save
from scipy.stats import spearmanr

from hwnas.pruning.curve import extrapolate


def stored_curves(study: Path, epochs: int) -> list[list[float]]:
    """The full-length validation curves of a study's complete trials (``--from``: e.g. the
    unpruned runs of ``pruning.py`` on the GPU, trained with per-epoch validation)."""
    rows = json.loads(hwnas("show", str(study), "--json").stdout)
    return [
        [float(c["val_accuracy"]) for c in t["curve"]]
        for t in rows
        if t["stage"] == "search"
        and t["status"] == "complete"
        and len(t.get("curve") or []) == epochs
    ]


def curves(out: Path, seed: int, trials: int, epochs: int) -> list[list[float]]:
    r = hwnas(
        "search",
        "--out",
        str(out),
        "--quiet",
        "--force",
        "--seed",
        str(seed),
        "--budget",
        str(trials),
        "--set",
        "strategy=random",
        "--set",
        f"estimator.epochs={epochs}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(hwnas("show", str(out), "--json").stdout)
    return [
        [float(c["val_accuracy"]) for c in t["curve"]]
        for t in rows
        if t["status"] == "complete" and len(t.get("curve") or []) == epochs
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--share", type=float, default=0.25)
    ap.add_argument(
        "--from",
        dest="studies",
        action="append",
        default=[],
        metavar="DIR",
        help="read the curves of a stored study (one 'seed' per DIR) instead of searching",
    )
    ap.add_argument("--tag", default="", help="name in the result file's name")
    a = ap.parse_args()
    seen = max(3, round(a.share * a.epochs))
    per_seed, pooled = [], {"final": [], "curve": [], "last": []}
    all_curves: list[list[list[float]]] = []  # kept in the result: predictors can be re-tried
    ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = a.studies or range(a.seeds)
        for seed, src in enumerate(sources):
            if isinstance(src, str):
                cs = stored_curves(Path(src), a.epochs)
            else:
                cs = curves(Path(tmp) / f"s{seed}", seed, a.trials, a.epochs)
            if len(cs) < 3:
                raise SystemExit(f"{src}: {len(cs)} complete curves of {a.epochs} epochs")
            all_curves.append(cs)
            final = [c[-1] for c in cs]
            pred = []
            for c in cs:
                t0 = time.perf_counter()
                pred.append(extrapolate(c[:seen], a.epochs).mean)
                ms.append(1000 * (time.perf_counter() - t0))
            last = [c[seen - 1] for c in cs]
            row = {
                "seed": seed,
                "nets": len(cs),
                "rho_curve": round(float(spearmanr(pred, final)[0]), 4),
                "rho_last": round(float(spearmanr(last, final)[0]), 4),
                "mae_curve": round(
                    statistics.mean(abs(p - f) for p, f in zip(pred, final, strict=True)), 4
                ),
                "mae_last": round(
                    statistics.mean(abs(p - f) for p, f in zip(last, final, strict=True)), 4
                ),
            }
            print(row, flush=True)
            per_seed.append(row)
            pooled["final"] += final
            pooled["curve"] += pred
            pooled["last"] += last
    summary = {
        "source": a.studies or f"{a.seeds} random-search studies of {a.trials} digits nets",
        "epochs": a.epochs,
        "epochs_seen": seen,
        "per_seed": per_seed,
        "mean_rho_curve": round(statistics.mean(r["rho_curve"] for r in per_seed), 4),
        "mean_rho_last": round(statistics.mean(r["rho_last"] for r in per_seed), 4),
        "pooled_rho_curve": round(float(spearmanr(pooled["curve"], pooled["final"])[0]), 4),
        "pooled_rho_last": round(float(spearmanr(pooled["last"], pooled["final"])[0]), 4),
        "median_ms_per_extrapolation": round(statistics.median(ms), 2),
        "curves": all_curves,
    }
    print({k: v for k, v in summary.items() if k not in ("per_seed", "curves")})
    save("curve_extrapolation" + (f"-{a.tag}" if a.tag else ""), summary)


if __name__ == "__main__":
    main()
