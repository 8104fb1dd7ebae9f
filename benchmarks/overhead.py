"""hwnas's own overhead per trial, and how fast the CLI answers on a big study.

Overhead per trial = wall time of a trial minus training and cost measurement
(``train_seconds``, ``cost_seconds``), plus the gap before the next trial starts (ask, store,
pareto.json). Read from the study of a finished search (``--dir``, default: run a 12-trial one).
CLI: ``hwnas --help`` and ``hwnas show`` / ``show --json`` on a synthetic 1000-trial study,
median of 7 runs each, in fresh processes (import time included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import hwnas, save

from hwnas.experiment.config import load_config
from hwnas.experiment.store import Store, Trial


def per_trial_overhead(out: str) -> dict[str, float]:
    trials = [
        t for t in json.loads(hwnas("show", out, "--json").stdout) if t["status"] == "complete"
    ]
    inside = [
        t["finished_at"]
        - t["started_at"]
        - t["metrics"].get("train_seconds", 0.0)  # a table trains nothing
        - t["metrics"].get("cost_seconds", 0.0)
        for t in trials
    ]
    gaps = [b["started_at"] - a["finished_at"] for a, b in zip(trials, trials[1:], strict=False)]
    total = [i + g for i, g in zip(inside, gaps, strict=False)]
    return {
        "trials": len(trials),
        "inside_trial_ms_median": round(1000 * statistics.median(inside), 1),
        "between_trials_ms_median": round(1000 * statistics.median(gaps), 1),
        "overhead_ms_median": round(1000 * statistics.median(total), 1),
        "overhead_ms_max": round(1000 * max(total), 1),
    }


def synthetic_study(path: Path, n: int = 1000) -> None:
    cfg = load_config()
    with Store(path / "study.db") as st:
        st.set_meta("config", cfg.to_json_dict())
        for i in range(n):
            t = Trial(
                id=i,
                arch={"stages": [{"depth": 1, "width": 8, "ops": ["k3_e1"] * 3}] * 3},
                arch_hash=f"{i:016x}",
                status="running",
                seed=i,
                describe=f"synthetic {i}",
            )
            st.start_trial(t)
            t.status = "complete"
            t.metrics = {
                "accuracy": 0.9 + (i % 97) / 1000,
                "latency_ms": 0.02 + (i % 89) / 1000,
                "params": 1000 + i,
                "macs": 10000 + i,
                "peak_memory_bytes": 4096,
                "model_bytes": 4000,
                "model_bytes_int8": 1000,
                "train_seconds": 1.0,
            }
            t.curve = [
                {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 / e, "val_accuracy": 0.9}
                for e in range(1, 7)
            ]
            st.finish_trial(t)


def cli_seconds(*args: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="a finished search to read (default: run one)")
    ap.add_argument("--budget", type=int, default=12, help="trials of the search it runs")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs per trial")
    ap.add_argument(
        "--table", help="also time a tabular search (NAS-Bench-201 table) of --tabular-budget"
    )
    ap.add_argument("--tabular-budget", type=int, default=300)
    ap.add_argument("--tag", default="", help="suffix of the results file (e.g. old / new)")
    args = ap.parse_args()
    out = args.dir
    if out is None:
        out = tempfile.mkdtemp() + "/run"
        hwnas(
            "search",
            "--out",
            out,
            "--budget",
            str(args.budget),
            "-q",
            "--set",
            f"estimator.epochs={args.epochs}",
        )
    tabular = None
    if args.table:
        tab = tempfile.mkdtemp() + "/nb201"
        hwnas(
            "search",
            "--config",
            "configs/nb201_pixel3.yaml",
            "--out",
            tab,
            "-q",
            "--budget",
            str(args.tabular_budget),
            "--set",
            f"estimator.path={args.table}",
        )
        tabular = per_trial_overhead(tab)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_study(Path(tmp))
        cli = {
            "help_s": cli_seconds("--help"),
            "show_1000_s": cli_seconds("show", tmp),
            "show_json_1000_s": cli_seconds("show", tmp, "--json"),
        }
    figures = {"study": out, "per_trial": per_trial_overhead(out), "cli_median_seconds": cli}
    if tabular is not None:
        figures["per_tabular_trial"] = tabular
    save("overhead" + (f"-{args.tag}" if args.tag else ""), figures)


if __name__ == "__main__":
    main()
