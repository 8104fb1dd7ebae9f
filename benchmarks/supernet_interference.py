"""Why single-path supernets of the NB201 cell learn slowly: the cost of untied weights.

Trains the NB201 cell supernet (5 cells per stage, 16 channels) on digits along uniformly
drawn single paths, with the candidate ops of every edge set to:
``one`` (a single conv3x3: an ordinary net), ``tied`` (two conv3x3 entries sharing one
module: the same net, the draw is a no-op), ``untied`` (two conv3x3 with weights of their
own, same init), ``untied-fresh`` (the same, each initialised apart), and ``nb201`` (the
benchmark's five ops); ``conv1-conv3`` and ``skip-conv3`` (two different ops per edge).
Prints the mean training CE per epoch; ``untied`` against ``tied`` isolates what weight
sharing over paths costs, before any op is worse than another. For the multi-op variants it
then scores fixed paths with BatchNorm recalibrated (as ``estimator: supernet`` does):
all-conv3x3, and six random cells with their identity gain (how many skip/pool routes carry
the cell's input to its output). ``--fair``: FairNAS's strict fairness (every step trains
each op of every edge once, gradients summed, one optimiser step) instead of one path.
``--share-kernels``: each edge's conv1x1 is its conv3x3's centre tap (its own BatchNorm), as
single-path NAS and Once-for-All share kernels. ``--train-mode``: the all-conv3x3 cell is also
scored with batch statistics (no recalibration), to tell recalibration from training.
Usage: python benchmarks/supernet_interference.py [--epochs 15] [--lr 0.1] [--momentum 0.9]
[--fair] [--share-kernels] [--train-mode] [--only V,V] [--tag T]
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
    "conv1-conv3": ["nor_conv_1x1", "nor_conv_3x3"],
    "skip-conv3": ["skip_connect", "nor_conv_3x3"],
}
PASSIVE = ("skip_connect", "avg_pool_3x3")


def gain(names: list[str], path: list[tuple[int, None]]) -> float:
    """How many parameter-free routes carry the cell's input to its output (edges in
    EDGES order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)."""
    g = [1.0 if names[i] in PASSIVE else 0.0 for i, _ in path]
    n1 = g[0]
    n2 = g[1] + g[2] * n1
    return g[3] + g[4] * n1 + g[5] * n2


def recalibrated(net: CellSupernet, path: list[tuple[int, None]], data) -> float:
    """Validation accuracy along ``path`` after its BatchNorm statistics are re-estimated on
    the training split."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
    kw = dict(mean=data.mean, std=data.std, shuffle=False, augment=False)
    cpu = torch.device("cpu")
    with torch.no_grad():
        net.train()
        for x, _ in batches(data.train, 256, generator=torch.Generator(), device=cpu, **kw):
            net(x, path)
        net.eval()
        right = seen = 0
        for x, y in batches(data.val, 256, generator=torch.Generator(), device=cpu, **kw):
            right += int((net(x, path).argmax(1) == y).sum())
            seen += len(y)
    return round(right / seen, 3)


class CentreTap(torch.nn.Module):
    """A ReLU-conv1x1-BN whose kernel is the centre of a ReLU-conv3x3-BN's."""

    def __init__(self, conv3: torch.nn.Sequential) -> None:
        super().__init__()
        self.source = [conv3]  # a list: not a submodule, its weights counted once
        self.bn = torch.nn.BatchNorm2d(conv3[1].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.source[0][1].weight[:, :, 1:2, 1:2]
        return self.bn(F.conv2d(F.relu(x), w))


def batch_stats_accuracy(net: CellSupernet, path: list[tuple[int, None]], data) -> float:
    """Validation accuracy along ``path`` with each batch's own BatchNorm statistics."""
    kw = dict(mean=data.mean, std=data.std, shuffle=False, augment=False)
    right = seen = 0
    with torch.no_grad():
        net.train()
        for x, y in batches(
            data.val, 256, generator=torch.Generator(), device=torch.device("cpu"), **kw
        ):
            right += int((net(x, path).argmax(1) == y).sum())
            seen += len(y)
    return round(right / seen, 3)


def train(
    variant: str,
    epochs: int,
    lr: float,
    data,
    momentum: float = 0.9,
    fair: bool = False,
    share: bool = False,
    train_mode: bool = False,
) -> tuple[list[float], dict[str, float]]:
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
    if share and "nor_conv_1x1" in names and "nor_conv_3x3" in names:
        i1, i3 = names.index("nor_conv_1x1"), names.index("nor_conv_3x3")
        for cell in net.features:
            for ops in getattr(cell, "edges", []):
                ops[i1] = CentreTap(ops[i3])
    opt = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=5e-4
    )
    k = len(names)
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
            opt.zero_grad()
            if fair:  # each op of each edge once, in an order drawn per edge
                perms = [rng.sample(range(k), k) for _ in range(6)]
                paths = [[(p[j], None) for p in perms] for j in range(k)]
            else:
                paths = [[(rng.randrange(k), None) for _ in range(6)]]
            for path in paths:
                loss = F.cross_entropy(net(x, path), y)
                loss.backward()
                total, n = total + float(loss.detach()), n + 1
            opt.step()
        curve.append(round(total / n, 4))
    scored: dict[str, float] = {}
    if variant in ("nb201", "conv1-conv3", "skip-conv3"):
        conv3 = names.index("nor_conv_3x3")
        if train_mode:
            path = [(conv3, None)] * 6
            scored["all nor_conv_3x3, batch statistics"] = batch_stats_accuracy(net, path, data)
        scored["all nor_conv_3x3 (gain 0)"] = recalibrated(net, [(conv3, None)] * 6, data)
        draw = random.Random(5)
        for _ in range(6):
            path = [(draw.randrange(k), None) for _ in range(6)]
            label = "|".join(names[i] for i, _ in path)
            scored[f"{label} (gain {gain(names, path):g})"] = recalibrated(net, path, data)
    return curve, scored


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--fair", action="store_true")
    ap.add_argument("--share-kernels", action="store_true")
    ap.add_argument("--train-mode", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated variants")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(load_config(None, ["data=digits"]).data, 0)
    curves, wall, scored = {}, {}, {}
    for v in a.only.split(",") if a.only else VARIANTS:
        t0 = time.monotonic()
        curves[v], scored[v] = train(
            v, a.epochs, a.lr, data, a.momentum, a.fair, a.share_kernels, a.train_mode
        )
        wall[v] = time.monotonic() - t0
        print(f"{v:>13}: CE by epoch {curves[v][::3]} ... final {curves[v][-1]}", flush=True)
        for path, acc in scored[v].items():
            print(f"{'':>15}{path}: {acc:.1%}", flush=True)
    name = "supernet_interference" + (f"-{a.tag}" if a.tag else "")
    save(
        name,
        {
            "epochs": a.epochs,
            "lr": a.lr,
            "momentum": a.momentum,
            "fair": a.fair,
            "share_kernels": a.share_kernels,
            "curves": curves,
            "recalibrated_val_accuracy": scored,
            "wall_s": wall,
        },
    )


if __name__ == "__main__":
    main()
