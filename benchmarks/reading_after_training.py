"""Do cpu-ort readings taken in a process right after it trained on the GPU run slow?

FBNet's measured fix-up reads derived nets in the process that has just trained the
supernet; on an H100 box those readings ran 1.5-2.2x the same nets' quiet ones (see
docs/oneshot.md). This times three FBNet nets with the search's own meter (cpu-ort, 1 thread,
batch 1) before any GPU work, right after a GPU training loop in the same process, and again
after a pause, and prints the ratios.

    python benchmarks/reading_after_training.py --train-seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch
from _common import save

from hwnas.hardware.profile import OrtCpuMeter
from hwnas.space.fbnet import FbnetSpace


def readings(meter: OrtCpuMeter, nets: list[torch.nn.Module]) -> list[float]:
    return [round(meter.measure(n, (3, 32, 32)).latency_ms, 4) for n in nets]


def train_on_gpu(seconds: float) -> int:
    """A conv net trained on random CIFAR-sized batches for ``seconds`` (like a supernet's
    loop: the CPU launches kernels and waits on the GPU)."""
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    space = FbnetSpace()
    net = space.build(space.sample(random.Random(7)), (3, 32, 32), 10).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(256, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (256,), device=dev)
    steps, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        steps += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps


def _read(path: str) -> str | None:
    """A cgroup file's text (a CPU quota below the cores listed would slow a reading)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-seconds", type=float, default=30.0)
    ap.add_argument("--pause", type=float, default=20.0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    space = FbnetSpace()
    rng = random.Random(0)
    nets = [space.build(space.sample(rng), (3, 32, 32), 10).eval() for _ in range(3)]
    meter = OrtCpuMeter(threads=1)
    before = readings(meter, nets)
    steps = train_on_gpu(args.train_seconds)
    after = readings(meter, nets)
    again = readings(meter, nets)
    time.sleep(args.pause)
    paused = readings(meter, nets)
    out = {
        "torch_threads": torch.get_num_threads(),
        "process_threads": len(os.listdir("/proc/self/task")),
        "loadavg": os.getloadavg(),
        "cpus": len(os.sched_getaffinity(0)),
        "cgroup_cpu_max": _read("/sys/fs/cgroup/cpu.max"),
        "cgroup_throttled": _read("/sys/fs/cgroup/cpu.stat"),
        "train_steps": steps,
        "before_ms": before,
        "right_after_ms": after,
        "after_again_ms": again,
        f"after_{args.pause:g}s_pause_ms": paused,
        "ratio_right_after": [round(a / b, 3) for a, b in zip(after, before, strict=True)],
    }
    print(json.dumps(out, indent=1))
    save("reading_after_training" + (f"-{args.tag}" if args.tag else ""), out)


if __name__ == "__main__":
    main()
