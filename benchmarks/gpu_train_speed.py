"""Seconds per training epoch of one net under each trainer setting (eager, torch.compile modes,
batch size), side by side in one process on one GPU.

Why: NASH's long final training ran the GPU at 37-50 % SM utilisation (one small net, launch
bound), so its epochs cost more than they need to. This prints what each setting buys on the
net NASH ended with on CIFAR-10 (JPEG), before a setting is made the shipped one.

    python benchmarks/gpu_train_speed.py --data .data/cifar10-jpeg.tar.gz \
        --arch benchmarks/archs/nash_final.json --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from hwnas.data import load_dataset  # noqa: E402
from hwnas.data.config import DataConfig  # noqa: E402
from hwnas.estimate.config import TrainEstimatorConfig  # noqa: E402
from hwnas.estimate.train import train  # noqa: E402
from hwnas.space.config import GraphSpaceConfig  # noqa: E402
from hwnas.space.graph import GraphSpace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", required=True, help="JSON file with a graph-space arch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--subset", type=float, default=1.0, help="share of the training data")
    ap.add_argument(
        "--variants",
        default="eager:256,default:256,reduce-overhead:256,eager:512,default:512",
        help="comma list of MODE:BATCH (MODE eager or a torch.compile mode)",
    )
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ds = load_dataset(
        DataConfig(name="cifar10", path=args.data, augment=True, subset=args.subset), seed=0
    )
    arch = json.loads(Path(args.arch).read_text())
    space = GraphSpace(GraphSpaceConfig(name="graph", channels=[32, 64, 128], max_channels=512))
    rows = []
    for variant in args.variants.split(","):
        mode, bs = variant.split(":")
        torch.manual_seed(0)
        model = space.build(arch, (3, 32, 32), 10)
        cfg = TrainEstimatorConfig(
            epochs=args.epochs,
            lr=0.1,
            compile_epochs=0 if mode == "eager" else 1,
            **({} if mode == "eager" else {"compile_mode": mode}),
        )
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = train(model, ds, cfg, seed=0, device=dev, batch_size=int(bs), augment=True)
        wall = time.perf_counter() - t0
        # the curve has no per-epoch times: time one more epoch set on the warm net
        cfg1 = cfg.model_copy(update={"epochs": 1})
        per = []
        for _ in range(2):
            r1 = train(model, ds, cfg1, seed=1, device=dev, batch_size=int(bs), augment=True)
            per.append(r1.train_seconds)
        row = {
            "mode": mode,
            "batch": int(bs),
            "first_run_seconds": round(wall, 2),
            "epochs": args.epochs,
            "warm_epoch_seconds": round(statistics.median(per), 3),
            "val_accuracy_after": res.accuracy,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["mode"] == "eager" and r["batch"] == 256), rows[0])
    for r in rows:
        r["speedup_vs_eager_256"] = round(base["warm_epoch_seconds"] / r["warm_epoch_seconds"], 2)
    save(
        "gpu_train_speed",
        {
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "torch": torch.__version__,
            "dataset": "CIFAR-10 (JPEG), 40000 train / 10000 val",
            "arch_file": args.arch,
            "params": sum(p.numel() for p in space.build(arch, (3, 32, 32), 10).parameters()),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
