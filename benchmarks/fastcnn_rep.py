"""Branched training (structural re-parameterisation) against plain training, side by side.

    python benchmarks/fastcnn_rep.py --data .data/cifar10-jpeg.tar.gz [--runs 5] [--epochs 12]

For each base net (airbench94, airbench96 and nets the searches found), the plain net and the
same net with every group's convs trained as k x k + 1 x 1 + identity branches (each with its
BatchNorm; ``--kinds`` picks) are trained by the final fast recipe (``--epochs`` on all
50 000 training images), run by run interleaved so a slow spell hits both alike, and tested single view on the
deployed form (branches folded into plain convs). Then both deployed nets are timed round-robin
(``--rounds``): ONNX Runtime on the CPU (1 thread, batch 1) and, with CUDA, eager PyTorch
replayed as CUDA graphs (batch 1): the folded net has the plain net's graph, so its latency
must be the plain net's within noise. CIFAR-10 (JPEG). Measured on an H100 (2026-12-06):
branched training cost every net 0.55-1.06 points at 1.7-2x the training time, so the
fast-CNN space does not offer it (the branched form lives here only).

Prints and saves JSON (benchmarks/results/DATE-fastcnn_rep[-TAG].json).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mean_std, save  # noqa: E402

from hwnas.data import load_dataset  # noqa: E402
from hwnas.data.config import DataConfig  # noqa: E402
from hwnas.estimate.config import TrainEstimatorConfig  # noqa: E402
from hwnas.estimate.fast import evaluate_split, train_fast  # noqa: E402
from hwnas.hardware.config import CpuOrtTarget, CudaTorchTarget  # noqa: E402
from hwnas.hardware.costs import profile_module  # noqa: E402
from hwnas.space.config import FastCnnSpaceConfig  # noqa: E402
from hwnas.space.fastcnn import REFERENCE_NETS, FastCnnSpace  # noqa: E402
from hwnas.space.fastcnn_modules import ConvGroup, FastCnn, _bn  # noqa: E402


class RepConv(nn.Module):
    """A k x k conv trained as three parallel branches -- k x k conv, 1 x 1 conv and, where
    channels match, the identity -- each with its own BatchNorm, summed (structural
    re-parameterisation, RepVGG's idea). Every branch is linear at inference, so
    :meth:`fused` folds them into one k x k conv with a bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int, split: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=split, bias=False)
        self.bn = _bn(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 1, groups=split, bias=False)
        self.bn1 = _bn(c_out)
        self.bn_id = _bn(c_out) if c_in == c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x)) + self.bn1(self.conv1(x))
        return y + self.bn_id(x) if self.bn_id is not None else y

    @torch.no_grad()
    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the one k x k conv that computes this module in eval mode."""
        conv = self.conv
        k = conv.kernel_size[0]
        w, b = _fold(conv.weight, self.bn)
        w1, b1 = _fold(F.pad(self.conv1.weight, [k // 2] * 4), self.bn1)
        w, b = w + w1, b + b1
        if self.bn_id is not None:
            per = conv.in_channels // conv.groups  # input channels each output sees
            eye = torch.zeros_like(conv.weight)
            for o in range(conv.out_channels):
                eye[o, o % per, k // 2, k // 2] = 1.0
            wi, bi = _fold(eye, self.bn_id)
            w, b = w + wi, b + bi
        return w, b


def _fold(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free conv followed by eval-mode ``bn`` as one conv's (weight, bias)."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale.view(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def _plain(rep: RepConv, into: nn.BatchNorm2d) -> nn.Conv2d:
    """``rep`` as one bias-free conv; its bias moves into the BatchNorm after it (a
    per-channel constant passes a max-pool unchanged): the plain net's graph, no bias add."""
    c = rep.conv
    plain = nn.Conv2d(
        c.in_channels, c.out_channels, c.kernel_size, padding=c.padding, groups=c.groups, bias=False
    ).to(c.weight.device)
    w, b = rep.fused()
    with torch.no_grad():
        plain.weight.copy_(w)
        assert into.running_mean is not None
        into.running_mean.sub_(b)
    return plain


def _rep(conv: nn.Module) -> RepConv:
    assert isinstance(conv, nn.Conv2d)
    return RepConv(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.groups)


def make_branched(model: FastCnn) -> FastCnn:
    """Every conv of every group of ``model`` (freshly built) replaced by a :class:`RepConv`."""
    for g in model.groups:
        assert isinstance(g, ConvGroup)
        g.first = _rep(g.first)
        for layer in g.rest:
            layer[0] = _rep(layer[0])
    return model


def folded(model: FastCnn) -> FastCnn:
    """A trained net as deployed: an eval-mode copy with its RepConvs folded into plain convs
    (the model itself when it has none)."""
    if not any(isinstance(m, RepConv) for m in model.modules()):
        return model
    plain = copy.deepcopy(model).eval()
    for g in plain.groups:
        assert isinstance(g, ConvGroup)
        if isinstance(g.first, RepConv):
            g.first = _plain(g.first, g.bn1)
        for layer in g.rest:
            if isinstance(layer[0], RepConv):
                layer[0] = _plain(layer[0], layer[1])
    return plain


def _net(spec: list[tuple[int, int, bool]]) -> dict[str, Any]:
    groups = [{"width": w, "depth": d, "kernel": 3, "residual": r} for w, d, r in spec]
    return {"act": "gelu", "groups": groups}


BASES: dict[str, dict[str, Any]] = {
    "airbench94": REFERENCE_NETS["airbench94"],
    # found by the grouped-conv search (2026-12-06): faster than airbench94 on both targets
    "32x2-256x2-512x1": _net([(32, 2, False), (256, 2, False), (512, 1, False)]),
    "128x2-256x2-320x1": _net([(128, 2, False), (256, 2, False), (320, 1, False)]),
    # the grouped-conv search's most accurate on validation in airbench94's GPU latency box
    "128x2-256x2-512x1": _net([(128, 2, False), (256, 2, False), (512, 1, False)]),
    "96x2-256x2-512x1": _net([(96, 2, False), (256, 2, False), (512, 1, False)]),
    "airbench96": REFERENCE_NETS["airbench96"],  # last: the slowest to train
}


def build(space: FastCnnSpace, arch: dict[str, Any], kind: str, ds: Any) -> FastCnn:
    model = space.build(arch, ds.input_shape, ds.num_classes)
    assert isinstance(model, FastCnn)
    return make_branched(model) if kind == "branched" else model


def describe(space: FastCnnSpace, arch: dict[str, Any], kind: str) -> str:
    """The space's description, each group marked ``b`` when its convs train branched."""
    text = space.describe(arch)
    if kind != "branched":
        return text
    head, groups = text.rsplit(" ", 1)
    return head + " " + "-".join(g + "b" for g in groups.split("-"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--bases", default=",".join(BASES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default="plain,branched", help="which trainings of each net")
    ap.add_argument("--subset", type=float, default=1.0, help="share of the data (smoke runs)")
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds; stop starting runs")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    t_start = time.perf_counter()
    bases = args.bases.split(",")
    unknown = [b for b in bases if b not in BASES]
    if unknown:
        ap.error(f"--bases: unknown {unknown}; known: {list(BASES)}")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ds = load_dataset(
        DataConfig(name="cifar10", path=args.data, augment=True, subset=args.subset), seed=0
    )
    widths = sorted({g["width"] for b in bases for g in BASES[b]["groups"]})
    space = FastCnnSpace(FastCnnSpaceConfig.model_validate({"groups": [{"widths": widths}] * 3}))
    cfg = TrainEstimatorConfig.model_validate(
        {"name": "train", "recipe": "fast", "epochs": args.epochs}
    )
    kinds = [k for k in ("plain", "branched") if k in args.kinds.split(",")]
    pairs = {b: {k: BASES[b] for k in kinds} for b in bases}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        b: {k: [] for k in pairs[b]} for b in bases
    }
    # one warm-up training (cuDNN autotuning, allocator) that no figure includes
    train_fast(space.build(BASES[bases[0]], ds.input_shape, ds.num_classes), ds, cfg, seed=99,
               device=dev, train_on_val=True)  # fmt: skip
    interrupted = False
    try:
        train_all(args, bases, pairs, runs, space, ds, cfg, dev, t_start)
    except KeyboardInterrupt:  # the GPU script's time limit: keep what is done
        interrupted = True
        print("interrupted: saving the runs done, no timing", flush=True)
    targets: dict[str, Any] = {"cpu_ort_b1_ms": CpuOrtTarget(threads=1, batch=1)}
    if dev == "cuda":
        targets["gpu_b1_ms"] = CudaTorchTarget(batch=1, cuda_graphs=True)
    lat: dict[str, dict[str, dict[str, list[float]]]] = {
        b: {k: {t: [] for t in targets} for k in pairs[b]} for b in bases
    }
    for _ in range(0 if interrupted else args.rounds):
        for b in bases:
            for kind, arch in pairs[b].items():
                for key, target in targets.items():
                    model = folded(build(space, arch, kind, ds).eval())
                    got = profile_module(model, ds.input_shape, target)
                    lat[b][kind][key].append(got["latency_ms"])
    report(args, bases, pairs, runs, lat, space, dev, interrupted)


def train_all(
    args: argparse.Namespace,
    bases: list[str],
    pairs: dict[str, dict[str, Any]],
    runs: dict[str, dict[str, list[dict[str, float]]]],
    space: FastCnnSpace,
    ds: Any,
    cfg: TrainEstimatorConfig,
    dev: str,
    t_start: float,
) -> None:
    """Seed by seed, base by base, every kind of the base in a row: the deadline is checked
    before a base's kinds, so the kinds stay paired seed for seed."""
    for seed in range(args.runs):
        for b in bases:
            if time.perf_counter() - t_start > args.deadline:
                return
            for kind, arch in pairs[b].items():
                torch.manual_seed(seed)
                model = build(space, arch, kind, ds)
                res = train_fast(model, ds, cfg, seed=seed, device=dev, train_on_val=True)
                model.eval()
                deployed = folded(model)
                d = torch.device(dev)
                acc = evaluate_split(deployed, ds.test, ds, d)[0]
                acc_train_form = evaluate_split(model, ds.test, ds, d)[0]
                runs[b][kind].append(
                    {
                        "seed": seed,
                        "train_seconds": res.train_seconds,
                        "test_accuracy": acc,
                        "test_accuracy_unfolded": acc_train_form,
                    }
                )
                print(f"{b} {kind} seed {seed}: {acc:.4f} ({res.train_seconds:.2f} s)", flush=True)


def report(
    args: argparse.Namespace,
    bases: list[str],
    pairs: dict[str, dict[str, Any]],
    runs: dict[str, dict[str, list[dict[str, float]]]],
    lat: dict[str, dict[str, dict[str, list[float]]]],
    space: FastCnnSpace,
    dev: str,
    interrupted: bool,
) -> None:
    rows = []
    for b in bases:
        row: dict[str, Any] = {"base": b}
        for kind in pairs[b]:
            done = runs[b][kind]
            row[kind] = {
                "describe": describe(space, pairs[b][kind], kind),
                "test_accuracy": mean_std([r["test_accuracy"] for r in done]),
                "train_seconds": mean_std([r["train_seconds"] for r in done]),
                "runs": done,
                **{k: statistics.median(v) for k, v in lat[b][kind].items() if v},
            }
        rows.append(row)
        p = row.get("plain", {}).get("test_accuracy")
        q = row.get("branched", {}).get("test_accuracy")
        if p and q:
            print(
                f"{b}: plain {100 * p['mean']:.2f} ± {100 * p['std']:.2f} -> branched "
                f"{100 * q['mean']:.2f} ± {100 * q['std']:.2f} (n {p['n']}/{q['n']})",
                flush=True,
            )
        elif p:
            print(f"{b}: {100 * p['mean']:.2f} ± {100 * p['std']:.2f} (n {p['n']})", flush=True)
    out = {
        "dataset": "CIFAR-10 (JPEG)",
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "epochs": args.epochs,
        "recipe": "fast (final: train + val)",
        "args": vars(args),
        "interrupted": interrupted,
        "nets": rows,
    }
    save("fastcnn_rep" + (f"-{args.tag}" if args.tag else ""), out)


if __name__ == "__main__":
    main()
