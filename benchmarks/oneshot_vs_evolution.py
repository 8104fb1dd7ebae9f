"""What a differentiable search costs and buys against evolution over the same space.

    python benchmarks/oneshot_vs_evolution.py --oneshot runs/fbnet-chain --evolution runs/c10 \\
        [--rounds 3] [--final-repeats 1] [--final-epochs E] [--tag h100]

Issue 13's cost figure: ``configs/fbnet_chain_cifar10.yaml`` (fbnet on the chain space, its
family of derived nets, each trained stand-alone) beside the front of ``configs/cifar10.yaml``
(ten minutes of evolution over that space), with the same target and the same stand-alone
recipe (refused otherwise: the comparison would be of recipes). Both studies must be finished.

For each: search seconds (summed over resumed calls; the one-shot's include its whole phase
before the derived nets: cost tables, supernet warm-up and theta epochs, deriving), trials;
every member of each front (the one-shot's: the front of its derived nets) re-timed here,
round-robin over both families ``--rounds`` times (median), so a reading is not one search's
busy GPU against the other's quiet one; hypervolume of (validation accuracy, latency) in one
box (each objective normalised by its best and worst over both fronts, reference point
(1.1, 1.1), so the extremes count too), with each front's size. With ``--final-repeats R``
every front member is also trained R more times by the final recipe (``hwnas train DIR
--trial N``: runs already stored are reused) and the hypervolume of (test accuracy mean,
latency) is given as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hwnas, mean_std, save  # noqa: E402

from hwnas.core.pareto import as_minimisation, hypervolume  # noqa: E402
from hwnas.experiment.study import Study  # noqa: E402
from hwnas.hardware.costs import profile_module  # noqa: E402
from hwnas.space import make_space  # noqa: E402

FAMILIES = {"oneshot": "derived", "evolution": "search"}  # the stage each family's nets are of


def _open(path: str) -> tuple[Study, list[Any]]:
    study = Study(path, readonly=True)
    return study, study.trials()


def _front(study: Study, trials: list[Any], stage: str) -> list[Any]:
    return sorted(
        (t for t in study.pareto(trials) if t.stage == stage),
        key=lambda t: t.metrics.get("latency_ms", 0.0),
    )


def _same(a: Study, b: Study, section: str) -> None:
    da = getattr(a.config, section).model_dump()
    db = getattr(b.config, section).model_dump()
    if da != db:
        raise SystemExit(f"the two studies differ in `{section}` ({da} against {db})")


def _retime(nets: list[dict[str, Any]], rounds: int) -> None:
    """Each net's latency on its study's target, re-read here ``rounds`` times round-robin."""
    readings: list[list[float]] = [[] for _ in nets]
    for _ in range(rounds):
        for net, got in zip(nets, readings, strict=True):
            model = net["space"].build(net["trial"].arch, net["shape"], net["classes"])
            costs = profile_module(model.eval(), net["shape"], net["target"])
            if costs.get("latency_ms") is not None:
                got.append(costs["latency_ms"])
    for net, got in zip(nets, readings, strict=True):
        net["latency_ms_here"] = statistics.median(got) if got else None
        net["latency_ms_readings"] = got


def _finals(trials: list[Any], parent: int, epochs: int | None) -> list[float]:
    return [
        t.metrics["test_accuracy"]
        for t in trials
        if t.stage == "final"
        and t.info.get("final_of") == parent
        and t.status == "complete"
        and "test_accuracy" in t.metrics
        and (epochs is None or t.fidelity.get("epochs") == epochs)
    ]


#: the reference point in the normalised box: a little beyond the worst value of both fronts,
#: so a front's extreme nets (the slowest, the least accurate) count for something
REFERENCE = 1.1


def _hypervolumes(nets: list[dict[str, Any]], acc_key: str) -> dict[str, float] | None:
    """Hypervolume of each family's (``acc_key``, latency) points in one normalised box."""
    objectives = [(acc_key, "max"), ("latency_ms", "min")]
    points: dict[str, list[tuple[float, ...]]] = {f: [] for f in FAMILIES}
    for net in nets:
        p = as_minimisation({acc_key: net.get(acc_key), "latency_ms": net["latency"]}, objectives)
        if p is not None:
            points[net["family"]].append(p)
    every = [p for ps in points.values() for p in ps]
    if not all(points.values()):
        return None
    lo = [min(p[k] for p in every) for k in range(2)]
    hi = [max(p[k] for p in every) for k in range(2)]
    if any(h == low for h, low in zip(hi, lo, strict=True)):
        return None

    def norm(p: tuple[float, ...]) -> tuple[float, ...]:
        return tuple((p[k] - lo[k]) / (hi[k] - lo[k]) for k in range(2))

    return {f: hypervolume([norm(p) for p in ps], [REFERENCE] * 2) for f, ps in points.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oneshot", required=True, help="study of configs/fbnet_chain_cifar10.yaml")
    ap.add_argument("--evolution", required=True, help="study of configs/cifar10.yaml")
    ap.add_argument("--rounds", type=int, default=3, help="re-timings per net (0: the studies')")
    ap.add_argument("--final-repeats", type=int, default=0, help="final trainings per member")
    ap.add_argument("--final-epochs", type=int, default=0, help="default: as `hwnas train`")
    ap.add_argument("--tag", default="")
    ap.add_argument("--dataset", default="", help='label, e.g. "CIFAR-10 (JPEG)"')
    args = ap.parse_args()
    if args.rounds < 0 or args.final_repeats < 0:
        ap.error("--rounds and --final-repeats must not be negative")
    dirs = {"oneshot": args.oneshot, "evolution": args.evolution}
    for name, d in dirs.items():
        if not (Path(d) / "study.db").is_file():
            ap.error(f"--{name}: {d} holds no study (study.db)")
    studies = {f: _open(d) for f, d in dirs.items()}
    one, evo = studies["oneshot"][0], studies["evolution"][0]
    for section in ("target", "estimator"):
        _same(one, evo, section)
    if one.config.strategy.name not in ("fbnet", "darts", "spos"):
        raise SystemExit(f"--oneshot: {args.oneshot} is a {one.config.strategy.name} search")
    if args.final_repeats:  # stored runs are reused: a second call trains only what is missing
        for family, (study, trials) in studies.items():
            for t in _front(study, trials, FAMILIES[family]):
                extra = ["--epochs", str(args.final_epochs)] if args.final_epochs else []
                hwnas("train", dirs[family], "--trial", str(t.id), "--repeats",
                      str(args.final_repeats), *extra, "-q")  # fmt: skip
        studies = {f: _open(d) for f, d in dirs.items()}  # with the runs just stored
    nets: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for family, (study, trials) in studies.items():
        space = make_space(study.config.space)
        io = study.store.get_meta_json("model_io")
        front = _front(study, trials, FAMILIES[family])
        final_epochs = args.final_epochs or None
        for t in front:
            tests = _finals(trials, t.id, final_epochs)
            nets.append(
                {
                    "family": family,
                    "trial": t,
                    "space": space,
                    "shape": tuple(io["input_shape"]),
                    "classes": int(io["num_classes"]),
                    "target": study.config.target,
                    "accuracy": t.metrics.get("accuracy"),
                    "test_accuracy": (mean_std(tests) or {}).get("mean"),
                    "test_runs": tests,
                }
            )
        timing = study.supernet_time() if family == "oneshot" else None
        # the loop's own time (trials: for the one-shot, its derived nets' trainings), and
        # for the one-shot its phase before them (cost tables, supernet, deriving)
        loop = float(study.store.get_meta_json("search_seconds") or 0.0)
        phase = float((timing or {}).get("oneshot_seconds", 0.0))
        if family == "oneshot" and "oneshot_seconds" not in (timing or {}):
            print("note: the one-shot study predates timing its supernet phase: not counted")
        if (timing or {}).get("warmup_reused"):
            print(f"note: the supernet's warm-up was trained by {timing['warmup_reused']}: "  # type: ignore[index]
                  "its cost is not counted")  # fmt: skip
        summary[family] = {
            "study": dirs[family],
            "config_strategy": study.config.strategy.name,
            "search_seconds": round(loop + phase, 1),
            "trial_seconds": round(loop, 1),
            "supernet_search": timing,
            "trials": sum(t.stage == FAMILIES[family] for t in trials),
            "complete": sum(t.stage == FAMILIES[family] and t.status == "complete" for t in trials),
            "front": len(front),
        }
    if args.rounds:
        _retime(nets, args.rounds)
    for net in nets:
        net["latency"] = net.get("latency_ms_here") or net["trial"].metrics.get("latency_ms")
    for key, label in (("accuracy", "validation"), ("test_accuracy", "test")):
        hv = _hypervolumes(nets, key)
        for family in FAMILIES:
            summary[family][f"hypervolume_{label}"] = hv[family] if hv else None
    rows = [
        {
            "family": n["family"],
            "trial": n["trial"].id,
            "describe": n["trial"].describe,
            "val_accuracy": n["accuracy"],
            "test_accuracy": mean_std(n["test_runs"]),
            "latency_ms_search": n["trial"].metrics.get("latency_ms"),
            "latency_ms_here": n.get("latency_ms_here"),
            "latency_ms_readings": n.get("latency_ms_readings"),
            "macs": n["trial"].metrics.get("macs"),
            "params": n["trial"].metrics.get("params"),
        }
        for n in nets
    ]
    for r in rows:
        print(
            f"{r['family']:9} #{r['trial']:<4} val {100 * (r['val_accuracy'] or 0):6.2f} %  "
            f"{r['latency_ms_here'] or r['latency_ms_search'] or 0:8.3f} ms  {r['describe']}"
        )
    for family, s in summary.items():
        print(
            f"{family}: {s['complete']} nets in {(s['search_seconds'] or 0) / 60:.1f} min, "
            f"front {s['front']}, hypervolume (val) {s['hypervolume_validation']}, "
            f"(test) {s['hypervolume_test']}"
        )
    name = "oneshot_vs_evolution" + (f"-{args.tag}" if args.tag else "")
    save(
        name,
        {
            "dataset": args.dataset or one.config.data.name,
            "target": one.config.target.model_dump(),
            "rounds": args.rounds,
            "final_repeats": args.final_repeats,
            "families": summary,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
