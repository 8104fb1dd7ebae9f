"""Final training: the chosen nets trained again from scratch, several seeds, then tested.

A search ranks candidates on validation accuracy after a short training; what a user deploys
is a chosen net trained to its potential. Each final training is a trial of stage ``final``
(its ``parent_id`` is the search trial it retrains, ``info.final_of`` says so again) with its
own weights and test accuracy and the seed of its repeat (``final_seed``), so ``show``,
``report`` and ``export`` treat it like any trial. Final trials carry no ``accuracy`` (their
validation data may have been trained on), so they never enter the search's front; the
parent gets the summary: ``final_test_accuracy`` (mean), ``final_test_accuracy_std``,
``final_runs`` and ``final_epochs`` (and ``final_test_accuracy_tta``) of every run of the
recipe asked for last (no std of one run); runs of another length (``hwnas train
--epochs``) are other trainings, kept beside them.

Used at the end of a search (``final: {repeats: N}``) and by ``hwnas train``.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hwnas.core.fidelity import Fidelity, trial_key
from hwnas.experiment.store import Trial

if TYPE_CHECKING:
    from hwnas.experiment.config import ExperimentConfig
    from hwnas.experiment.evaluate import Evaluator
    from hwnas.experiment.store import Store
    from hwnas.experiment.study import Study
    from hwnas.space.base import Arch

log = logging.getLogger("hwnas")

#: what a final training measures itself; everything else is copied from the search trial
_OWN = {
    "accuracy",
    "val_loss",
    "train_seconds",
    "epochs",
    "cost_seconds",
    "test_accuracy",
    "test_accuracy_tta",
    "tta_views",
}


#: a searched net's summary of its final runs (replaced whole by each summary)
_SUMMARY = (
    "final_runs",
    "final_epochs",
    "final_test_accuracy",
    "final_test_accuracy_std",
    "final_test_accuracy_tta",
    "final_test_accuracy_tta_std",
)


def final_seed(seed: int, repeat: int) -> int:
    """The seed of final run ``repeat`` of every net: common random numbers, so run r of two
    nets sees the same batches and augmentations (their comparison is paired) and a net's
    result does not depend on where in the queue it was trained."""
    return (seed * 1_000_003 + (repeat + 1) * 104_729 + 0x5EED) % (2**31 - 1)


def spread(front: list[Trial], k: int, cost: str) -> list[Trial]:
    """At most ``k`` members of ``front`` evenly spaced along ``cost`` (0 = all)."""
    ordered = sorted(front, key=lambda t: (t.metrics.get(cost, 0.0), t.id))
    if k <= 0 or len(ordered) <= k:
        return ordered
    if k == 1:
        return [ordered[-1]]  # the most accurate end
    idx = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [ordered[i] for i in idx]


def dominates(a: Trial, b: Trial, objectives: Sequence[tuple[str, str]]) -> bool:
    """``a``'s search figures at least as good as ``b``'s on every objective and better on
    one (a missing figure decides nothing in ``a``'s favour)."""
    better = False
    for metric, direction in objectives:
        x, y = a.metrics.get(metric), b.metrics.get(metric)
        if x is None or y is None:
            return False
        if x == y:
            continue
        if (x > y) != (direction == "max"):
            return False
        better = True
    return better


def final_nets(trials: list[Trial]) -> list[Trial]:
    """The searched nets (a search's candidates, a one-shot search's derived nets) that have
    final trainings: what the verdict on the references and the side-by-side timing are
    about."""
    return [t for t in trials if t.stage in ("search", "derived") and "final_runs" in t.metrics]


def timed_together(metric: str, *trials: Trial) -> bool:
    """Whether every one of ``trials`` holds a reading of ``metric`` from the side-by-side
    timing (``final_<metric>_readings``; not, say, ``final_epochs``)."""
    return all(f"final_{metric}_readings" in t.metrics for t in trials)


def against_references(
    trials: list[Trial], objectives: Sequence[tuple[str, str]]
) -> list[tuple[Trial, list[Trial]]]:
    """Each reference net (a trial the search started from, ``strategy.start``) that has final
    trainings, with the searched nets that dominate it after theirs: final test accuracy in
    place of validation accuracy, and each latency as timed side by side with the reference
    at the final stage (``final_<metric>``, see :func:`time_side_by_side`) where both nets
    have that reading, else as the search kept it. This is the question a search that starts
    from hand-designed nets is run to answer."""
    if all(m != "accuracy" for m, _ in objectives):
        return []
    finals = final_nets(trials)
    refs = [t for t in finals if t.info.get("op") == "start"]
    ref_nets = {r.arch_hash for r in refs}
    return [
        (
            r,
            [
                t
                for t in finals
                if t.arch_hash not in ref_nets and dominates(t, r, final_figures(t, r, objectives))
            ],
        )
        for r in refs
    ]


def final_figures(
    a: Trial, b: Trial, objectives: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The figures on which two nets with final trainings are compared: final test accuracy
    for accuracy, and ``final_<metric>`` (timed side by side) for any other objective both
    nets have it for, else the search's own figure."""
    out = []
    for m, d in objectives:
        if m == "accuracy":
            out.append(("final_test_accuracy", d))
            continue
        out.append((f"final_{m}" if timed_together(m, a, b) else m, d))
    return out


#: reads a latency of an arch's built model again: {metric: value}, empty when it gives none
Timer = Callable[[Any, Any], dict[str, Any]]


def time_side_by_side(
    store: Store,
    evaluator: Evaluator,
    timers: dict[str, Timer],
    rounds: int,
) -> list[Trial]:
    """Time every searched net with final trainings again, all of them in the same
    ``rounds`` (each round every net once, in an order rotated and reversed from round to
    round, so a drift of the host falls on all alike), and keep each latency's median as
    ``final_<metric>`` with its readings in ``final_<metric>_readings``.

    The search keeps each candidate's lowest reading, taken whenever it was trained or
    re-timed; on a host whose load or clock drifts, two nets' kept readings can differ by
    more than the nets do. A verdict that one net is faster than a reference needs readings
    taken together. Done only where a reference net (``strategy.start``) is among them, for
    :func:`against_references`, and once per set of nets (the study keeps which: meta
    ``side_by_side``), so a finished search run again changes nothing. Returns the nets
    timed."""
    nets = final_nets(store.trials())
    if rounds <= 0 or not timers or not any(t.info.get("op") == "start" for t in nets):
        return []  # no reference net among them: no verdict needs the readings
    done = store.get_meta_json("side_by_side")
    if done == sorted(t.id for t in nets) and all(timed_together(m, *nets) for m in timers):
        return []  # these very nets were timed together already: the same figures stand
    readings: dict[int, dict[str, list[float]]] = {t.id: {m: [] for m in timers} for t in nets}
    for r in range(rounds):
        # ABBA for two nets: a net is first as often as last, whatever the drift's shape
        shift = (r // 2) % len(nets)
        order = nets[shift:] + nets[:shift]
        for t in order[::-1] if r % 2 else order:
            try:
                model = evaluator.build(t.arch, t.seed)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: fewer readings
                log.warning("side-by-side timing of trial %d: no model: %s", t.id, exc)
                continue
            for metric, timer in timers.items():
                try:
                    new = timer(t.arch, model)
                except Exception as exc:  # noqa: BLE001 - e.g. a board went away: fewer readings
                    log.warning("side-by-side timing of trial %d failed: %s", t.id, exc)
                    continue
                if metric in new:
                    readings[t.id][metric].append(float(new[metric]))
    for t in nets:
        for metric, values in readings[t.id].items():
            # a figure from an earlier batch is not side by side with this one's: gone
            t.metrics.pop(f"final_{metric}", None)
            t.metrics.pop(f"final_{metric}_readings", None)
            if values:
                t.metrics[f"final_{metric}"] = statistics.median(values)
                t.metrics[f"final_{metric}_readings"] = values
        store.update_metrics(t.id, t.metrics)
    store.set_meta("side_by_side", sorted(t.id for t in nets))
    log.info(
        "timed %d nets with final trainings side by side, %d rounds (%s)",
        len(nets),
        rounds,
        ", ".join(timers),
    )
    return nets


def pick(
    front: list[Trial],
    refs: list[Trial],
    k: int,
    objectives: Sequence[tuple[str, str]],
    cost: str,
) -> tuple[list[Trial], list[Trial]]:
    """The front members the final stage trains, as (rivals, rest): the rivals dominate one of
    ``refs`` (the nets the search was to beat; a reference's own net is none) on the search's
    own figures, most accurate first -- their final figures say whether the search beat the
    references -- and the rest are spread along ``cost``; at most ``k`` in all (0 = every
    member)."""
    own = {r.arch_hash for r in refs}
    rivals = sorted(
        (
            t
            for t in front
            if t.arch_hash not in own and any(dominates(t, r, objectives) for r in refs)
        ),
        key=lambda t: (-t.metrics.get("accuracy", 0.0), t.id),
    )
    if k > 0:
        rivals = rivals[:k]
    taken = {t.id for t in rivals}
    rest = [t for t in front if t.id not in taken]
    room = k - len(rivals) if k > 0 else len(rest)
    return rivals, (spread(rest, room, cost) if room > 0 else [])


def within_budget(
    rivals: list[Trial], rest: list[Trial], begun: list[Trial], spent: int, k: int
) -> tuple[list[Trial], list[Trial]]:
    """``pick``'s choice on a resumed final stage, held to ``k`` nets in all (0 = no limit).

    ``spent`` searched nets already have final trainings of this very final stage (begun
    before an interruption), and ``begun`` are those still on the front. Re-timing on resume
    may have reshaped the front, so the fresh pick can differ from the first: the begun nets
    are kept (what was paid for is not thrown away), and new ones take only what is left of
    ``k``."""
    if k <= 0 or spent == 0:
        return rivals, rest
    ids = {t.id for t in begun}
    fresh = [t for t in (*rivals, *rest) if t.id not in ids][: max(k - spent, 0)]
    keep = ids | {t.id for t in fresh}
    chosen = {t.id for t in (*rivals, *rest)}
    rest = [t for t in rest if t.id in keep] + [t for t in begun if t.id not in chosen]
    return [t for t in rivals if t.id in keep], rest


class FinalTrainer:
    """Runs final trainings into a study, resumably: a run already finished is never
    repeated, and one interrupted is run again under its own id and seed."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        evaluator: Evaluator,
        store: Store,
        study: Study,
        on_run: Callable[[Trial, int, int], None] | None = None,
        after_trials: int | None = None,
    ) -> None:
        self.cfg, self.evaluator, self.store, self.study = cfg, evaluator, store, study
        self.on_run = on_run
        # a search's final stage: how many search trials it follows (a resumed stage follows
        # as many, and its nets count against max_models; an extended search's is a new one)
        self.after_trials = after_trials

    def train(
        self,
        arch: Arch,
        parent: Trial | None,
        repeats: int,
        epochs: int | None = None,
        retry_failed: bool = False,
    ) -> list[Trial]:
        """``repeats`` final trainings of ``arch`` (of ``parent`` when it is a trial).
        ``retry_failed``: a run that failed before (out of memory, a NaN) is run again under
        its id, as ``hwnas train`` asked again means; a search's resumed final stage runs
        again only one that ran out of memory (what else held the device may be gone; at most
        ``_OOM_RETRIES`` times) and keeps the rest (the same seed diverges again)."""
        ev = self.evaluator
        space, estimator = ev.space, ev.estimator
        fc = self.cfg.final
        fidelity = estimator.fidelity(Fidelity(epochs=epochs or fc.epochs))
        h = space.arch_hash(arch)
        on_val = fc.train_on_val
        costs = (
            {
                k: v
                for k, v in parent.metrics.items()
                if k not in _OWN and not k.startswith("final_")
            }
            if parent is not None
            else None
        )
        # a run of another length, recipe (final.estimator changed on a resume) or split
        # (train_on_val) is another training, not this one done already: runs match on key
        identity = estimator.identity()
        runs = [
            t
            for t in self.store.trials()
            if t.stage == "final"
            and t.arch_hash == h
            and t.info.get("final_of") == (parent.id if parent else None)
        ]
        mine = {t.key: t for t in runs}
        # a run an older version left untrained (a supernet's or zero-cost score stood in for
        # the training, under that estimator's key, which this one no longer matches): this
        # run, trained under its id -- where the estimator trains (a table without a test
        # column has no test accuracy, rightly)
        stale = {t.info.get("repeat"): t for t in runs if _untrained(t)}
        done: list[Trial] = []
        for r in range(repeats):
            key = trial_key(h, identity, fidelity, _start(r, on_val))
            old = mine.get(key) or (stale.get(r) if estimator.needs_model else None)
            oom = old is not None and old.status == "failed" and _transient(old)
            untested = old is not None and _untrained(old) and estimator.needs_model
            again = old is not None and (
                old.status == "running"
                or (old.status == "failed" and retry_failed)
                or oom
                or untested
            )
            if old is not None and not again:
                done.append(old)
                continue
            trial = old or self._new(arch, parent, h, r, fidelity, on_val, identity)
            if old is None:
                self.store.start_trial(trial)
            else:
                what = "interrupted" if old.status == "running" else f"failed ({old.error})"
                log.info("re-running %s final training %d", what, trial.id)
                self.store.restart_trial(trial)
                trial.metrics, trial.curve = {}, []  # nothing of the run before is this one's
                trial.key, trial.fidelity = key, fidelity.to_dict()  # an untrained one's differ
                if oom and not retry_failed:
                    trial.info["oom_retries"] = trial.info.get("oom_retries", 0) + 1
            if costs is None:
                costs = ev.measure(arch, trial.seed)
            self._run(trial, fidelity, on_val, costs)
            done.append(trial)
            if self.on_run is not None:
                self.on_run(trial, r, repeats)
        if parent is not None:
            # every run of this recipe, not only the first `repeats`: asking for one run of a
            # net trained three times found the first done and summarised it alone
            more = [
                t
                for t in runs
                if t not in done
                and isinstance(t.info.get("repeat"), int)
                and t.key == trial_key(h, identity, fidelity, _start(t.info["repeat"], on_val))
            ]
            self._summarise(parent, [*done, *more])
        return done

    def _new(
        self,
        arch: Arch,
        parent: Trial | None,
        h: str,
        r: int,
        fidelity: Fidelity,
        on_val: bool,
        estimator_id: str,
    ) -> Trial:
        tid = self.store.next_id()
        return Trial(
            id=tid,
            arch=arch,
            arch_hash=h,
            status="running",
            seed=final_seed(self.cfg.seed, r),
            describe=self.evaluator.space.describe(arch),
            parent_id=parent.id if parent else None,
            info={
                "op": "final",
                "final_of": parent.id if parent else None,
                "repeat": r,
                "train": {"train_on_val": on_val},
                **({"after_trials": self.after_trials} if self.after_trials else {}),
            },
            fidelity=fidelity.to_dict(),
            stage="final",
            key=trial_key(h, estimator_id, fidelity, _start(r, on_val)),
        )

    def _run(self, trial: Trial, fidelity: Fidelity, on_val: bool, costs: dict[str, Any]) -> None:
        from hwnas.estimate.base import EstimateFailed

        ev = self.evaluator
        weights = self.study.weights_path(trial.id)
        t0 = time.perf_counter()
        try:
            model = ev.build(trial.arch, trial.seed)
            est = ev.estimator.estimate(
                ev.candidate(trial.arch, model),
                fidelity,
                seed=trial.seed,
                weights_path=weights,
                recipe={"train_on_val": True} if on_val else None,
            )
            tested = ev.test(trial.arch, trial.seed, weights)
        except (KeyboardInterrupt, SystemExit):
            raise
        except EstimateFailed as exc:
            trial.status, trial.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed final training is recorded
            trial.status, trial.error = "failed", f"{type(exc).__name__}: {exc}"
        else:
            trial.status = "complete"
            m = dict(est.metrics)
            own: dict[str, Any] = {k: m[k] for k in ("train_seconds", "epochs") if k in m}
            if not on_val and "accuracy" in m:  # honest validation: kept, under its own name
                own["final_val_accuracy"] = m["accuracy"]
            trial.metrics = {**costs, **own, **tested}
            trial.curve = est.curve
        trial.metrics.setdefault("wall_seconds", time.perf_counter() - t0)
        if trial.status == "failed":
            trial.metrics = {**costs, **trial.metrics}
        self.store.finish_trial(trial)
        log.info(
            "final %d of trial %s %s | test %s%s",
            trial.id,
            trial.info.get("final_of"),
            trial.status,
            trial.metrics.get("test_accuracy"),
            f" | {trial.error}" if trial.error else "",
        )

    def _summarise(self, parent: Trial, runs: list[Trial]) -> None:
        ok = [t for t in runs if t.status == "complete" and "test_accuracy" in t.metrics]
        if not ok:
            return
        summary: dict[str, Any] = {"final_runs": len(ok)}
        epochs = ok[0].fidelity.get("epochs")
        if epochs is not None:  # which runs the summary is of, when several lengths were run
            summary["final_epochs"] = epochs
        for key in ("test_accuracy", "test_accuracy_tta"):
            vals = [float(t.metrics[key]) for t in ok if key in t.metrics]
            if vals:
                summary[f"final_{key}"] = statistics.fmean(vals)
                if len(vals) > 1:  # one run has no spread to tell (0 would claim one)
                    summary[f"final_{key}_std"] = statistics.stdev(vals)
        if "tta_views" in ok[0].metrics:
            summary["tta_views"] = ok[0].metrics["tta_views"]
        for key in _SUMMARY:  # an earlier summary's figures are not these runs'
            parent.metrics.pop(key, None)
        parent.metrics.update(summary)
        self.store.update_metrics(parent.id, parent.metrics)


#: how the allocators say they ran out: CUDA's caching allocator (OutOfMemoryError, "CUDA
#: error: out of memory"), the estimator's own EstimateFailed, the CPU allocator's RuntimeError,
#: cuDNN and cuBLAS, Python's MemoryError
_OUT_OF_MEMORY = (
    "out of memory",
    "can't allocate memory",
    "not_enough_memory",
    "alloc_failed",
    "memoryerror",
)
#: a final run that keeps running out of memory (a net too large for the card) is not
#: retried on every resume for ever
_OOM_RETRIES = 2


def _untrained(trial: Trial) -> bool:
    """A final run stored complete without a test accuracy: a score stood in for training."""
    return trial.status == "complete" and "test_accuracy" not in trial.metrics


def _start(repeat: int, on_val: bool) -> str:
    """What a final run starts from, in its key: which repeat, on which split."""
    return json.dumps(["final", repeat, on_val])


def _transient(trial: Trial) -> bool:
    """A failure that another attempt may not meet: memory that others held (retried at
    most ``_OOM_RETRIES`` times)."""
    error = (trial.error or "").lower()
    return any(s in error for s in _OUT_OF_MEMORY) and (
        trial.info.get("oom_retries", 0) < _OOM_RETRIES
    )
