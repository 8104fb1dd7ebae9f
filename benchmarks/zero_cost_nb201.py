"""Zero-cost proxies on NAS-Bench-201, computed by hwnas for real, against the table.

Samples ``--archs`` cells of the NB201 table, builds each as hwnas's cell space builds it
(the benchmark's macro: 16 channels, 5 cells per stage), initialises it with one seed, and
computes every proxy on the same batch of CIFAR-10 (JPEG) training images; reports each
proxy's Spearman rho (and Kendall tau) with the table's CIFAR-10 test accuracy beside the
params and MACs baselines, with seconds per arch. Published on NB201 CIFAR-10 (rho): synflow
~0.74, jacob_cov ~0.73, grad_norm and snip ~0.58, NASWOT ~0.8, MeCo 0.89; params ~0.73.
Usage: python benchmarks/zero_cost_nb201.py --data PATH --table CSV.gz [--archs 1000]
[--batch 128] [--seed 0] [--threads 2] [--proxies meco,synflow] [--tag T]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import random
import statistics
import time
from typing import Any

import torch
from _common import save
from scipy.stats import kendalltau, spearmanr

from hwnas.data import batches, load_dataset
from hwnas.estimate.proxies import PROXIES
from hwnas.experiment.config import load_config
from hwnas.hardware.analytic import count_macs
from hwnas.space import make_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the CIFAR-10 (JPEG) archive")
    ap.add_argument("--table", required=True)
    ap.add_argument("--archs", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=0, help="stop sampling after this long")
    ap.add_argument("--proxies", default="", help="comma-separated subset (default: all)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    with gzip.open(a.table, "rt") as f:
        rows = list(csv.DictReader(f))
    sample = random.Random(a.seed).sample(rows, min(a.archs, len(rows)))
    cfg = load_config(None, ["space=cell", "data=cifar10", f"data.path={a.data}"])
    data = load_dataset(cfg.data, a.seed)
    space = make_space(cfg.space)
    gen = torch.Generator().manual_seed(a.seed)
    x, y = next(
        iter(
            batches(
                data.train, a.batch, mean=data.mean, std=data.std, shuffle=True, augment=False,
                generator=gen,
            )
        )
    )  # fmt: skip
    x, y = x.to(a.device), y.to(a.device)
    names = sorted(a.proxies.split(",")) if a.proxies else sorted(PROXIES)
    if unknown := set(names) - set(PROXIES):
        ap.error(f"--proxies: unknown {sorted(unknown)}; known: {sorted(PROXIES)}")
    scores: dict[str, list[float]] = {n: [] for n in [*names, "params", "macs"]}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    truth: list[float] = []
    t_all = time.monotonic()
    for k, row in enumerate(sample):
        if a.seconds and time.monotonic() - t_all > a.seconds:
            print(f"time is up after {k} archs", flush=True)
            break
        arch = _arch(space, row["arch_str"])
        assert space.key(arch) == row["arch_str"], (space.key(arch), row["arch_str"])
        torch.manual_seed(a.seed)
        net = space.build(arch, data.input_shape, data.num_classes).to(a.device)
        for n in names:
            t0 = time.perf_counter()
            s = PROXIES[n](net, x, y)  # a float: the device has finished
            seconds[n].append(time.perf_counter() - t0)
            scores[n].append(s if math.isfinite(s) else -1e300)
        scores["params"].append(float(sum(p.numel() for p in net.parameters())))
        scores["macs"].append(float(count_macs(net.cpu(), data.input_shape)))
        truth.append(float(row["cifar10_test_acc"]))
        if (k + 1) % 100 == 0:
            rho = {n: round(spearmanr(scores[n], truth).statistic, 3) for n in scores}
            print(f"{k + 1} archs, {time.monotonic() - t_all:.0f} s: rho {rho}", flush=True)
    result: dict[str, Any] = {}
    for n, vals in scores.items():
        result[n] = {
            "spearman": spearmanr(vals, truth).statistic,
            "kendall": kendalltau(vals, truth).statistic,
            "seconds_per_arch_median": statistics.median(seconds[n]) if n in seconds else None,
            "not_finite": sum(v == -1e300 for v in vals),
        }
        print(f"{n:10s} rho {result[n]['spearman']:+.3f} tau {result[n]['kendall']:+.3f}")
    save(
        "zero_cost_nb201" + (f"-{a.tag}" if a.tag else ""),
        {
            "data": "CIFAR-10 (JPEG)",
            "archs": len(truth),
            "device": a.device,
            "batch": a.batch,
            "threads": torch.get_num_threads(),
            "wall_s": time.monotonic() - t_all,
            "proxies": result,
        },
    )


def _arch(space: Any, arch_str: str) -> Any:
    """The cell space's arch for an NB201 arch string (ops per edge, in the string's order)."""
    ops = [
        tok.split("~")[0] for part in arch_str.strip("|").split("|+|") for tok in part.split("|")
    ]
    names = space.choices()[0]
    return space.from_choices([names.index(o) for o in ops])


if __name__ == "__main__":
    main()
