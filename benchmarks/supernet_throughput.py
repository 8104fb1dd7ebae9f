"""Supernet training throughput against one stand-alone net of the space's largest arch.

For each one-shot space (FBNet as in configs/fbnet_cifar10.yaml, the NB201 cell, the chain
space of configs/cifar10.yaml) and each way of running the supernet -- every op weighted
(`soft`, FBNet's and DARTS's mixed op), one sampled op per position (`single`, SPOS and GDAS)
-- times SGD steps on batches of CIFAR-10's shape (images/s, median of ``--repeats`` timed
runs), with the same precision and layout the supernet trainer uses (bf16, channels-last on
CUDA), beside the stand-alone net that picks the largest op everywhere. The content of a
batch does not change its cost, so the batches are random tensors (no data set to load).
Also counts the backend ops of one step (``ops_per_step``; each a kernel launch on a GPU).
On CUDA also ``soft_graphs``: the soft step as the trainer replays it with
``supernet.cuda_graphs`` (forward and backward one CUDA graph, the optimiser eager), whose
``ops_per_step`` counts only what the host still dispatches: how much of a soft step is the
host's, to decide whether the trainer should capture its steps.
Usage: python benchmarks/supernet_throughput.py [--device cuda] [--batch 256] [--steps 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from _common import save
from torch.utils._python_dispatch import TorchDispatchMode

from hwnas.estimate.fast import autocast
from hwnas.experiment.config import load_config
from hwnas.oneshot.graphs import WARM, GraphedSteps
from hwnas.space import make_space

SPACES = {
    "fbnet": ["space=fbnet", "space.stem_stride=1", "space.head_channels=1024"],
    "cell": ["space=cell"],
    "chain": ["--config", "configs/cifar10.yaml"],
}


def space_of(name: str) -> Any:
    items = SPACES[name]
    path = items[1] if items[0] == "--config" else None
    sets = [] if path else items
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return make_space(load_config(root / path if path else None, sets).space)


def largest(space: Any) -> list[int]:
    """Per position the pick with the most parameters (the dearest stand-alone net); the
    cell space has no per-choice blocks: nor_conv_3x3 on every edge."""
    if not hasattr(space, "choice_blocks"):
        return [c.index("nor_conv_3x3") for c in space.choices()]
    _, per_pick = space.choice_blocks((3, 32, 32), 10)

    def count(b: Any) -> int:
        return 0 if b is None else sum(p.numel() for p in b.build().parameters())

    return [max(range(len(row)), key=lambda i: count(row[i])) for row in per_pick]


def timed(step: Any, steps: int, dev: torch.device) -> float:
    for _ in range(5):  # warm-up: cuDNN autotune, allocator
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


class _OpCount(TorchDispatchMode):
    """Counts the backend ops one step runs (forward, backward and the optimiser): on a GPU
    each is a kernel launch at least, and a supernet of small convs is bound by launches."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.n += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(step: Any) -> int:
    step()  # allocations, cuDNN choices: not counted
    with _OpCount() as count:
        step()
    return count.n


def measure(name: str, a: argparse.Namespace) -> dict[str, Any]:
    dev = torch.device(a.device)
    precision = "bf16" if dev.type == "cuda" else "fp32"
    space = space_of(name)
    choices = [len(c) for c in space.choices()]
    x = torch.randn(a.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    if dev.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    rng = random.Random(0)
    out: dict[str, Any] = {"positions": len(choices), "choices": choices}

    def runner(net: torch.nn.Module, path_of: Any) -> Any:
        net.to(dev)
        if dev.type == "cuda":
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step() -> None:
            with autocast(dev, precision):
                logits = net(x) if path_of is None else net(x, path_of())
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    def graphed_runner(net: torch.nn.Module, path_of: Any) -> Any:
        """The soft-mixture step as the trainer runs it with ``supernet.cuda_graphs``
        (:class:`GraphedSteps`: forward and backward replayed as a CUDA graph, new mixture
        weights copied in each step, the optimiser eager): what the host, not the GPU, costs
        per step. Returned after its eager warm-up and capture. CUDA only."""
        net.to(dev)
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        steps = GraphedSteps(net, precision)

        def step() -> None:
            steps.w_grads(x, y, path_of())
            opt.step()

        for _ in range(WARM + 1):  # the eager warm-up steps, then the capture
            step()
        return step

    torch.manual_seed(0)
    cases = {
        "soft": (
            space.supernet((3, 32, 32), 10),
            lambda: [torch.softmax(torch.randn(k, device=dev), 0) for k in choices],
        ),
        "single": (
            space.supernet((3, 32, 32), 10),
            lambda: [(rng.randrange(k), None) for k in choices],
        ),
        "largest_standalone": (
            space.build(space.from_choices(largest(space)), (3, 32, 32), 10),
            None,
        ),
    }
    if dev.type == "cuda" and precision == "bf16":
        cases["soft_graphs"] = (
            space.supernet((3, 32, 32), 10),
            lambda: [torch.softmax(torch.randn(k, device=dev), 0) for k in choices],
        )
    for case, (net, path_of) in cases.items():
        step = (graphed_runner if case == "soft_graphs" else runner)(net, path_of)
        ops = ops_per_step(step)
        secs = [timed(step, a.steps, dev) for _ in range(a.repeats)]
        med = statistics.median(secs)
        out[case] = {
            "images_per_s": a.batch * a.steps / med,
            "ms_per_step": 1000 * med / a.steps,
            "ops_per_step": ops,
            "params": sum(p.numel() for p in net.parameters()),
        }
        print(f"{name} {case}: {out[case]['images_per_s']:.0f} images/s, {ops} ops", flush=True)
        del net, step
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    base = out["largest_standalone"]["images_per_s"]
    out["soft_vs_standalone"] = out["soft"]["images_per_s"] / base
    out["single_vs_standalone"] = out["single"]["images_per_s"] / base
    if "soft_graphs" in out:
        out["soft_graphs_vs_soft"] = (
            out["soft_graphs"]["images_per_s"] / out["soft"]["images_per_s"]
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spaces", default="fbnet,cell,chain")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    rows = {name: measure(name, a) for name in a.spaces.split(",")}
    name = "supernet_throughput" + (f"-{a.tag}" if a.tag else "")
    save(name, {"device": a.device, "batch": a.batch, "steps": a.steps, "rows": rows})


if __name__ == "__main__":
    main()
