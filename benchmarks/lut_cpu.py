"""Latency lookup table vs. end-to-end measurement on held-out random archs of the chain space.

Goals (issue #4): >= 90 % of archs within +-10 % of measured latency, Kendall tau >= 0.9,
prediction >= 1000x faster than measurement. Builds (or reuses) the table for the default
chain space on the target, then measures N random archs the overhead fit never saw.

Usage:
  python benchmarks/lut_cpu.py                       # cpu-ort, digits 8x8, 200 archs
  python benchmarks/lut_cpu.py --resolution 32       # heavier input
  python benchmarks/lut_cpu.py --target cuda-torch --cuda-graphs --resolution 32  # on a GPU
Options: --n N --seed S --repeats R (sweeps over the measured archs, fastest kept, with one
more reading of every table entry between sweeps, so table and truth see the same machine
states) --passes P
(sweeps per table entry) --threads T --dir DIR (table directory; --fresh: a new temp one)
--tag T (appended to the result file's name, e.g. the machine it ran on).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from _common import save

from hwnas.experiment.config import apply_overrides, validate_config
from hwnas.hardware.lut import build_table, evaluate_table

GOALS = {"within_10pct": 0.90, "kendall_tau": 0.90, "speedup": 1000.0}


def _default_measure_seconds(cfg: object, target: str, n: int = 20) -> float:
    """Median seconds of build + export + timing per arch with the default target settings."""
    import statistics

    from hwnas.data import load_dataset
    from hwnas.hardware.collect import sample_distinct
    from hwnas.hardware.targets import make_meter
    from hwnas.space import make_space

    full = validate_config({"target": {"name": target}, "data": cfg.data.model_dump()})  # type: ignore[attr-defined]
    meter = make_meter(full.target)
    assert meter is not None
    space = make_space(full.space)
    data = load_dataset(full.data, 0)
    out = []
    for arch in sample_distinct(space, n, seed=99):
        t0 = time.perf_counter()
        meter.measure(space.build(arch, data.input_shape, data.num_classes), data.input_shape)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cpu-ort", choices=["cpu-ort", "cpu-torch", "cuda-torch"])
    ap.add_argument("--resolution", type=int, default=None, help="input size (default: 8)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--truth-runs",
        type=int,
        default=300,
        help="timed runs per end-to-end reading (in 30 blocks): the truth must be clean",
    )
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--lut-runs", type=int, default=None, help="timed runs per table graph")
    ap.add_argument("--cuda-graphs", action="store_true", help="cuda-torch: time CUDA graphs")
    ap.add_argument("--calibration", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir", default=None, help="table directory (default: the hwnas cache)")
    ap.add_argument("--fresh", action="store_true", help="build into a new temporary directory")
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument(
        "--predictor",
        metavar="FILE",
        help="also judge this learned predictor (hwnas predictor train) on the same truth",
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="", help="appended to the result's name (e.g. the machine)")
    args = ap.parse_args()

    lut: dict[str, object] = {
        "name": "lut",
        "runtime": args.target,
        "passes": args.passes,
        "calibration": args.calibration,
    }
    target: dict[str, object] = {"name": args.target, "runs": args.truth_runs, "blocks": 30}
    if args.target != "cuda-torch":
        lut["threads"] = target["threads"] = args.threads
    elif args.cuda_graphs:
        lut["cuda_graphs"] = target["cuda_graphs"] = True
    if args.lut_runs:
        lut["runs"] = args.lut_runs
    # the table comes from the `costs` entry; ground truth is the measured target itself
    raw = {"target": target, "costs": [lut], "data": {"resolution": args.resolution}}
    cfg = validate_config(apply_overrides(raw, args.overrides))
    directory = tempfile.mkdtemp(prefix="hwnas-lut-") if args.fresh else args.dir

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    table, info = build_table(cfg, progress=not args.quiet, directory=directory)
    table.close()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report, rows = evaluate_table(
        cfg,
        args.n,
        args.seed,
        args.repeats,
        progress=not args.quiet,
        directory=directory,
    )
    eval_s = time.perf_counter() - t0
    load_after = os.getloadavg()

    # what one measurement costs a search with the target's default protocol (60 runs)
    default_s = _default_measure_seconds(cfg, args.target)
    report["speedup_vs_default_protocol"] = default_s / report["seconds_per_prediction"]

    goals = {k: report[k] >= v for k, v in GOALS.items()}
    side_by_side = None
    if args.predictor:  # the same held-out archs and readings: a fair comparison
        from hwnas.hardware.collect import accuracy_report
        from hwnas.hardware.predictor import LatencyPredictor

        model = LatencyPredictor.load(args.predictor)
        seen = model.training_keys
        space = model.space
        held = [r for r in rows if space.key(r["arch"]) not in seen]
        preds = model.predict([r["arch"] for r in held]).tolist()
        ratios = sorted(p / r["measured_ms"] for p, r in zip(preds, held, strict=True))
        side_by_side = {
            "predicted_over_measured_median": ratios[len(ratios) // 2],
            "predictor": args.predictor,
            "trained_on": model.meta["training"]["n"],
            "n": len(held),
            "predictor_report": accuracy_report(preds, [r["measured_ms"] for r in held]),
            "lut_report_same_rows": accuracy_report(
                [r["predicted_ms"] for r in held], [r["measured_ms"] for r in held]
            ),
        }
        print(json.dumps(side_by_side, indent=2))
    name = {"cpu-ort": "lut-cpu", "cpu-torch": "lut-cpu-torch", "cuda-torch": "lut-cuda"}
    suffix = (f"-r{args.resolution}" if args.resolution else "") + (
        f"-{args.tag}" if args.tag else ""
    )
    save(
        name[args.target] + suffix,
        {
            "command": "python benchmarks/lut_cpu.py "
            + " ".join(
                f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                for k, v in vars(args).items()
                if v not in (None, False) and k not in ("quiet",)
            ),
            "target": args.target,
            "input_shape": info["fingerprint"]["input_shape"],
            "table": {k: v for k, v in info.items() if k != "path"},
            "build_seconds": round(build_s, 1),
            "eval_seconds": round(eval_s, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "report": report,
            "predictor_side_by_side": side_by_side,
            "overrides": args.overrides,
            "goals": GOALS,
            "goals_met": goals,
            "archs": [
                {
                    "describe": r["describe"],
                    "measured_ms": round(r["measured_ms"], 6),
                    "predicted_ms": round(r["predicted_ms"], 6),
                }
                for r in rows
            ],
        },
    )


if __name__ == "__main__":
    main()
