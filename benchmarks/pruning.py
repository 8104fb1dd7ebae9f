"""Early stopping on the default digits search: the median pruner and asynchronous successive
halving against no early stopping, at equal budget (trials), over paired seeds.

Each variant x seed is one `hwnas search --quiet` subprocess (`--jobs N` runs N at once; a run
found finished is not run again, an interrupted one resumes with the same command). Per seed,
hypervolume is computed in one box: objectives (accuracy, latency_ms) normalised by the best
and worst values over every variant's feasible trials of that seed, reference point (1, 1), so
the variants of a seed are comparable (with `--against`, the boxes of a stored result: its
runs join the comparison, named `variant@date`, and its first variant is the baseline; the
comparison is then across runs). Per run: hypervolume, best validation accuracy, training
epochs (sum over trials of the epochs trained), trials stopped by the pruner, promotions, wall
time. Paired summary against `baseline`: mean and standard error of the hypervolume, of the
paired difference, best accuracy, and the epochs ratio. The issue's criterion: mean
hypervolume (or best accuracy) >= the baseline's minus one standard error of the paired
difference, with <= 60 % of its training epochs. At equal training epochs (give a
multi-fidelity variant more trials with `--budget-for VARIANT=N`): each run is also cut where
its epochs reach 1/3, 60 % and 100 % of the baseline's on that seed (trials in id order, one
worker) and its hypervolume there is compared with the baseline's whole run.
Usage: python benchmarks/pruning.py [--seeds 5] [--budget 60] [--jobs N] [--threads T]
[--variants baseline,median,median-w2,curve,halving,halving-warm,halving-warm-resume,hyperband,bohb,...] [--set K=V ...] [--out DIR] [--fresh] [--stop-after MIN]
[--budget-for VARIANT=N] [--cost latency_ms|macs] [--tag T] [--against RESULT.json]  (--threads 1 with --jobs > 1: one core per search; T names
the result file)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from _common import hwnas, save
from scipy.stats import spearmanr

from hwnas.core.pareto import as_minimisation, hypervolume, pareto_indices
from hwnas.report.plots import superseded_ids

OBJ = [("accuracy", "max"), ("latency_ms", "min")]
VARIANTS = {
    "baseline": ["pruner.name=none", "scheduler.name=none"],
    "median": ["pruner.name=median", "scheduler.name=none"],
    "curve": ["pruner.name=curve", "scheduler.name=none"],
    # the curve rule before peers: cheaper became its default: peers within a cost band
    "curve-similar": ["pruner.name=curve", "pruner.peers=similar", "scheduler.name=none"],
    # the median rule that never stops a trial before its second epoch
    "median-w2": ["pruner.name=median", "pruner.warmup_epochs=2", "scheduler.name=none"],
    # the rule before peers: cheaper became the default: peers within a cost band
    "median-similar": ["pruner.name=median", "pruner.peers=similar", "scheduler.name=none"],
    # cheaper peers, 3 of them enough to stop a trial (more stops among the cheap nets)
    "median-m3": ["pruner.name=median", "pruner.min_trials=3", "scheduler.name=none"],
    "median-m2": ["pruner.name=median", "pruner.min_trials=2", "scheduler.name=none"],
    # cheaper peers; a trial goes on only while in the top quarter of them (Optuna's percentile)
    "median-p25": ["pruner.name=median", "pruner.percentile=25", "scheduler.name=none"],
    "median-m3-p25": [
        "pruner.name=median",
        "pruner.min_trials=3",
        "pruner.percentile=25",
        "scheduler.name=none",
    ],
    # promotions from scratch (as measured on 2026-12-03, before warm starts existed)
    "halving": ["pruner.name=none", "scheduler.name=halving", "scheduler.warm_start=false"],
    # the rule before promote: front became the default: top 1/eta among similar-cost mates
    "halving-similar": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=false",
        "scheduler.promote=similar",
    ],
    "halving-warm-similar": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.promote=similar",
    ],
    # promotions go on from the rung's weights and train only the extra epochs
    "halving-warm": ["pruner.name=none", "scheduler.name=halving", "scheduler.warm_start=true"],
    # brackets starting at 1, 3 and 6 epochs (rungs 1, 3, 6; eta 3), archs dealt 9:5:3
    "hyperband": ["pruner.name=none", "scheduler.name=hyperband", "scheduler.warm_start=false"],
    # BOHB: the GP proposes, learning from the highest fidelity with enough results
    "bohb": [
        "pruner.name=none",
        "scheduler.name=hyperband",
        "scheduler.warm_start=false",
        "strategy.name=bo",
    ],
    # warm promotions of the top quarter (rungs 2 and 6: fewer promotions than eta 3)
    "halving-warm-eta4": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.eta=4",
    ],
    # warm promotions over rungs 1, 3 and 6
    "halving-warm-m1": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.min_epochs=1",
    ],
    # aimed at the unpruned run's hypervolume within a third of its epochs
    "median-m3-p10": [
        "pruner.name=median",
        "pruner.min_trials=3",
        "pruner.percentile=10",
        "scheduler.name=none",
    ],
    "halving-warm-m1-eta4": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.min_epochs=1",
        "scheduler.eta=4",
    ],
    "hyperband-warm": ["pruner.name=none", "scheduler.name=hyperband", "scheduler.warm_start=true"],
    # rungs as pauses of one training (schedule: resume): a promotion goes on where its rung
    # stopped, on the top rung's schedule, instead of restarting a cosine cycle
    "halving-warm-resume": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.schedule=resume",
    ],
    "halving-warm-m1-resume": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.min_epochs=1",
        "scheduler.schedule=resume",
    ],
    # brackets from 2 epochs (rungs 2, 6): one digits epoch ranks nets no better than chance
    "hyperband-warm-resume-m2": [
        "pruner.name=none",
        "scheduler.name=hyperband",
        "scheduler.warm_start=true",
        "scheduler.schedule=resume",
        "scheduler.min_epochs=2",
    ],
    # Bayesian optimisation at full fidelity, and BOHB with rungs as pauses
    "bo": ["pruner.name=none", "scheduler.name=none", "strategy.name=bo"],
    "bohb-warm-resume": [
        "pruner.name=none",
        "scheduler.name=hyperband",
        "scheduler.warm_start=true",
        "scheduler.schedule=resume",
        "strategy.name=bo",
    ],
    "hyperband-warm-resume": [
        "pruner.name=none",
        "scheduler.name=hyperband",
        "scheduler.warm_start=true",
        "scheduler.schedule=resume",
    ],
    "halving-warm-eta2": [
        "pruner.name=none",
        "scheduler.name=halving",
        "scheduler.warm_start=true",
        "scheduler.eta=2",
    ],
}
MARKER = "bench-run.json"  # per run dir: wall seconds over invocations, done or not
EPOCHS_SHARE = 0.6  # the criterion's most training epochs, as a share of the baseline's
#: shares of the baseline's epochs at which a run's hypervolume is also read (issue 14 asks
#: for the baseline's hypervolume within a third of its epochs; issue 12 within 60 %)
EQUAL_EPOCH_SHARES = (1 / 3, EPOCHS_SHARE, 1.0)


def _marker(d: Path) -> dict[str, Any]:
    p = d / MARKER
    return json.loads(p.read_text()) if p.exists() else {"wall_s": 0.0, "invocations": 0}


def _search_seconds(d: Path) -> float | None:
    from hwnas.experiment.study import Study

    study = Study(d)
    try:
        return study.store.get_meta_json("search_seconds")
    finally:
        study.close()


def run_all(
    runs: list[tuple[str, int, Path, list[str]]],
    jobs: int,
    env: dict[str, str],
    stop_after: float | None,
    cost: str = "latency_ms",
) -> bool:
    """Run every unfinished search, ``jobs`` at once; False if some are left unfinished."""
    other = [r[2] for r in runs if _marker(r[2]).get("cost", cost) != cost]
    if other:
        raise SystemExit(f"{other[0]} was searched with another --cost: use another --out")
    queue = [r for r in runs if not _marker(r[2]).get("done")]
    running: dict[subprocess.Popen[bytes], tuple[tuple[str, int, Path, list[str]], float]] = {}
    deadline = time.monotonic() + 60 * stop_after if stop_after else None

    def record(p: subprocess.Popen[bytes], rc: int) -> None:
        (variant, seed, d, cmd), t0 = running.pop(p)
        m = _marker(d)
        m["wall_s"] = round(m["wall_s"] + time.perf_counter() - t0, 1)
        m["invocations"] += 1
        m["command"] = " ".join(["hwnas", *cmd])
        m["done"] = rc == 0
        m["cost"] = cost
        if rc == 0:
            m["search_s"] = _search_seconds(d)
        (d / MARKER).write_text(json.dumps(m, indent=1))
        state = "done" if rc == 0 else f"stopped (exit {rc})"
        print(f"{variant:>9} seed {seed}: {state}, {m['wall_s']:.0f} s", flush=True)
        if rc not in (0, 130, -signal.SIGTERM):
            log = (d / "bench-stderr.log").read_text()[-3000:]
            raise SystemExit(f"{variant} seed {seed} failed:\n{log}")

    try:
        while queue or running:
            while queue and len(running) < jobs and not (deadline and time.monotonic() > deadline):
                variant, seed, d, cmd = r = queue.pop(0)
                d.mkdir(parents=True, exist_ok=True)
                err = open(d / "bench-stderr.log", "ab")  # noqa: SIM115 - closed with the process
                p = subprocess.Popen(
                    [sys.executable, "-m", "hwnas.cli", *cmd], stdout=err, stderr=err, env=env
                )
                err.close()
                running[p] = (r, time.perf_counter())
            if deadline and time.monotonic() > deadline:
                for p in running:
                    p.send_signal(signal.SIGTERM)  # hwnas saves and exits; the same command resumes
                for p in list(running):
                    record(p, p.wait())
                break
            time.sleep(0.5)
            for p in [p for p in running if p.poll() is not None]:
                record(p, p.returncode)
    except BaseException:
        for p in running:
            p.send_signal(signal.SIGTERM)
        for p in running:
            p.wait()
        raise
    left = [r for r in runs if not _marker(r[2]).get("done")]
    if left:
        print(f"{len(left)} runs unfinished: run the same command again to resume them")
    return not left


def trials_of(d: Path) -> list[dict[str, Any]]:
    """`hwnas show --json` of a run (saved beside it as show.json, read from there when the
    study itself is not here: figures brought back from another machine)."""
    saved = d / "show.json"
    if (d / "study.db").exists():
        saved.write_text(hwnas("show", str(d), "--json").stdout)
    return json.loads(saved.read_text())


def total_epochs(t: dict[str, Any]) -> int | None:
    """The epochs a trial's weights have seen: a warm-started promotion's fidelity is only the
    epochs it trained on top of its parent's (``info.epochs_total`` holds the sum)."""
    return t["info"].get("epochs_total", t["fidelity"].get("epochs"))


def feasible(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete trials within the constraints, less those whose net a promotion among
    ``trials`` trained further (as the study's front: a net counts once)."""
    gone = superseded_ids(trials)
    return [
        t for t in trials if t["status"] == "complete" and not t["error"] and t["id"] not in gone
    ]


def mean_se(xs: list[float]) -> tuple[float, float | None]:
    m = statistics.mean(xs)
    return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--budget", type=int, default=60, help="trials per search")
    ap.add_argument(
        "--budget-for",
        action="append",
        default=[],
        metavar="VARIANT=N",
        help="another budget for one variant (a multi-fidelity run given more trials, to be "
        "compared at equal training epochs)",
    )
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated; first is the baseline"
    )
    ap.add_argument("--jobs", type=int, default=1, help="searches at once")
    ap.add_argument(
        "--threads", type=int, help="torch threads per search (estimator.threads, OMP_NUM_THREADS)"
    )
    ap.add_argument("--out", default="runs/bench-pruning")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--fresh", action="store_true", help="delete the runs' directories first")
    ap.add_argument(
        "--stop-after", type=float, metavar="MIN", help="stop (resumably) after MIN minutes"
    )
    ap.add_argument(
        "--cost",
        default="latency_ms",
        choices=["latency_ms", "macs", "params"],
        help="the second objective (default latency_ms, measured); `macs` (counted: the same "
        "net costs the same in every run, so hypervolume differences are the search's alone, "
        "not the timing's) also sets target=analytic",
    )
    ap.add_argument("--tag", default="", help="name in the result file's name")
    ap.add_argument(
        "--against",
        metavar="RESULT",
        help="a stored result of this benchmark (same budget): its runs and boxes join the "
        "comparison, its first variant is the baseline",
    )
    args = ap.parse_args()
    variants = ran = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]}: one of {', '.join(VARIANTS)}")
    budgets = {v: args.budget for v in variants}
    for spec in args.budget_for:
        name, _, n = spec.partition("=")
        if name not in budgets or not n.isdigit():
            raise SystemExit(f"--budget-for {spec!r}: expected VARIANT=N with a chosen variant")
        budgets[name] = int(n)
    global OBJ
    OBJ = [("accuracy", "max"), (args.cost, "min")]
    extra = list(args.overrides)
    if args.cost != "latency_ms":
        extra = [f"objectives={{accuracy: max, {args.cost}: min}}", "target=analytic", *extra]
    env = dict(os.environ)
    if args.threads is not None:
        extra.append(f"estimator.threads={args.threads}")
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    # seed-major: the variants of a seed run side by side, so drift hits them alike
    runs = []
    for seed in range(args.seeds):
        for v in variants:
            d = Path(args.out) / f"{v}-seed{seed}"
            sets = [a for o in VARIANTS[v] + extra for a in ("--set", o)]
            cmd = [
                "search",
                "--quiet",
                "--out",
                str(d),
                "--seed",
                str(seed),
                "--budget",
                str(budgets[v]),
                *sets,
            ]
            runs.append((v, seed, d, cmd))
    if args.fresh:
        for _, _, d, _ in runs:
            shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    if not run_all(runs, args.jobs, env, args.stop_after, args.cost):
        raise SystemExit(3)
    print(f"all {len(runs)} searches done ({time.perf_counter() - t0:.0f} s this invocation)")

    data = {(v, seed): trials_of(d) for v, seed, d, _ in runs}
    top = max(total_epochs(t) or 0 for ts in data.values() for t in ts)
    stored: dict[str, Any] | None = None
    if args.against:
        stored = json.loads(Path(args.against).read_text())
        if stored["budget"] != args.budget or stored["seeds"] < args.seeds:
            raise SystemExit(f"{args.against}: another budget or fewer seeds")
        if stored.get("cost", "latency_ms") != args.cost:
            raise SystemExit(f"{args.against}: searched with another --cost")
    per_run: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    boxes = []

    def hv_of(trials: list[dict[str, Any]], lo: list[float], hi: list[float]) -> float:
        ok = feasible(trials)
        pts = [
            as_minimisation(ok[i]["metrics"], OBJ)
            for i in pareto_indices([t["metrics"] for t in ok], OBJ)
        ]
        box = [tuple((p[k] - lo[k]) / (hi[k] - lo[k]) for k in range(2)) for p in pts if p]
        return hypervolume(box, [1.0, 1.0])

    def by_epochs(trials: list[dict[str, Any]], most: float) -> list[dict[str, Any]]:
        """The trials trained (in id order: one worker) before ``most`` epochs were spent."""
        spent, kept = 0, []
        for t in sorted(trials, key=lambda t: t["id"]):
            spent += len(t.get("curve", []))
            if spent > most:
                break
            kept.append(t)
        return kept

    def rank_by_epoch(trials: list[dict[str, Any]]) -> dict[str, float] | None:
        """Spearman's rho between each epoch's validation accuracy and the last one's, over
        the run's nets trained to the top fidelity from scratch in one go: how early their
        ranking holds (a rung or a stop after epoch k knows only what epoch k knows)."""
        whole = [
            t
            for t in trials
            if t["status"] == "complete"
            and not t["info"].get("inherit")
            and len(t.get("curve", [])) == top
        ]
        if len(whole) < 5:
            return None
        last = [t["curve"][-1]["val_accuracy"] for t in whole]
        return {
            str(k + 1): float(spearmanr([t["curve"][k]["val_accuracy"] for t in whole], last)[0])
            for k in range(top - 1)
        }

    for seed in range(args.seeds):
        if stored is not None:  # the stored runs' boxes: hypervolumes on their scale
            lo, hi = stored["boxes"][seed]["lo"], stored["boxes"][seed]["hi"]
        else:
            vecs = [
                v
                for var in variants
                for t in feasible(data[var, seed])
                if (v := as_minimisation(t["metrics"], OBJ)) is not None
            ]
            lo = [min(v[k] for v in vecs) for k in range(2)]
            hi = [max(v[k] for v in vecs) for k in range(2)]
        boxes.append({"seed": seed, "lo": lo, "hi": hi})
        for var in variants:
            trials = data[var, seed]
            ok = feasible(trials)
            metrics = [t["metrics"] for t in ok]
            front = [ok[i] for i in pareto_indices(metrics, OBJ)]
            marker = _marker(Path(args.out) / f"{var}-seed{seed}")
            base_epochs = sum(len(t.get("curve", [])) for t in data[variants[0], seed])
            at_share = {
                f"{share:.2f}": hv_of(by_epochs(trials, share * base_epochs), lo, hi)
                for share in EQUAL_EPOCH_SHARES
            }
            per_run[var].append(
                {
                    "seed": seed,
                    "hypervolume": hv_of(trials, lo, hi),
                    # with the first `share` of the baseline's training epochs of this seed
                    "hv_at_baseline_epochs_share": at_share,
                    "best_accuracy": max(m["accuracy"] for m in metrics),
                    "epochs": sum(len(t.get("curve", [])) for t in trials),
                    "trials": len(trials),
                    "complete": sum(t["status"] == "complete" and not t["error"] for t in trials),
                    "pruned_by_pruner": sum(t.get("prune_reason") == "pruner" for t in trials),
                    "pruned_by_constraint": sum(
                        t["status"] == "pruned" and t.get("prune_reason") != "pruner"
                        for t in trials
                    ),
                    "promotions": sum(t["info"].get("op") == "promote" for t in trials),
                    "front_size": len(front),
                    "front_below_top_epochs": sum((total_epochs(t) or top) < top for t in front),
                    "warm_starts": sum(bool(t["info"].get("inherit")) for t in trials),
                    "rank_by_epoch": rank_by_epoch(trials),
                    "wall_s": marker.get("wall_s"),
                    "search_s": marker.get("search_s"),
                }
            )

    if stored is not None:  # the stored runs first: the baseline is theirs
        day = stored["date"][:10]
        old = {f"{v}@{day}": stored["runs"][v][: args.seeds] for v in stored["summary"]}
        per_run = {**old, **per_run}
        variants = [*old, *variants]
    base = variants[0]
    summary: dict[str, dict[str, Any]] = {}
    for var in variants:
        rs, bs = per_run[var], per_run[base]
        hv, hv_se = mean_se([r["hypervolume"] for r in rs])
        acc, acc_se = mean_se([r["best_accuracy"] for r in rs])
        d_hv, d_hv_se = mean_se(
            [r["hypervolume"] - b["hypervolume"] for r, b in zip(rs, bs, strict=True)]
        )
        d_acc, d_acc_se = mean_se(
            [r["best_accuracy"] - b["best_accuracy"] for r, b in zip(rs, bs, strict=True)]
        )
        ratio = sum(r["epochs"] for r in rs) / sum(b["epochs"] for b in bs)
        s: dict[str, Any] = {
            "hv_mean": hv,
            "hv_se": hv_se,
            "hv_diff_mean": d_hv,
            "hv_diff_se": d_hv_se,
            "best_acc_mean": acc,
            "best_acc_se": acc_se,
            "best_acc_diff_mean": d_acc,
            "best_acc_diff_se": d_acc_se,
            "epochs_mean": statistics.mean(r["epochs"] for r in rs),
            "epochs_ratio": ratio,
            "pruned_by_pruner": [r["pruned_by_pruner"] for r in rs],
            "promotions": [r["promotions"] for r in rs],
            "wall_s_mean": statistics.mean(r["wall_s"] or 0.0 for r in rs),
        }
        if all("hv_at_baseline_epochs_share" in r for r in rs):
            # at equal training epochs: this run cut at a share of the baseline's epochs,
            # against the baseline's whole run
            s["at_baseline_epochs_share"] = {
                share: dict(
                    zip(
                        ("hv_diff_mean", "hv_diff_se"),
                        mean_se(
                            [
                                r["hv_at_baseline_epochs_share"][share] - b["hypervolume"]
                                for r, b in zip(rs, bs, strict=True)
                            ]
                        ),
                        strict=True,
                    )
                )
                for share in rs[0]["hv_at_baseline_epochs_share"]
            }
        if var != base:
            hv_ok = d_hv >= -(d_hv_se or 0.0)
            acc_ok = d_acc >= -(d_acc_se or 0.0)
            epochs_ok = ratio <= EPOCHS_SHARE
            s["criterion"] = {
                "hv_within_1se": hv_ok,
                "best_acc_within_1se": acc_ok,
                "epochs_within_60pct": epochs_ok,
                "met": (hv_ok or acc_ok) and epochs_ok,
            }
        summary[var] = s

    def f(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    print("\nper run (hypervolume in each seed's common box; epochs = epochs trained, all trials)")
    print(
        f"{'variant':>20} {'seed':>4} {'HV':>7} {'best acc':>8} {'epochs':>6} {'pruned':>6} {'promo':>5} {'front':>5} {'wall s':>7}"
    )
    for seed in range(args.seeds):
        for var in variants:
            r = per_run[var][seed]
            print(
                f"{var:>20} {seed:>4} {r['hypervolume']:7.4f} {r['best_accuracy']:8.2%} {r['epochs']:6d} "
                f"{r['pruned_by_pruner']:6d} {r['promotions']:5d} {r['front_size']:5d} {f(r['wall_s'], '7.0f')}"
            )
    print(
        f"\npaired over {args.seeds} seeds (diff = variant - {base}, per seed; +- one standard error)"
    )
    print(
        f"{'variant':>20} {'HV':>16} {'HV diff':>17} {'best acc':>8} {'acc diff':>16} {'epochs':>6} {'pruned':>6} {'wall s':>6}  criterion"
    )
    for var in variants:
        s = summary[var]
        crit = s.get("criterion")
        verdict = "-" if crit is None else ("met" if crit["met"] else "NOT met")
        print(
            f"{var:>20} {s['hv_mean']:7.4f} +- {f(s['hv_se'], '.4f'):>6} {s['hv_diff_mean']:+8.4f} +- {f(s['hv_diff_se'], '.4f'):>6} "
            f"{s['best_acc_mean']:8.2%} {s['best_acc_diff_mean']:+7.2%} +- {f(s['best_acc_diff_se'], '.2%'):>5} "
            f"{s['epochs_ratio']:6.2f} {sum(s['pruned_by_pruner']):6d} {s['wall_s_mean']:6.0f}  {verdict}"
        )
    ranks = [r["rank_by_epoch"] for r in per_run[base] if r.get("rank_by_epoch")]
    if ranks:
        by_k = {k: mean_se([r[k] for r in ranks]) for k in ranks[0]}
        summary[base]["rank_by_epoch"] = {
            k: {"rho_mean": m, "rho_se": e} for k, (m, e) in by_k.items()
        }
        print(
            f"\n{base}: Spearman rho of epoch k's validation accuracy with the last epoch's "
            f"({len(ranks)} seeds, mean +- SE): "
            + "  ".join(f"{k}: {m:+.2f} +- {f(e, '.2f')}" for k, (m, e) in by_k.items())
        )
    shares = [v for v in variants[1:] if "at_baseline_epochs_share" in summary[v]]
    if shares:
        print(f"\nat equal training epochs: HV of each run cut at a share of {base}'s epochs")
        for var in shares:
            cut = summary[var]["at_baseline_epochs_share"]
            print(
                f"{var:>20} "
                + "  ".join(
                    f"{float(k):.0%}: {c['hv_diff_mean']:+.4f} +- {f(c['hv_diff_se'], '.4f')}"
                    for k, c in cut.items()
                )
            )

    versions = {}
    for pkg in ("torch", "onnxruntime", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    notes = []
    if stored is not None:
        notes.append(
            f"compared across runs with {args.against} ({stored['date']}, {stored['machine']}): "
            "its hypervolume boxes, its runs as the variants named @date"
        )
    if args.jobs > 1 and args.cost == "latency_ms":
        notes.append(
            f"{min(args.jobs, len(runs))} searches ran at once on {os.cpu_count()} cores: latency "
            "readings are noisier than on a quiet machine (each search times on a core beside others' training)"
        )
    save(
        f"pruning{'-' + args.tag if args.tag else ''}",
        {
            "command": " ".join(["python benchmarks/pruning.py", *sys.argv[1:]]),
            "budget": args.budget,
            "budgets": budgets,
            "cost": args.cost,
            "seeds": args.seeds,
            "jobs": args.jobs,
            "threads": args.threads,
            "overrides": args.overrides,
            "variants": {v: VARIANTS[v] for v in ran},
            "against": args.against,
            "versions": versions,
            "notes": notes,
            "boxes": boxes,
            "summary": summary,
            "runs": per_run,
        },
    )


if __name__ == "__main__":
    main()
