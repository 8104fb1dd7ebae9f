"""Learned latency predictor on published device measurements (FBNet and NB201 tables).

FBNet table (HW-NAS-Bench via HELP): fit on 500 rows, judge on the other 4 500, for the Xeon
Gold 6226 and the Pixel 2, over several seeded splits; beside it a plain additive per-layer
least-squares fit (one weight per layer x block, plus an intercept). Noise analysis of both
devices: the Xeon's slow runs (rows measured in contiguous stretches ~24 % slow), the ceiling
they put on any arch-only model, and the Pixel 2's quantisation floor and empirical ceiling.
NB201 table: the same for its four device columns (500 train / 15 125 test).
Usage: python benchmarks/predictor_external.py [--seeds 5] [--train 500] [--no-save]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _common import save

from hwnas.hardware import predictor as P
from hwnas.space.cell import CellSpace
from hwnas.space.fbnet import FbnetSpace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
FBNET = SHARED / "fbnet_latency_5000.csv.gz"
NB201 = SHARED / "nb201_cifar10_hw.csv.gz"


def within(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) <= 0.10 * y))


def mean_std(xs: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(xs), 4),
        "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
    }


def lag1(y: np.ndarray, fit: np.ndarray) -> float:
    """Autocorrelation of log(reading / fit) between rows measured one after the other."""
    r = np.log(y / fit)
    r = r - r.mean()
    return round(float(np.corrcoef(r[:-1], r[1:])[0, 1]), 3)


def additive(E: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> dict[str, float]:
    """Least squares on the per-layer one-hot (+ intercept): the additive baseline."""
    from hwnas.hardware.collect import accuracy_report

    A = np.hstack([E, np.ones((len(E), 1))])
    w = np.linalg.lstsq(A[tr], y[tr], rcond=None)[0]
    return accuracy_report((A[te] @ w).tolist(), y[te].tolist())


def compare(space, rows: P.Rows, shape, classes, seeds: int, train: int) -> tuple[dict, list]:
    """Predictor vs additive fit over seeded splits; also the fitted (model, test rows)."""
    E = np.array([space.encode(a) for a in rows.archs])
    fitted = []
    ours: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    choices, fit_s = [], []
    for seed in range(seeds):
        tr, te = P.split_rows(len(rows.archs), train, seed)
        t0 = time.perf_counter()
        model = P.train(
            space, [rows.archs[i] for i in tr], rows.latency[tr], shape, classes, seed=seed
        )
        fit_s.append(time.perf_counter() - t0)
        fitted.append((model, te))
        m = P.evaluate(model, [rows.archs[i] for i in te], rows.latency[te])
        b = additive(E, rows.latency, tr, te)
        for k in ("within_10pct", "kendall_tau", "rmse_ms", "mape"):
            ours.setdefault(k, []).append(m[k])
            base.setdefault(k, []).append(b[k])
        choices.append(model.meta["fit"]["choice"])
        print(
            f"  seed {seed}: predictor {m['within_10pct']:.4f} (tau {m['kendall_tau']:.3f}, "
            f"{choices[-1]}), additive {b['within_10pct']:.4f}",
            flush=True,
        )
    gain = [o - b for o, b in zip(ours["within_10pct"], base["within_10pct"], strict=True)]
    return {
        "train": train,
        "test": len(rows.archs) - train,
        "predictor": {k: mean_std(v) for k, v in ours.items()},
        "additive": {k: mean_std(v) for k, v in base.items()},
        "gain_within_10pct": mean_std(gain),
        "choices": choices,
        "fit_seconds": mean_std(fit_s),
    }, fitted


def oracle(space, rows: P.Rows, shape, classes) -> np.ndarray:
    """A trimmed linear fit on ALL rows, in-sample: what the table's arch-only signal allows."""
    f = P.Featurizer(space, shape, classes).fit(rows.archs)
    X = f.matrix(rows.archs)
    part, _ = P.fit_linear(X, rows.latency, f.columns(("kernel", "layers")), False, 0.10)
    return part.predict(X)


def xeon_noise(space, rows: P.Rows, fitted: list) -> dict:
    y = rows.latency
    fit = oracle(space, rows, (3, 224, 224), 1000)
    slow = y > 1.10 * fit  # readings far above what the arch explains
    nxt = float((slow[1:] & slow[:-1]).sum() / max(slow[:-1].sum(), 1))
    clean = []
    for model, te in fitted:
        keep = te[~slow[te]]
        clean.append(within(model.predict([rows.archs[i] for i in keep]), y[keep]))
    ratio = y[slow] / fit[slow]
    return {
        "slow_rows_share": round(float(slow.mean()), 4),
        "slow_rows_ratio_median": round(float(np.median(ratio)), 3),
        "p_next_row_slow_given_slow": round(nxt, 3),
        "p_row_slow": round(float(slow.mean()), 3),
        "residual_autocorr_lag1": lag1(y, fit),
        "ceiling_within_10pct": round(1.0 - float(slow.mean()), 4),
        "oracle_in_sample_within_10pct": round(within(fit, y), 4),
        "predictor_within_10pct_on_rows_outside_slow_runs": mean_std(clean),
        "note": "rows whose reading is >10% above an all-rows trimmed fit come in runs of "
        "consecutive sample_idx (measurement time), ~24% slow: no arch-only model can "
        "predict them, so 1 - their share caps within_10pct",
    }


def phone_noise(space, rows: P.Rows) -> dict:
    y = rows.latency
    fit = oracle(space, rows, (3, 224, 224), 1000)
    rel = (y - fit) / fit
    robust_sigma = float(1.4826 * np.median(np.abs(rel - np.median(rel))))
    # a perfect model off by at most the +-0.5 ms rounding of whole-millisecond readings
    quant = float(np.mean(0.5 / y <= 0.10))
    tr, te = P.split_rows(len(y), 4500, 0)
    big = P.train(space, [rows.archs[i] for i in tr], y[tr], (3, 224, 224), 1000, seed=0)
    big_w = within(big.predict([rows.archs[i] for i in te]), y[te])
    slow = rel > 0.10
    nxt = float((slow[1:] & slow[:-1]).sum() / max(slow[:-1].sum(), 1))
    return {
        "distinct_readings": int(np.unique(y).size),
        "min_reading_ms": float(y.min()),
        "quantisation_floor_within_10pct": round(quant, 4),
        "quantisation_max_rel_error": round(float(0.5 / y.min()), 4),
        "residual_rel_sigma_robust": round(robust_sigma, 4),
        "oracle_in_sample_within_10pct": round(within(fit, y), 4),
        "predictor_4500_train_500_test_within_10pct": round(big_w, 4),
        "residual_autocorr_lag1": lag1(y, fit),
        "p_next_row_high_given_high": round(nxt, 3),
        "p_row_high": round(float(slow.mean()), 3),
        "note": "rounding to whole ms costs nothing at +-10% (0.5 ms <= 2.6% of the fastest "
        "reading). The limit is the phone's state: ~30% of rows read >10% above the fit, in "
        "stretches of consecutive rows (lag-1 autocorrelation of the residual ~0.7: thermal "
        "or clock state while measuring), which no arch-only model can predict; the in-sample "
        "fit on all 5000 rows and a 4500-row training set bound what 500 rows can reach",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    out: dict = {
        "protocol": f"{args.train} random training rows, the rest held out; seeds "
        f"0..{args.seeds - 1} for the split and the fit; mean +- std over seeds"
    }

    fb = FbnetSpace()
    out["fbnet"] = {}
    for col in ("gold_6226_ms", "pixel2_ms"):
        print(f"fbnet {col}", flush=True)
        rows = P.load_rows(fb, FBNET, "layer_choices", col)
        res, fitted = compare(fb, rows, (3, 224, 224), 1000, args.seeds, args.train)
        print("  noise analysis", flush=True)
        if col == "gold_6226_ms":
            res["noise"] = xeon_noise(fb, rows, fitted)
        else:
            res["noise"] = phone_noise(fb, rows)
        out["fbnet"][col] = res

    cell = CellSpace()
    out["nb201"] = {}
    for col in ("pixel3_ms", "raspi4_ms", "eyeriss_ms", "fpga_ms"):
        print(f"nb201 {col}", flush=True)
        rows = P.load_rows(cell, NB201, "arch_str", col)
        res, _ = compare(cell, rows, (3, 32, 32), 10, args.seeds, args.train)
        res["rows_below_0.1ms"] = int((rows.latency < 0.1).sum())
        out["nb201"][col] = res
    if args.no_save:
        import json

        print(json.dumps(out, indent=2))
    else:
        save("predictor-external", out)


if __name__ == "__main__":
    main()
