"""The seed's finding on CIFAR-10 (JPEG): latency-aware against MAC-aware differentiable search.

Three studies of ``configs/fbnet_cifar10.yaml`` (FBNet space, one supernet trained once):
``latency`` (theta against the CPU latency table, three alphas), ``macs`` (the same alphas
against MACs, reusing the latency study's trained supernet) and ``targets`` (latency targets
spread over the space's range, same supernet, with the fix-up). Every derived net is trained
stand-alone by the fast recipe and measured on the CPU target (ONNX Runtime, 1 thread,
batch 1); here each is measured ``--repeats`` more times, so every latency is the median of
those readings and the noise floor (the median relative spread of a net's readings) is
reported beside the share of targets met within +-10 %.
Usage: python benchmarks/oneshot_fbnet.py --data PATH [--out DIR] [--tag T] [--repeats 5]
[--set K=V ...] [--skip-targets]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import save

from hwnas.core.pareto import as_minimisation, hypervolume

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "fbnet_cifar10.yaml")


def search(out: Path, data: str, sets: list[str]) -> float:
    args = [sys.executable, "-m", "hwnas.cli", "search", "--config", CONFIG, "--data", data]
    args += ["--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"search {out} failed:\n{r.stderr[-3000:]}")
    return time.monotonic() - t0


def derived(out: Path, repeats: int) -> list[dict[str, Any]]:
    """Each derived trial with its costs re-measured ``repeats`` times on the study's target."""
    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        trials = [
            t for t in study.store.trials() if t.stage == "derived" and t.status == "complete"
        ]
        cfg = study.config
    finally:
        study.close()
    ev = build_evaluator(cfg)
    rows = []
    try:
        for t in trials:
            lat = [t.metrics["latency_ms"]]
            for i in range(repeats):
                lat.append(ev.measure(t.arch, t.seed + i)["latency_ms"])
            med = statistics.median(lat)
            rows.append(
                {
                    "trial": t.id,
                    "setting": {k: t.info.get(k) for k in ("alpha", "beta", "cost_target", "loss")},
                    "cost_metric": t.info.get("cost_metric"),
                    "accuracy": t.metrics.get("accuracy"),
                    "test_accuracy": t.metrics.get("test_accuracy"),
                    "latency_ms": med,
                    "latency_readings": lat,
                    "spread": (max(lat) - min(lat)) / med,
                    "macs": t.metrics.get("macs"),
                    "params": t.metrics.get("params"),
                    "predicted_cost": t.info.get("predicted_cost"),
                    "fixed_up": t.info.get("fixed_up"),
                    "describe": t.describe,
                }
            )
    finally:
        ev.close()
    return rows


def hv(rows: list[dict[str, Any]], lo: list[float], hi: list[float]) -> float:
    obj = [("accuracy", "max"), ("latency_ms", "min")]
    mins = [m for r in rows if (m := as_minimisation(r, obj)) is not None]
    if not mins:
        return 0.0
    norm = [[(v - a) / (b - a) for v, a, b in zip(p, lo, hi, strict=True)] for p in mins]
    return hypervolume(norm, [1.0, 1.0])  # dominated points add nothing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="/tmp/oneshot-fbnet")
    ap.add_argument("--tag", default="")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--skip-targets", action="store_true")
    ap.add_argument("--targets", default="", help="comma-separated ms; default: spread")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    wall: dict[str, float] = {}
    lat_dir, mac_dir, tgt_dir = out / "latency", out / "macs", out / "targets"
    weights = f"supernet.weights={lat_dir / 'supernet' / 'warmup.pt'}"
    wall["latency"] = search(lat_dir, a.data, a.set)
    print(f"latency study: {wall['latency']:.0f} s", flush=True)
    wall["macs"] = search(mac_dir, a.data, [*a.set, weights, "strategy.cost_metric=macs"])
    print(f"macs study: {wall['macs']:.0f} s", flush=True)
    rows = {"latency": derived(lat_dir, a.repeats), "macs": derived(mac_dir, a.repeats)}
    summary: dict[str, Any] = {}
    if not a.skip_targets:
        from hwnas.experiment.study import Study

        study = Study(lat_dir, readonly=True)
        try:
            costs = study.store.get_meta_json("oneshot")["costs"]
        finally:
            study.close()
        fixed, table = costs["fixed"], costs["table"]
        lo = fixed + sum(min(r) for r in table)
        hi = fixed + sum(max(r) for r in table)
        targets = (
            [float(t) for t in a.targets.split(",")]
            if a.targets
            else [round(lo + f * (hi - lo), 3) for f in (0.15, 0.35, 0.55, 0.75)]
        )
        sets = [*a.set, weights, "strategy.alphas=[]", f"strategy.cost_targets={targets}"]
        sets.append(f"budget.trials={len(targets)}")
        wall["targets"] = search(tgt_dir, a.data, sets)
        rows["targets"] = derived(tgt_dir, a.repeats)
        met = [
            abs(r["latency_ms"] / r["setting"]["cost_target"] - 1) <= 0.10 for r in rows["targets"]
        ]
        summary["targets"] = {
            "targets_ms": targets,
            "table_range_ms": [lo, hi],
            "met_within_10pct": sum(met),
            "share_met": sum(met) / max(len(met), 1),
            "noise_floor_median_spread": statistics.median(
                r["spread"] for rs in rows.values() for r in rs
            ),
        }
    both = rows["latency"] + rows["macs"]
    accs = [r["accuracy"] for r in both]
    lats = [r["latency_ms"] for r in both]
    lo_b, hi_b = [-max(accs), min(lats)], [-min(accs) + 1e-9, max(lats) + 1e-9]
    summary["hypervolume"] = {k: hv(rows[k], lo_b, hi_b) for k in ("latency", "macs")}
    dominated = []
    for r in rows["macs"]:
        better = [
            q["trial"]
            for q in rows["latency"]
            if q["accuracy"] >= r["accuracy"] and q["latency_ms"] < r["latency_ms"]
        ]
        dominated.append({"macs_trial": r["trial"], "dominated_by_latency_trials": better})
    summary["macs_nets_dominated_by_latency_nets"] = dominated
    summary["wall_s"] = wall
    for k, rs in rows.items():
        print(f"-- {k}")
        for r in rs:
            print(
                f"  #{r['trial']} {json.dumps(r['setting'])}: acc {r['accuracy']:.4f} "
                f"lat {r['latency_ms']:.3f} ms (spread {r['spread']:.1%}) "
                f"MACs {r['macs'] / 1e6:.2f} M predicted {r['predicted_cost']:.4g}"
            )
    print(json.dumps(summary, indent=1))
    try:
        import plotly.graph_objects as go

        fig = go.Figure()
        for k, rs in rows.items():
            fig.add_scatter(
                x=[r["latency_ms"] for r in rs],
                y=[r["accuracy"] for r in rs],
                mode="markers+text",
                name=f"{k}-aware" if k != "targets" else "latency targets",
                text=[f"MACs {r['macs'] / 1e6:.1f}M" for r in rs],
                textposition="top center",
            )
        fig.update_layout(
            title="FBNet space, CIFAR-10 (JPEG): derived nets, CPU ORT 1 thread, batch 1",
            xaxis_title="measured latency (ms)",
            yaxis_title="validation accuracy",
        )
        fig.write_html(out / "oneshot_fbnet.html", include_plotlyjs="cdn")
    except ImportError:
        pass
    save(
        "oneshot_fbnet" + (f"-{a.tag}" if a.tag else ""),
        {"config": CONFIG, "sets": a.set, "repeats": a.repeats, "rows": rows, "summary": summary},
    )


if __name__ == "__main__":
    main()
