"""Does the latency table err alike on every kind of net? FBNet space at CIFAR shapes.

A table predicts ``overhead + scale * sum(blocks)`` with the two numbers fitted on random
networks. Random FBNet nets keep ~2 of 22 blocks as skips, while the nets a small latency
target asks for are mostly skips. This measures, end to end on the config's target (the
table's own protocol: quiet gate, fastest of ``--sweeps`` readings), four groups of held-out
nets and reports the table's error per group:

- ``skip-heavy``: each block a skip with probability 0.75, else any block;
- ``random``: uniform draws (as the calibration nets);
- ``cheap-convs``: every block one of the expansion-1 convs (few MACs, no skips);
- ``expansion-6``: every block an expansion-6 conv (the largest nets).

Beside the table's own fit (overhead, scale and a per-block term, on its calibration nets):
the fit as it was before the per-block term (overhead and scale on random nets, here the
measured random group: side by side on the same readings), and the robust fit on all the
measured nets without and with the per-block term (how far one such model could serve all). Result: ``lut_composition[-TAG].json``.

Usage: python benchmarks/lut_composition.py --data .data/cifar10-jpeg.tar.gz [--n 16]
[--sweeps 3] [--seed 7] [--tag T]   (run on a quiet machine, e.g. taskset -c 1, OMP_NUM_THREADS=1)
"""

from __future__ import annotations

import argparse
import random
import statistics
from typing import Any

from _common import save

from hwnas.experiment.config import load_config
from hwnas.hardware.collect import measure_archs
from hwnas.hardware.lut import (
    LatencyTable,
    block_source,
    fit_latency,
    lut_settings,
    make_lut_meter,
)
from hwnas.hardware.lut import _problem as problem_of
from hwnas.hardware.targets import make_meter
from hwnas.space.vocab.fbnet import BLOCKS, N_LAYERS

GROUPS = ("skip-heavy", "random", "cheap-convs", "expansion-6")


def draw(group: str, rng: random.Random) -> dict[str, Any]:
    if group == "skip-heavy":
        blocks = ["skip" if rng.random() < 0.75 else rng.choice(BLOCKS) for _ in range(N_LAYERS)]
    elif group == "random":
        blocks = [rng.choice(BLOCKS) for _ in range(N_LAYERS)]
    elif group == "cheap-convs":
        blocks = [rng.choice([b for b in BLOCKS if "_e1" in b]) for _ in range(N_LAYERS)]
    else:
        blocks = [rng.choice([b for b in BLOCKS if b.endswith("_e6")]) for _ in range(N_LAYERS)]
    return {"blocks": blocks}


def errors(
    rows: list[dict[str, Any]], overhead: float, scale: float, per_block: float = 0.0
) -> dict[str, Any]:
    out = {}
    for g in GROUPS:
        errs = [
            (overhead + scale * r["sum_ms"] + per_block * r["blocks"]) / r["measured_ms"] - 1
            for r in rows
            if r["group"] == g
        ]
        out[g] = {
            "median_error": statistics.median(errs),
            "max_abs_error": max(abs(e) for e in errs),
            "within_10pct": sum(abs(e) <= 0.1 for e in errs) / len(errs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the CIFAR-10 (JPEG) archive (for its shape)")
    ap.add_argument("--n", type=int, default=16, help="nets per group")
    ap.add_argument("--sweeps", type=int, default=3, help="readings per net, fastest kept")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    cfg = load_config(
        "configs/fbnet_cifar10.yaml", ["device=cpu", f"data.path={args.data}", "data.subset=0.02"]
    )
    settings = lut_settings(cfg)
    space, shape, classes = problem_of(cfg)
    table = LatencyTable(settings, shape, None, progress=False)
    table.build(space, classes)
    fit = table.fit(space, classes)
    meter = make_meter(cfg.target) or make_lut_meter(settings)
    source = block_source(space)
    rng = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    for group in GROUPS:
        archs = [draw(group, rng) for _ in range(args.n)]
        best: list[float] = []
        for sweep in range(args.sweeps):
            pairs = measure_archs(
                space, meter, shape, classes, archs, args.seed, False, gate=table.gate
            )
            ms = [m for _, m in pairs]
            best = ms if sweep == 0 else [min(a, b) for a, b in zip(best, ms, strict=True)]
        for arch, ms in zip(archs, best, strict=True):
            blocks = source.blocks(arch, shape, classes)
            rows.append(
                {
                    "group": group,
                    "skips": sum(b == "skip" for b in arch["blocks"]),
                    "sum_ms": table.sum_ms(blocks),
                    "blocks": len(blocks),
                    "measured_ms": ms,
                    "arch": arch,
                }
            )
        print(f"{group}: {args.n} nets measured", flush=True)
    sums, measured = [r["sum_ms"] for r in rows], [r["measured_ms"] for r in rows]
    rand = [r for r in rows if r["group"] == "random"]  # the fit before the per-block term:
    before = fit_latency([r["sum_ms"] for r in rand], [r["measured_ms"] for r in rand])
    line = fit_latency(sums, measured)
    plane = fit_latency(sums, measured, [r["blocks"] for r in rows])
    report = {
        "table_fit": {
            "overhead_ms": fit.overhead_ms,
            "scale": fit.scale,
            "per_block_ms": fit.per_block_ms,
            "n": fit.n,
        },
        "by_group_table_fit": errors(rows, fit.overhead_ms, fit.scale, fit.per_block_ms),
        "random_line": {"overhead_ms": before[0], "scale": before[1]},
        "by_group_random_line": errors(rows, before[0], before[1]),
        "line_on_all_measured": {"overhead_ms": line[0], "scale": line[1]},
        "by_group_line_on_all": errors(rows, line[0], line[1]),
        "with_per_block_on_all_measured": {
            "overhead_ms": plane[0],
            "scale": plane[1],
            "per_block_ms": plane[2],
        },
        "by_group_with_per_block_on_all": errors(rows, plane[0], plane[1], plane[2]),
        "measured_ms_range": {
            g: [
                min(r["measured_ms"] for r in rows if r["group"] == g),
                max(r["measured_ms"] for r in rows if r["group"] == g),
            ]
            for g in GROUPS
        },
    }
    for name in (
        "by_group_table_fit",
        "by_group_random_line",
        "by_group_line_on_all",
        "by_group_with_per_block_on_all",
    ):
        print(name)
        for g, e in report[name].items():
            print(
                f"  {g:>12}: median {e['median_error']:+.1%}, max |err| {e['max_abs_error']:.1%}, "
                f"within 10 % {e['within_10pct']:.0%}"
            )
    save(
        f"lut_composition{'-' + args.tag if args.tag else ''}",
        {
            "command": "python benchmarks/lut_composition.py "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v not in ("", None)),
            "target": {"runtime": settings.runtime, "threads": settings.threads, "batch": 1},
            "fingerprint": table.fingerprint,
            **report,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
