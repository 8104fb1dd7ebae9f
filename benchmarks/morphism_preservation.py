"""Function preservation of the NASH morphisms: the largest output difference between child and
parent (eval mode) over many random morph sequences, with weights and BN statistics perturbed
after every step as training would.  Usage: python benchmarks/morphism_preservation.py [--n 1000]
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from collections import Counter

import torch
from _common import save

from hwnas.space.config import GraphSpaceConfig
from hwnas.space.graph import Graph, GraphSpace, apply_morph


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="random morph sequences")
    ap.add_argument("--steps", type=int, default=5, help="morphisms per sequence")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = GraphSpace(
        GraphSpaceConfig(
            channels=[8, 16], max_channels=128, morphisms=["deeper", "wider", "skip", "scale"]
        )
    )
    shape = (3, 8, 8)
    x = torch.randn(4, *shape)
    worst, per_kind, kinds, t0 = 0.0, Counter[str](), Counter[str](), time.perf_counter()
    sizes, out_scale = [], 0.0
    for seq in range(args.n):
        torch.manual_seed(seq)
        rng = random.Random(seq)
        arch = copy.deepcopy(space.start)
        net = space.build(arch, shape, 10)
        for _ in range(args.steps):
            for m in net.modules():  # as after training: no BN layer is the identity
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
            for p in net.parameters():  # drift of 20 % of each tensor's scale, as training does
                scale = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.1
                p.add_(0.2 * scale * torch.randn_like(p))
            net.eval()
            ref = net(x)
            morph = space.random_morph(arch, rng)
            arch, state = apply_morph(arch, morph, net.state_dict())
            net = space.build(arch, shape, 10)
            net.load_state_dict(state)
            net.eval()
            diff = float((net(x) - ref).abs().max())
            out_scale = max(out_scale, float(ref.abs().max()))
            kinds[morph["kind"]] += 1
            per_kind[morph["kind"]] = max(per_kind[morph["kind"]], diff)
            worst = max(worst, diff)
        sizes.append(len(Graph(arch).nodes))
    save(
        "morphism_preservation",
        {
            "command": f"python benchmarks/morphism_preservation.py --n {args.n} --steps {args.steps}",
            "sequences": args.n,
            "morphisms": sum(kinds.values()),
            "by_kind": dict(kinds),
            "max_abs_output_diff": worst,
            "max_abs_output_diff_by_kind": dict(per_kind),
            "max_abs_output": out_scale,
            "median_nodes_at_end": sorted(sizes)[len(sizes) // 2],
            "seconds": round(time.perf_counter() - t0, 1),
        },
    )


if __name__ == "__main__":
    main()
