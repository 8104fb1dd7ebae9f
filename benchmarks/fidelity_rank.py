"""Does a longer search fidelity rank the fast-CNN nets as their final training does?

    python benchmarks/fidelity_rank.py --dir runs/c10fast --data .data/cifar10-jpeg.tar.gz \
        [--epochs 8,12] [--deadline 150] [--tag seed2]

For every net of a finished ``configs/cifar10_fast.yaml`` study that has final trainings (the
front members trained by the final stage or ``hwnas train``, and the reference nets), train it
again as a search candidate (the study's estimator: training split only, validation accuracy)
at each of ``--epochs``, one net after another with the fidelities side by side, until
``--deadline`` seconds. Reports, per fidelity, Spearman's rho between the search-style
validation accuracy and the mean final test accuracy, and which nets each fidelity would rank
above each reference net — the question behind "the 8-epoch search under-rates large nets".
CIFAR-10 (JPEG); one GPU (the device tool) or, slowly, a CPU with ``--subset``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from hwnas.data import load_dataset  # noqa: E402
from hwnas.estimate.fast import train_fast  # noqa: E402
from hwnas.experiment.study import Study  # noqa: E402
from hwnas.space import make_space  # noqa: E402
from hwnas.space.fastcnn import REFERENCE_NETS  # noqa: E402


def spearman(a: list[float], b: list[float]) -> float | None:
    return float(spearmanr(a, b).statistic) if len(a) >= 3 else None


def above_references(rows: list[dict[str, Any]], key: str) -> dict[str, list[str]]:
    """Per reference net among ``rows``: the other nets whose ``key`` is at least its."""
    refs = {r["net"]: r[key] for r in rows if r["net"] in REFERENCE_NETS}
    return {
        ref: [r["net"] for r in rows if r["net"] not in REFERENCE_NETS and r[key] >= mark]
        for ref, mark in refs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="a finished cifar10_fast study")
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", default="8,12", help="search fidelities to compare")
    ap.add_argument("--subset", type=float, default=None, help="data share (a CPU smoke run)")
    ap.add_argument("--deadline", type=float, default=150.0, help="seconds; stop starting nets")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    start = time.monotonic()
    fidelities = [int(e) for e in args.epochs.split(",")]
    study = Study(args.dir)
    cfg = study.config
    update: dict[str, Any] = {"path": args.data}
    if args.subset is not None:
        update["subset"] = args.subset
    data_cfg = cfg.data.model_copy(update=update)
    ds = load_dataset(data_cfg, seed=cfg.seed)  # the search's split: same config, same seed
    space = make_space(cfg.space)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    finals: dict[str, list[float]] = {}
    archs: dict[str, Any] = {}
    for t in study.trials():
        if t.stage == "final" and t.status == "complete" and "test_accuracy" in t.metrics:
            finals.setdefault(t.arch_hash, []).append(t.metrics["test_accuracy"])
            archs[t.arch_hash] = t.arch
    names = {space.arch_hash(a): n for n, a in REFERENCE_NETS.items()}
    rows: list[dict[str, Any]] = []
    for h in sorted(archs, key=lambda h: (h not in names, -statistics.fmean(finals[h]))):
        if time.monotonic() - start > args.deadline:
            break
        row: dict[str, Any] = {
            "net": names.get(h, space.describe(archs[h])),
            "final_test_mean": statistics.fmean(finals[h]),
            "final_runs": len(finals[h]),
        }
        for e in fidelities:
            model = space.build(archs[h], ds.input_shape, ds.num_classes)
            est = cfg.estimator.model_copy(update={"epochs": e})
            res = train_fast(model, ds, est, seed=cfg.seed, device=dev)  # type: ignore[arg-type]
            row[f"val_e{e}"] = res.accuracy
            row[f"train_seconds_e{e}"] = round(res.train_seconds, 2)
        rows.append(row)
        print(row, flush=True)
    per_fidelity: dict[str, Any] = {}
    final = [r["final_test_mean"] for r in rows]
    for e in fidelities:
        per_fidelity[f"e{e}"] = {
            "spearman_vs_final_test": spearman([r[f"val_e{e}"] for r in rows], final),
            "ranked_above": above_references(rows, f"val_e{e}"),
        }
    study.close()
    save(
        "fidelity_rank" + (f"-{args.tag}" if args.tag else ""),
        {
            "dataset": "CIFAR-10 (JPEG)",
            "study": str(args.dir),
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "fidelities": fidelities,
            "nets": rows,
            "per_fidelity": per_fidelity,
            "above_each_reference_by_final_test": above_references(rows, "final_test_mean"),
        },
    )


if __name__ == "__main__":
    main()
