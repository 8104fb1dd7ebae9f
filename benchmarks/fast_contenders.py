"""Front members of a fast-CIFAR study that beat a reference net on the search's own figures.

    python benchmarks/fast_contenders.py --dir runs/c10fast [--max 6]

Prints the ids (one per line, most accurate first) of search trials on the front whose
validation accuracy is at least a reference net's (airbench94, airbench96, evaluated in the
same search, e.g. through ``strategy.start``) and whose every latency objective is lower, and
which have no final training yet. Only validation figures choose: the test split decides
nothing here. Feed them to ``hwnas train DIR --trial N --repeats 3`` so the headline compares
the nets that could dominate, not only the ones the final stage spread along the front.
On stderr, for each reference, its latency box: how many candidates were no slower on every
latency objective, how many of those reached its validation accuracy, and the best of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hwnas.experiment.study import Study  # noqa: E402
from hwnas.space import make_space  # noqa: E402
from hwnas.space.fastcnn import REFERENCE_NETS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--max", type=int, default=6, help="at most this many ids")
    args = ap.parse_args()
    study = Study(args.dir)
    trials = study.trials()
    space = make_space(study.config.space)
    costs = [o.metric for o in study.config.objectives if o.direction == "min"]
    searched = [t for t in trials if t.stage == "search" and t.status == "complete"]
    finals = {t.arch_hash for t in trials if t.stage == "final" and t.status == "complete"}
    refs = []
    for arch in REFERENCE_NETS.values():
        h = space.arch_hash(arch)
        refs += [t for t in searched if t.arch_hash == h and "accuracy" in t.metrics][:1]
    for r in refs:
        box = [
            t
            for t in searched
            if t.id != r.id
            and "accuracy" in t.metrics
            and all(t.metrics.get(m, float("inf")) <= r.metrics[m] for m in costs)
        ]
        best = max(box, key=lambda t: t.metrics["accuracy"], default=None)
        print(
            f"{r.describe}: {len(box)} candidates in its latency box, "
            f"{sum(t.metrics['accuracy'] >= r.metrics['accuracy'] for t in box)} reach its "
            f"validation {r.metrics['accuracy']:.4f}"
            + (f"; best #{best.id} {best.describe} {best.metrics['accuracy']:.4f}" if best else ""),
            file=sys.stderr,
        )
    picks = []
    for t in sorted(study.pareto(trials), key=lambda t: -t.metrics.get("accuracy", 0.0)):
        if t.stage != "search" or t.arch_hash in finals or any(t.id == r.id for r in refs):
            continue
        for r in refs:
            if t.metrics["accuracy"] >= r.metrics["accuracy"] and all(
                t.metrics[m] < r.metrics[m] for m in costs
            ):
                picks.append(t.id)
                break
    study.close()
    print("\n".join(str(i) for i in picks[: args.max]))


if __name__ == "__main__":
    main()
