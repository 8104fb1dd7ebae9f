"""Why single-path supernets of the NB201 cell learn slowly: the cost of untied weights.

Trains the NB201 cell supernet (5 cells per stage, 16 channels) on digits along uniformly
drawn single paths, with the candidate ops of every edge set to:
``one`` (a single conv3x3: an ordinary net), ``tied`` (two conv3x3 entries sharing one
module: the same net, the draw is a no-op), ``untied`` (two conv3x3 with weights of their
own, same init), ``untied-fresh`` (the same, each initialised apart), and ``nb201`` (the
benchmark's five ops). Prints the mean training CE per epoch; ``untied`` against ``tied``
isolates what weight sharing over paths costs, before any op is worse than another.
Usage: python benchmarks/supernet_interference.py [--epochs 15] [--lr 0.1] [--tag T]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torch.nn.functional as F
from _common import save

from hwnas.data import batches, load_dataset
from hwnas.experiment.config import load_config
from hwnas.space.cell_modules import CellSupernet

NB201 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
VARIANTS = {
    "one": ["nor_conv_3x3"],
    "tied": ["nor_conv_3x3"] * 2,
    "untied": ["nor_conv_3x3"] * 2,
    "untied-fresh": ["nor_conv_3x3"] * 2,
    "nb201": NB201,
}


def train(variant: str, epochs: int, lr: float, data) -> list[float]:
    torch.manual_seed(0)
    names = VARIANTS[variant]
    net = CellSupernet(names, data.input_shape[0], data.num_classes, 16, 5)
    for cell in net.features:
        edges = getattr(cell, "edges", None)
        if edges is None or len(names) != 2:
            continue
        for ops in edges:
            if variant == "tied":
                ops[1] = ops[0]
            elif variant == "untied":
                ops[1].load_state_dict(ops[0].state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng, curve = random.Random(0), []
    for epoch in range(epochs):
        total, n = 0.0, 0
        gen = torch.Generator().manual_seed(epoch)
        for x, y in batches(
            data.train,
            64,
            mean=data.mean,
            std=data.std,
            shuffle=True,
            augment=False,
            generator=gen,
            device=torch.device("cpu"),
            drop_last=True,
        ):
            path = [(rng.randrange(len(names)), None) for _ in range(6)]
            loss = F.cross_entropy(net(x, path), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        curve.append(round(total / n, 4))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(load_config(None, ["data=digits"]).data, 0)
    curves, wall = {}, {}
    for v in VARIANTS:
        t0 = time.monotonic()
        curves[v] = train(v, a.epochs, a.lr, data)
        wall[v] = time.monotonic() - t0
        print(f"{v:>13}: CE by epoch {curves[v][::3]} ... final {curves[v][-1]}", flush=True)
    name = "supernet_interference" + (f"-{a.tag}" if a.tag else "")
    save(name, {"epochs": a.epochs, "lr": a.lr, "curves": curves, "wall_s": wall})


if __name__ == "__main__":
    main()
