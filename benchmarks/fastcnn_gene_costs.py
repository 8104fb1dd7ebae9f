"""What one fast-CNN gene saves on the CPU: the reference nets and their variants, timed.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/fastcnn_gene_costs.py --gene grouped

For each reference net (airbench94, airbench96) and its variants along one gene of the
fast-CNN space (``grouped``: the convs after each group's first split 2, 4 or 8 ways, in
groups 2 and 3 or in all; ``pool``: groups pooling before their first conv), MACs, params and
latency with ONNX Runtime (1 thread, batch 1), every net timed ``--rounds`` times round-robin
and the median kept, by the same code a search measures with. No training: this says what a
gene can buy in time, not what it costs in accuracy (a search on the GPU measures that).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from hwnas.hardware.config import CpuOrtTarget  # noqa: E402
from hwnas.hardware.costs import profile_module  # noqa: E402
from hwnas.space.config import FastCnnSpaceConfig, FastGroupConfig  # noqa: E402
from hwnas.space.fastcnn import REFERENCE_NETS, FastCnnSpace  # noqa: E402

SHAPE = (3, 32, 32)


def variants(gene: str) -> dict[str, Any]:
    """Name -> arch: each reference net, then its variants along ``gene``."""
    out: dict[str, Any] = {}
    for ref, arch in REFERENCE_NETS.items():
        out[ref] = arch
        n = len(arch["groups"])
        if gene == "grouped":
            picks = [(f"g{s} in groups 2-{n}", s, range(1, n)) for s in (2, 4, 8)]
            picks += [(f"g{s} in all", s, range(n)) for s in (2, 4)]
        else:
            picks = [(f"pool first in group {i + 1}", "before", [i]) for i in range(1, n)]
            picks += [("pool first in all", "before", range(n))]
        for label, value, where in picks:
            a = copy.deepcopy(arch)
            for i in where:
                a["groups"][i][gene] = value
            out[f"{ref}, {label}"] = a
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gene", choices=["grouped", "pool"], default="grouped")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tag", default="vm")
    args = ap.parse_args()
    key = "grouped" if args.gene == "grouped" else "pools"
    open_gene = {"grouped": [1, 2, 4, 8]} if key == "grouped" else {"pools": ["after", "before"]}
    space = FastCnnSpace(
        FastCnnSpaceConfig(
            groups=[
                FastGroupConfig(**{**g.model_dump(), **open_gene})
                for g in FastCnnSpaceConfig().groups
            ]
        )
    )
    nets = variants(args.gene)
    target = CpuOrtTarget(threads=1, batch=1)
    readings: dict[str, list[float]] = {name: [] for name in nets}
    counts: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, arch in nets.items():
            model = space.build(arch, SHAPE, 10).eval()
            costs = profile_module(model, SHAPE, target)
            readings[name].append(float(costs["latency_ms"]))
            counts[name] = (float(costs["macs"]), float(costs["params"]))
    rows = []
    for name, arch in nets.items():
        ref = name.split(",")[0]
        ms = statistics.median(readings[name])
        base = statistics.median(readings[ref])
        macs, params = counts[name]
        rows.append(
            {
                "net": name,
                "arch": space.describe(arch),
                "macs": macs,
                "params": params,
                "cpu_ort_b1_ms": ms,
                "vs_reference": ms / base,
                "readings": [round(v, 4) for v in readings[name]],
            }
        )
        print(
            f"{name:32s} {macs / 1e6:7.1f} M MACs {params / 1e6:6.2f} M params  {ms:7.3f} ms  x{ms / base:.2f}"
        )
    save(
        f"fastcnn_gene_costs-{args.gene}-{args.tag}",
        {
            "command": " ".join(sys.argv),
            "target": "cpu-ort, 1 thread, batch 1; medians of --rounds round-robin readings",
            "rounds": args.rounds,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
