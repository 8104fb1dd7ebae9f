"""The seed's finding on CIFAR-10 (JPEG): latency-aware against MAC-aware differentiable search.

Three studies of ``configs/fbnet_cifar10.yaml`` (FBNet space, one supernet trained once):
``latency`` (theta against the CPU latency table, three alphas), ``macs`` (the same alphas
against MACs, reusing the latency study's trained supernet) and ``targets`` (latency targets
spread over the space's range, same supernet, with the fix-up). Every derived net is trained
stand-alone by the fast recipe and measured on the CPU target (ONNX Runtime, 1 thread,
batch 1); here each is measured ``--repeats`` more times, so every latency is the median of
those readings and the noise floor (the median relative spread of a net's readings) is
reported beside the share of targets met within +-10 %.

``--paired``: the comparison by targets instead of alphas, which cannot collapse to an
all-skip net: a ``ref`` study (alpha 0, accuracy alone) trains the supernet and derives the
most accurate net; then ``targets`` (latency targets) and ``mac-targets`` (MAC targets) at the
same fractions of each metric's own range reuse its weights, and the two families of nets are
compared on measured latency (hypervolume, which MAC-aware nets a latency-aware one
dominates) beside the share of latency targets met.
Usage: python benchmarks/oneshot_fbnet.py --data PATH [--out DIR] [--tag T] [--repeats 5]
[--set K=V ...] [--skip-targets]
[--paired [--fractions 0.15,0.4,0.65] [--workers N] [--parallel] [--ref-epochs E]
[--latency-only]]  (--latency-only: the latency targets alone, the MAC study left out)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import save, timed_search

from hwnas.core.pareto import as_minimisation, hypervolume

NAMES = {
    "latency": "latency-aware",
    "macs": "MAC-aware",
    "targets": "latency targets",
    "mac-targets": "MAC targets",
    "ref": "accuracy alone",
}
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "fbnet_cifar10.yaml")


def search(out: Path, data: str, sets: list[str]) -> float:
    return timed_search(CONFIG, out, data, sets)


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


def table_range(out: Path) -> tuple[float, float]:
    """The cheapest and dearest net of the latency table the study ``out`` searched with."""
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        costs = study.store.get_meta_json("oneshot")["costs"]
    finally:
        study.close()
    fixed, table = costs["fixed"], costs["table"]
    return fixed + sum(min(r) for r in table), fixed + sum(max(r) for r in table)


def mac_range(out: Path) -> tuple[float, float]:
    """The space's MAC range, from the same per-choice counts a ``macs`` search weighs."""
    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.study import Study
    from hwnas.oneshot.costs import choice_costs

    study = Study(out, readonly=True)
    try:
        ev = build_evaluator(study.config)
    finally:
        study.close()
    try:
        assert ev.input_shape is not None and ev.num_classes is not None
        c = choice_costs(ev.space, "macs", ev.input_shape, ev.num_classes)
    finally:
        ev.close()
    return c.cheapest(), c.dearest()


def compare(rows: dict[str, list[dict[str, Any]]], a: str, b: str) -> dict[str, Any]:
    """Hypervolume of families ``a`` and ``b`` on accuracy and measured latency (one box
    spanned by both), and which nets of ``b`` a net of ``a`` dominates."""
    both = rows[a] + rows[b]
    accs = [r["accuracy"] for r in both]
    lats = [r["latency_ms"] for r in both]
    lo, hi = [-max(accs), min(lats)], [-min(accs) + 1e-9, max(lats) + 1e-9]
    dominated = []
    for r in rows[b]:
        better = [
            q["trial"]
            for q in rows[a]
            if q["accuracy"] >= r["accuracy"] and q["latency_ms"] < r["latency_ms"]
        ]
        dominated.append({f"{b}_trial": r["trial"], f"dominated_by_{a}_trials": better})
    return {"hypervolume": {k: hv(rows[k], lo, hi) for k in (a, b)}, "dominated": dominated}


def wait_derived(out: Path, running: Any, poll: float = 2.0) -> None:
    """Until the study ``out`` has derived its nets (its log says so) or its search ended."""
    log = out / "hwnas.log"
    while not running.done():
        if log.exists() and "distinct nets derived" in log.read_text(errors="replace"):
            return
        time.sleep(poll)


def paired(a: argparse.Namespace, out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``ref`` (alpha 0), then latency and MAC targets at the same fractions of their ranges."""
    fr = [float(f) for f in a.fractions.split(",")]
    wall: dict[str, float] = {}
    ref, tgt, mtg = out / "ref", out / "targets", out / "mac-targets"
    weights = f"supernet.weights={ref / 'supernet' / 'warmup.pt'}"
    ref_sets = [*a.set, "strategy.alphas=[0.0]", "budget.trials=1"]
    if a.ref_epochs is not None:  # its net is context; the supernet is what the others need
        ref_sets.append(f"estimator.epochs={a.ref_epochs}")
    wall["ref"] = search(ref, a.data, ref_sets)
    print(f"ref study: {wall['ref']:.0f} s", flush=True)
    lo, hi = table_range(ref)
    mlo, mhi = mac_range(ref)
    lat_t = [round(lo + f * (hi - lo), 3) for f in fr]
    mac_t = [round(mlo + f * (mhi - mlo)) for f in fr]
    common = [*a.set, weights, "strategy.alphas=[]", f"budget.trials={len(fr)}"]
    if a.workers > 1:  # the derived nets of a study train side by side on the one GPU
        common += ["executor.name=process", f"executor.workers={a.workers}"]
    studies = {
        "targets": (tgt, [*common, f"strategy.cost_targets={lat_t}"]),
        "mac-targets": (
            mtg,
            [*common, "strategy.cost_metric=macs", f"strategy.cost_targets={mac_t}"],
        ),
    }
    # Both studies only read the ref study's weights: they run at once when asked to, since
    # theta steps and small stand-alone nets each leave most of the GPU idle. The MAC study
    # starts once the latency study has derived its nets: deriving measures each net on the
    # CPU target (the measured fix-up), and readings taken while the other study's workers
    # start up read slow (on one H100 box, 2026-12-07, four workers started a second before
    # the derive and the nets asked for 0.311 / 0.594 ms measured 0.236 / 0.423 ms trained).
    with ThreadPoolExecutor(2 if a.parallel else 1) as pool:
        futures = {"targets": pool.submit(search, tgt, a.data, studies["targets"][1])}
        if a.parallel:
            wait_derived(tgt, futures["targets"])
        if not a.latency_only:
            futures["mac-targets"] = pool.submit(search, mtg, a.data, studies["mac-targets"][1])
        for k, fut in futures.items():
            wall[k] = fut.result()
            print(f"{k} study: {wall[k]:.0f} s", flush=True)
    rows = {k: derived(out / k, a.repeats) for k in ("ref", *futures)}
    met = [abs(r["latency_ms"] / r["setting"]["cost_target"] - 1) <= 0.10 for r in rows["targets"]]
    mac_met = [
        abs(r["macs"] / r["setting"]["cost_target"] - 1) <= 0.10
        for r in rows.get("mac-targets", [])
    ]
    summary = {
        "fractions": fr,
        "latency_targets_ms": lat_t,
        "latency_range_ms": [lo, hi],
        "mac_targets": mac_t,
        "mac_range": [mlo, mhi],
        "latency_targets_met_within_10pct": sum(met),
        "share_met": sum(met) / max(len(met), 1),
        "mac_targets_met_within_10pct": sum(mac_met),
        "noise_floor_median_spread": statistics.median(
            r["spread"] for rs in rows.values() for r in rs
        ),
        **(compare(rows, "targets", "mac-targets") if "mac-targets" in rows else {}),
        "fix_ups": [r["fixed_up"] for r in rows["targets"]],
        "wall_s": wall,
        "workers": a.workers,
        "parallel_target_studies": a.parallel,
        "ref_net_epochs": a.ref_epochs,  # None: the config's, as the targets' nets
    }
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="", help="the CIFAR-10 (JPEG) archive")
    ap.add_argument("--out", default="/tmp/oneshot-fbnet")
    ap.add_argument("--tag", default="")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--skip-targets", action="store_true")
    ap.add_argument("--targets", default="", help="comma-separated ms; default: spread")
    ap.add_argument("--paired", action="store_true", help="latency vs MAC targets")
    ap.add_argument("--fractions", default="0.15,0.4,0.65", help="--paired: of each range")
    ap.add_argument("--workers", type=int, default=1, help="--paired: nets trained at once")
    ap.add_argument("--parallel", action="store_true", help="--paired: both target studies at once")
    ap.add_argument("--latency-only", action="store_true", help="--paired: no MAC-target study")
    ap.add_argument(
        "--ref-epochs",
        type=int,
        default=None,
        help="--paired: train the accuracy-alone net this long (it is context, not compared)",
    )
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.paired:
        rows, summary = paired(a, out)
        report(rows, summary, out, a, "paired")
        return
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
        lo, hi = table_range(lat_dir)
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
    summary.update(compare(rows, "latency", "macs"))
    summary["wall_s"] = wall
    report(rows, summary, out, a, "")


def report(
    rows: dict[str, list[dict[str, Any]]],
    summary: dict[str, Any],
    out: Path,
    a: argparse.Namespace,
    kind: str,
) -> None:
    """Print the nets and the summary, plot them, save the figures."""
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
                name=NAMES.get(k, k),
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
        "oneshot_fbnet" + (f"-{kind}" if kind else "") + (f"-{a.tag}" if a.tag else ""),
        {"config": CONFIG, "sets": a.set, "repeats": a.repeats, "rows": rows, "summary": summary},
    )


if __name__ == "__main__":
    main()
