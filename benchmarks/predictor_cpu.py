"""Learned latency predictor on cpu-ort, this machine: chain space, held-out random archs.

Measures N random archs of the (default) chain space with the config's cpu-ort protocol,
trains the predictor on a seeded part of them and judges it on the rest: within +-10 %,
Kendall tau, RMSE, MAPE -- and the speed of a prediction against a measurement (build,
export, time), per arch, both medians. Beside it a one-feature baseline (latency linear in
MACs). The host is shared: quote the load average printed with the figures.
Readings: each arch is measured in ``--repeats`` sweeps (fastest kept; up to ``--max-repeats``
while its two fastest disagree by > 5 %), each reading after a quiet-moment gate (a canary
graph must run at its best speed), since a neighbour's job slows this host 1.5-2x for minutes.
Usage: python benchmarks/predictor_cpu.py [--n 700] [--train 500] [--resolution R]
       [--repeats 5] [--max-repeats 5] [--no-gate] [--seed 0] [--set KEY=VALUE ...]
Readings default to the LUT benchmark's protocol (300 timed runs in 30 blocks, fastest of 5
sweeps): with the search's cheaper protocol (60 runs, 2 sweeps) a noisy stretch of this host
spoils the truth itself (test-retest tau 0.53 on 60 archs one afternoon).
       [--save-data CSV] [--no-save]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _common import save

from hwnas.experiment.config import load_config
from hwnas.hardware import predictor as P
from hwnas.hardware.collect import QuietGate, accuracy_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=700, help="archs measured")
    ap.add_argument("--train", type=int, default=500, help="of them used for training")
    ap.add_argument("--resolution", type=int, help="input size (default: the data's own, 8)")
    ap.add_argument("--repeats", type=int, default=5, help="sweeps; the fastest reading is kept")
    ap.add_argument("--max-repeats", type=int, default=5, help="sweeps while readings disagree")
    ap.add_argument("--no-gate", action="store_true", help="measure without the quiet gate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--save-data", metavar="CSV", help="also write the measured pairs here")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    overrides = ["target.runs=300", "target.blocks=30", *args.overrides]
    if args.resolution:
        overrides.append(f"data.resolution={args.resolution}")
    cfg = load_config(None, overrides)
    if cfg.target.name != "cpu-ort":
        raise SystemExit("this benchmark measures on cpu-ort")
    load_before = os.getloadavg()
    seconds: list[float] = []
    gate = None if args.no_gate else QuietGate(threads=cfg.target.threads)
    t0 = time.perf_counter()
    space, shape, classes, pairs = P.measure_on_target(
        cfg,
        args.n,
        args.seed,
        progress=True,
        seconds=seconds,
        repeats=args.repeats,
        max_repeats=max(args.max_repeats, args.repeats),
        gate=gate,
    )
    measure_s = time.perf_counter() - t0
    if args.save_data:
        P.write_pairs(args.save_data, space, pairs)
    archs = [a for a, _ in pairs]
    y = np.array([ms for _, ms in pairs])
    tr, te = P.split_rows(len(archs), args.train, args.seed)
    model = P.train(space, [archs[i] for i in tr], y[tr], shape, classes, seed=args.seed)
    test = [archs[i] for i in te]
    report = P.evaluate(model, test, y[te])

    # speed: one call per arch, as a search makes it (segment cache warm after one pass)
    for a in test:
        model.predict_one(a)
    pred_s = []
    for a in test:
        t1 = time.perf_counter()
        model.predict_one(a)
        pred_s.append(time.perf_counter() - t1)
    med_p, med_m = statistics.median(pred_s), statistics.median(seconds)

    # baseline: latency linear in MACs alone
    macs = model.featurizer.matrix(archs)[:, 1]
    w = np.polyfit(macs[tr], y[tr], 1)
    baseline = accuracy_report(np.polyval(w, macs[te]).tolist(), y[te].tolist())

    out = {
        "config": {
            "space": "chain (default)",
            "input_shape": list(shape),
            "target": cfg.target.model_dump(mode="json"),
            "repeats": args.repeats,
            "max_repeats": args.max_repeats,
            "quiet_gate": gate is not None,
            "overrides": overrides,
        },
        "n_measured": len(pairs),
        "train": int(len(tr)),
        "test": int(len(te)),
        "latency_ms_range": [float(y.min()), float(np.median(y)), float(y.max())],
        "predictor": report,
        "features": model.meta["fit"]["choice"],
        "cv_within_10pct": model.meta["fit"]["cv_within_10pct"],
        "fit_seconds": model.meta["fit"]["seconds"],
        "baseline_linear_in_macs": baseline,
        "seconds_per_measurement_median": med_m,
        "seconds_per_prediction_median": med_p,
        "speedup": med_m / med_p,
        "measure_seconds_total": measure_s,
        "gate_waited_seconds": gate.waited if gate is not None else 0.0,
        "gate_timeouts": gate.timeouts if gate is not None else 0,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    if args.no_save:
        import json

        print(json.dumps(out, indent=2))
    else:
        save("predictor-cpu" + (f"-r{args.resolution}" if args.resolution else ""), out)


if __name__ == "__main__":
    main()
