"""SPOS on the NB201 cell, CPU-sized: a CIFAR-10 (JPEG) subset, then inherited-weight scores.

Trains the NB201 supernet (16 channels, 5 cells per stage, as ``configs/spos_nb201.yaml``)
along uniformly drawn single paths (cells whose output is all zeros drawn again) on a subset
of CIFAR-10 (JPEG), fp32 or under bf16 autocast (``--bf16``: the GPU default's arithmetic,
where skip and pool routes compounding over 15 cells may round the convs' share away), and
prints the training loss every 50 steps. Then ``--score N`` live cells (table accuracy over
20 %) are scored by ``estimator: supernet``'s own scorer (BatchNorm statistics re-estimated
on 2000 training images, accuracy on 1000 validation images), and with ``--finetune K`` also
after K SGD steps of the cell's own path from the inherited weights (``finetune_steps``),
and Kendall's tau against the NB201
table's test accuracy is reported over all cells and within cells with and without a
parameter-free route from input to output (``gain``, see ``supernet_interference.py``).
A probe of where SPOS's ranking fails that fits the 2-core VM; the real runs are
``gpu_spos_nb201.sh``.

Usage: python benchmarks/spos_cifar_cpu.py --data cifar10-jpeg.tar.gz --table nb201.csv.gz
[--steps 1200] [--bs 96] [--bf16] [--score 40] [--finetune 0] [--weights PT] [--tag T]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import math
import random
import time
from typing import Any

import torch
import torch.nn.functional as F
from _common import save
from supernet_interference import NB201, gain

from hwnas.data import batches, load_dataset
from hwnas.data.base import Split
from hwnas.experiment.config import load_config
from hwnas.oneshot.inherit import InheritedScorer
from hwnas.space.cell_modules import CellSupernet

CPU = torch.device("cpu")


def cell_key(path: list[tuple[int, None]]) -> str:
    o = [NB201[i] for i, _ in path]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def live(picks: list[int]) -> bool:
    """Whether some route of non-`none` edges reaches the output (edges 0->1, 0->2, 1->2,
    0->3, 1->3, 2->3; op 0 is `none`)."""
    n1 = picks[0] != 0
    n2 = picks[1] != 0 or (picks[2] != 0 and n1)
    return picks[3] != 0 or (picks[4] != 0 and n1) or (picks[5] != 0 and n2)


def train(data: Any, steps: int, bs: int, lr: float, bf16: bool) -> tuple[CellSupernet, list]:
    torch.manual_seed(0)
    net = CellSupernet(NB201, 3, 10, 16, 5)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng, step, run, curve = random.Random(0), 0, [], []
    t0 = time.monotonic()
    for epoch in range(10**6):
        gen = torch.Generator().manual_seed(epoch)
        kw = dict(mean=data.mean, std=data.std, shuffle=True, augment=True, drop_last=True)
        for x, y in batches(data.train, bs, generator=gen, device=CPU, **kw):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            picks = [rng.randrange(5) for _ in range(6)]
            while not live(picks):
                picks = [rng.randrange(5) for _ in range(6)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x, [(i, None) for i in picks])
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            run.append(float(loss.detach()))
            if step % 50 == 0 or step == steps:
                curve.append(round(sum(run) / len(run), 4))
                run = []
                print(f"step {step}: loss {curve[-1]} ({time.monotonic() - t0:.0f} s)", flush=True)
            if step >= steps:
                return net, curve
    return net, curve


def tau(rows: list[tuple[float, float]]) -> float | None:
    from scipy.stats import kendalltau  # in the test extras, as spos_nb201.py uses it

    return float(kendalltau(*zip(*rows, strict=True))[0]) if len(rows) > 2 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--subset", type=float, default=0.2)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--bs", type=int, default=96)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--weights", default="", help="a supernet this script saved: skip training")
    ap.add_argument("--score", type=int, default=40)
    ap.add_argument("--finetune", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sets = ["data=cifar10", f"data.path={a.data}", f"data.subset={a.subset}", "data.augment=true"]
    data = load_dataset(load_config(None, sets).data, 0)
    t0 = time.monotonic()
    if a.weights:
        net, curve = CellSupernet(NB201, 3, 10, 16, 5), []
        net.load_state_dict(torch.load(a.weights, map_location="cpu"))
    else:
        net, curve = train(data, a.steps, a.bs, a.lr, a.bf16)
        name = f"spos_cifar_cpu-{a.tag or ('bf16' if a.bf16 else 'fp32')}.pt"
        torch.save(net.state_dict(), f"/tmp/{name}")
        print(f"supernet saved to /tmp/{name}")
    trained_s = time.monotonic() - t0
    # scoring as the estimator does, on slices that fit the VM: 2000 training images
    # recalibrate BatchNorm, 1000 validation images score
    small = dataclasses.replace(
        data,
        train=Split(data.train.x[:2000], data.train.y[:2000]),
        val=Split(data.val.x[:1000], data.val.y[:1000]),
    )
    with gzip.open(a.table, "rt") as f:
        table = {r["arch_str"]: float(r["cifar10_test_acc"]) for r in csv.DictReader(f)}
    draw, paths = random.Random(3), []
    while len(paths) < a.score:
        path = [(draw.randrange(5), None) for _ in range(6)]
        if table.get(cell_key(path), 0.0) > 20:
            paths.append(path)
    # the estimator's own scorer: BatchNorm recalibrated on 8 batches of 250 (the 2000
    # training images), with and without fine-tuning each path first
    scorers = {"inherited": InheritedScorer(net, small, CPU, batch_size=250, bn_batches=8,
                                            eval_images=0, seed=7)}  # fmt: skip
    if a.finetune:
        scorers["finetuned"] = InheritedScorer(
            net, small, CPU, batch_size=96, bn_batches=8, eval_images=0, seed=7,
            finetune_steps=a.finetune,
        )  # fmt: skip
        scorers["finetuned"].recal = scorers["inherited"].recal  # the same statistics' batches
    scored = []
    for path in paths:
        picks = [i for i, _ in path]
        row = {"cell": cell_key(path), "table": table[cell_key(path)], "gain": gain(NB201, path)}
        row |= {k: sc.score(picks)["accuracy"] for k, sc in scorers.items()}
        row["score"] = row["finetuned" if a.finetune else "inherited"]
        scored.append(row)
        print(row, flush=True)
    groups = {
        "all": scored,
        "gain 0": [s for s in scored if s["gain"] == 0],
        "gain > 0": [s for s in scored if s["gain"] > 0],
    }
    summary = {
        f"{k} ({way})": {
            "n": len(g),
            "mean_score": round(sum(s[way] for s in g) / max(len(g), 1), 4),
            "kendall_tau": tau([(s[way], s["table"]) for s in g]),
        }
        for way in scorers
        for k, g in groups.items()
    }
    print(summary)
    save(
        "spos_cifar_cpu" + (f"-{a.tag}" if a.tag else ""),
        {
            "args": vars(a),
            "curve_every_50_steps": curve,
            "train_seconds": round(trained_s, 1),
            "summary": summary,
            "scored": scored,
        },
    )


if __name__ == "__main__":
    main()
