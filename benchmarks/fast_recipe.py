"""The fast GPU recipe, measured: its speed on airbench94, what each trick buys, and candidate
throughput against the generic (sgdr) recipe on the same archs. CIFAR-10 (JPEG), one GPU.

    python benchmarks/fast_recipe.py --data .data/cifar10-jpeg.tar.gz [--parts speed,ablate,throughput]

- speed: the airbench94 arch trained by hwnas's fast recipe on all 50 000 training images
  (train + val, as airbench does), ``--runs`` times after one warm-up run; training seconds
  (synchronised, no evaluation, no compile), test accuracy single view and with 6-view TTA.
- ablate: the same with one trick switched off at a time (``--ablate-runs`` each).
- throughput: ``--archs`` archs drawn from the default fastcnn space (seed 0), each trained at
  the search's fidelity (40 000 images, ``--epochs``) by the fast recipe and by the sgdr recipe
  of configs/cifar10.yaml; candidates per minute (wall: build, train, validate) and mean val
  accuracy.
- compile: torch.compile (default mode) on airbench94: the first training with its compile time
  and the next, against eager.

Prints and saves JSON (benchmarks/results/DATE-fast_recipe[-TAG].json).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from hwnas.data import load_dataset  # noqa: E402
from hwnas.data.config import DataConfig  # noqa: E402
from hwnas.estimate.config import TrainEstimatorConfig  # noqa: E402
from hwnas.estimate.fast import evaluate_split, train_fast  # noqa: E402
from hwnas.estimate.train import train  # noqa: E402
from hwnas.space.fastcnn import REFERENCE_NETS, FastCnnSpace  # noqa: E402

ABLATIONS: dict[str, dict[str, Any]] = {
    "no_whiten": {"whiten": False},
    "no_identity_init": {"identity_init": False},
    "no_freeze_bn_scale": {"freeze_bn_scale": False},
    "no_lookahead": {"lookahead": False},
    "no_label_smoothing": {"label_smoothing": 0.0},
    "random_flip": {"flip": "random"},
    "no_translate": {"translate": 0},
    "fp32": {"dtype": "fp32"},
    "no_channels_last": {"channels_last": False},
    "batch_512": {"batch_size": 512},
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_once(
    space: FastCnnSpace,
    arch: dict[str, Any],
    ds: Any,
    cfg: TrainEstimatorConfig,
    seed: int,
    dev: str,
    on_val: bool,
    test: bool,
    compile_model: bool = False,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = space.build(arch, ds.input_shape, ds.num_classes)
    net = torch.compile(model) if compile_model else model
    _sync()
    t0 = time.perf_counter()
    res = train_fast(net, ds, cfg, seed=seed, device=dev, train_on_val=on_val)  # type: ignore[arg-type]
    _sync()
    out = {"train_seconds": res.train_seconds, "wall_seconds": time.perf_counter() - t0}
    if test:
        d = torch.device(dev)
        out["test_accuracy"] = evaluate_split(model, ds.test, ds, d)[0]
        out["test_accuracy_tta6"] = evaluate_split(model, ds.test, ds, d, views=6)[0]
    else:
        out["val_accuracy"] = res.accuracy
    return out


def _stats(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return {}
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--parts", default="speed,ablate,throughput")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ablate-runs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10, help="final (speed/ablate) epochs")
    ap.add_argument("--search-epochs", type=int, default=8, help="throughput: candidate epochs")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--subset", type=float, default=1.0)
    ap.add_argument("--deadline", type=float, default=540.0, help="seconds; stop starting parts")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    start = time.monotonic()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    ds = load_dataset(
        DataConfig(name="cifar10", path=args.data, subset=args.subset, augment=True), seed=0
    )
    load_s = time.perf_counter() - t0
    space = FastCnnSpace()
    ref = REFERENCE_NETS["airbench94"]
    base = TrainEstimatorConfig(recipe="fast", epochs=args.epochs)
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "torch": torch.__version__,
        "dataset": "CIFAR-10 (JPEG)",
        "data_load_seconds": round(load_s, 1),
        "fast_recipe": base.fast.model_dump(),
        "epochs": args.epochs,
    }
    parts = args.parts.split(",")

    def late() -> bool:
        return time.monotonic() - start > args.deadline

    if "speed" in parts:
        run_once(space, ref, ds, base, 99, dev, True, False)  # warm-up: cuDNN plans, allocator
        rows = [run_once(space, ref, ds, base, s, dev, True, True) for s in range(args.runs)]
        out["speed"] = {
            "arch": "airbench94",
            "train_on": "train+val (50 000 images)",
            "runs": rows,
            "train_seconds": _stats(rows, "train_seconds"),
            "test_accuracy": _stats(rows, "test_accuracy"),
            "test_accuracy_tta6": _stats(rows, "test_accuracy_tta6"),
        }
        print("speed", out["speed"]["train_seconds"], out["speed"]["test_accuracy"], flush=True)
    if "ablate" in parts:
        abl: dict[str, Any] = {}
        for name, change in ABLATIONS.items():
            if late():
                abl["stopped"] = "deadline"
                break
            cfg = base.model_copy(update={"fast": base.fast.model_copy(update=change)})
            rows = [
                run_once(space, ref, ds, cfg, s, dev, True, True) for s in range(args.ablate_runs)
            ]
            abl[name] = {
                "train_seconds": _stats(rows, "train_seconds"),
                "test_accuracy": _stats(rows, "test_accuracy"),
            }
            print(name, abl[name], flush=True)
        out["ablate"] = abl
    if "throughput" in parts and not late():
        rng = random.Random(0)
        archs = [space.sample(rng) for _ in range(args.archs)]
        fast_cfg = TrainEstimatorConfig(recipe="fast", epochs=args.search_epochs)
        sgdr_cfg = TrainEstimatorConfig(
            recipe="sgdr", epochs=args.search_epochs, lr=0.2, label_smoothing=0.1
        )
        tp: dict[str, Any] = {"archs": [space.describe(a) for a in archs]}
        for name in ("fast", "sgdr"):
            rows = []
            t_all = time.perf_counter()
            for i, arch in enumerate(archs):
                if late():
                    break
                torch.manual_seed(i)
                tt = time.perf_counter()
                model = space.build(arch, ds.input_shape, ds.num_classes)
                if name == "fast":
                    res = train_fast(model, ds, fast_cfg, seed=i, device=dev)
                else:
                    res = train(
                        model, ds, sgdr_cfg, seed=i, device=dev, batch_size=256, augment=True
                    )
                _sync()
                rows.append(
                    {
                        "val_accuracy": res.accuracy,
                        "train_seconds": res.train_seconds,
                        "wall_seconds": time.perf_counter() - tt,
                    }
                )
            wall = time.perf_counter() - t_all
            tp[name] = {
                "n": len(rows),
                "candidates_per_minute": 60 * len(rows) / wall if rows else None,
                "val_accuracy": _stats(rows, "val_accuracy"),
                "wall_seconds": _stats(rows, "wall_seconds"),
                "per_arch": rows,
            }
            print(name, tp[name]["candidates_per_minute"], tp[name]["val_accuracy"], flush=True)
        out["throughput"] = tp
    if "compile" in parts and not late() and dev == "cuda":
        first = run_once(space, ref, ds, base, 0, dev, True, True, compile_model=True)
        second = run_once(space, ref, ds, base, 1, dev, True, True, compile_model=True)
        out["compile"] = {"first_with_compile": first, "second": second}
        print("compile", out["compile"], flush=True)
    out["total_seconds"] = round(time.monotonic() - start, 1)
    save("fast_recipe" + (f"-{args.tag}" if args.tag else ""), out)


if __name__ == "__main__":
    main()
