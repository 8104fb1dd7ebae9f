"""Why does a latency table miss on this CPU? Every reading kept, not only the figures.

`hwnas lut eval` reports how often the table is within +-10 % of a measurement and how often
two measurements agree (the noise floor). When the table is far below that floor, this script
tells a systematic miss (the same archs mispredicted in every sweep, a ratio that follows the
arch) from drift (the machine's speed changing between the table's readings and the truth's):
it keeps every sweep's end-to-end reading of every arch, the table's prediction after every
refresh, and the fit (overhead, scale) each time, in one JSON. Last, ``--canary-rounds``
rounds of (a small 8x8x8 canary, one at the table's input size -- the quiet gate's own since
2026-12-05 -- and one arch end to end): if the arch's slow readings follow the big canary but
not the small one, a gate on the small one is
blind to the kind of load this machine has (e.g. a neighbour contending for cache and memory,
which a graph of a few kilobytes never feels).

  python benchmarks/lut_diag.py --config configs/digits.yaml --set data.name=cifar10 \
      --set data.path=ARCHIVE --n 60 --sweeps 3 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from hwnas.experiment.config import load_config
from hwnas.hardware.collect import (
    accuracy_report,
    canary_timer,
    measure_random_archs,
    noise_floor,
)
from hwnas.hardware.host import cpu_model
from hwnas.hardware.lut import LatencyTable, _problem, lut_settings, make_lut_meter
from hwnas.hardware.targets import make_meter


def _ratios(pred: list[float], meas: list[float]) -> dict[str, float]:
    r = sorted(p / m for p, m in zip(pred, meas, strict=True))
    q = len(r) // 4
    return {"median": r[len(r) // 2], "q1": r[q], "q3": r[-q - 1], "min": r[0], "max": r[-1]}


def _canary_rounds(space: Any, meter: Any, shape: Any, classes: int, arch: Any, n: int) -> dict:
    """Do the arch's slow readings go with a slow small canary (the gate's before 2026-12-05), or
    only with a big one?"""
    from scipy.stats import spearmanr

    small, big = canary_timer((8, 8, 8), 24), canary_timer((16, shape[1], shape[2]), 96)
    model = space.build(arch, shape, classes)
    rows = [(small(), big(), meter.measure(model, shape).latency_ms) for _ in range(n)]
    s, b, m = (list(x) for x in zip(*rows, strict=True))
    spread = {k: max(v) / min(v) for k, v in (("small", s), ("big", b), ("arch", m))}
    return {
        "rounds": n,
        "arch": space.describe(arch),
        "max_over_min": spread,
        "spearman_arch_vs_small": float(spearmanr(m, s).statistic),
        "spearman_arch_vs_big": float(spearmanr(m, b).statistic),
        "readings_small_big_arch_ms": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--sweeps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="table directory (default: a fresh temp one)")
    ap.add_argument("--canary-rounds", type=int, default=40)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    cfg = load_config(args.config, args.overrides)
    settings = lut_settings(cfg)
    space, shape, classes = _problem(cfg)
    table = LatencyTable(settings, shape, args.dir or tempfile.mkdtemp(), progress=False)
    t0 = time.perf_counter()
    fit = table.fit(space, classes)
    fits = [
        {
            "after": "build",
            "overhead_ms": fit.overhead_ms,
            "scale": fit.scale,
            "per_block_ms": fit.per_block_ms,
        }
    ]
    build_s = time.perf_counter() - t0
    meter = make_meter(cfg.target) or make_lut_meter(settings)
    sweeps: list[list[float]] = []
    preds: list[list[float]] = []
    archs: list[Any] = []
    stamps = []
    for s in range(args.sweeps):
        stamps.append(time.perf_counter() - t0)
        pairs = measure_random_archs(
            space, meter, shape, classes, args.n, args.seed, progress=False,
            exclude=set(fit.archs), gate=table.gate,
        )  # fmt: skip
        archs = [a for a, _ in pairs]
        sweeps.append([ms for _, ms in pairs])
        preds.append([table.predict(space, a, classes) for a in archs])
        table.refresh(space, classes, archs)
        f = table.fit(space, classes)
        fits.append(
            {
                "after": f"sweep {s}",
                "overhead_ms": f.overhead_ms,
                "scale": f.scale,
                "per_block_ms": f.per_block_ms,
            }
        )
    best = [min(col) for col in zip(*sweeps, strict=True)]
    final = [table.predict(space, a, classes) for a in archs]
    out: dict[str, Any] = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "load_avg": os.getloadavg(),
        "input_shape": shape,
        "build_seconds": build_s,
        "sweep_start_seconds": stamps,
        "fits": fits,
        "noise_floor_first_two": noise_floor(sweeps[0], sweeps[1]),
        "per_sweep": [
            {
                "table_vs_this_sweep": accuracy_report(p, m),
                "pred_over_meas": _ratios(p, m),
                "median_ms": statistics.median(m),
            }
            for p, m in zip(preds, sweeps, strict=True)
        ],
        "final_table_vs_best": accuracy_report(final, best),
        "final_pred_over_best": _ratios(final, best),
        "rows": [
            {"describe": space.describe(a), "readings_ms": list(r), "preds_ms": list(p), "final": f}
            for a, r, p, f in zip(
                archs, zip(*sweeps, strict=True), zip(*preds, strict=True), final, strict=True
            )
        ],
    }
    # does the miss follow the arch? correlation of the pred/meas ratio between sweeps
    if len(sweeps) >= 2:
        from scipy.stats import spearmanr

        r0 = [p / m for p, m in zip(preds[0], sweeps[0], strict=True)]
        r1 = [p / m for p, m in zip(preds[1], sweeps[1], strict=True)]
        out["ratio_rank_corr_sweep0_vs_1"] = float(spearmanr(r0, r1).statistic)
    if args.canary_rounds > 1:
        mid = sorted(range(len(best)), key=best.__getitem__)[len(best) // 2]
        out["canary"] = _canary_rounds(space, meter, shape, classes, archs[mid], args.canary_rounds)
    table.close()
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    brief = {k: v for k, v in out.items() if k != "rows"}
    if "canary" in brief:
        brief["canary"] = {k: v for k, v in out["canary"].items() if not k.startswith("readings")}
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
