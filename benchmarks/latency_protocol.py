"""Repeatability of the latency protocol: one model measured N times, as a search would.

Relative spread = (max - min) / median of the N readings, and their coefficient of variation.
Also the seconds one candidate costs (export + session + timing).
Usage: python benchmarks/latency_protocol.py [--target cpu-ort|cpu-torch|cuda-torch] [--n 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _common import save

from hwnas.experiment.config import load_config
from hwnas.hardware.targets import make_meter
from hwnas.space.chain import ChainSpace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=8)
    ap.add_argument("--channels", type=int, default=1)
    args = ap.parse_args()
    cfg = load_config(None, [f"target={args.target}"])
    meter = make_meter(cfg.target)
    assert meter is not None
    space = ChainSpace(cfg.space)
    rng = random.Random(0)
    shape = (args.channels, args.resolution, args.resolution)
    rows = []
    for _ in range(3):  # three models of the default space
        arch = space.sample(rng)
        readings, seconds = [], []
        for _ in range(args.n):
            model = space.build(arch, shape, 10)
            t0 = time.perf_counter()
            readings.append(meter.measure(model, shape).latency_ms)
            seconds.append(time.perf_counter() - t0)
        med = statistics.median(readings)
        rows.append(
            {
                "describe": space.describe(arch),
                "median_ms": round(med, 5),
                "relative_spread_max_min": round((max(readings) - min(readings)) / med, 4),
                "cv": round(statistics.stdev(readings) / statistics.mean(readings), 4),
                "seconds_per_candidate_median": round(statistics.median(seconds), 3),
                "readings_ms": [round(r, 5) for r in readings],
            }
        )
    save(
        f"latency_protocol_{args.target}",
        {"target": args.target, "input_shape": shape, "n": args.n, "models": rows},
    )


if __name__ == "__main__":
    main()
