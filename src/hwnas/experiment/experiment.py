"""The search loop: ask the strategy, answer duplicates from the store, evaluate, tell, commit.

Resumption is exact. The strategy's state is committed with each trial's start (after the ask)
and end (after the tell); a trial found ``running`` on start-up was interrupted and is
evaluated again with the same arch and seed, after which the loop continues as if nothing had
happened. The budget counts distinct evaluations: an arch whose canonical hash is already in
the store is answered from it and costs nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from hwnas.core.errors import ConfigError
from hwnas.core.fidelity import Fidelity, trial_key
from hwnas.core.metrics import base_name, fmt_number
from hwnas.core.pareto import pareto_indices
from hwnas.core.threads import torch_threads_kept
from hwnas.estimate.resume import SCHEDULE_KEYS, state_path
from hwnas.experiment.config import ExperimentConfig, validate_config
from hwnas.experiment.evaluate import unused_data
from hwnas.experiment.final import time_side_by_side
from hwnas.experiment.lock import StudyLock
from hwnas.experiment.store import Store, StoreError, Trial, holds_tables
from hwnas.experiment.study import (
    Study,
    is_feasible,
    pareto_front,
    stored_config,
    superseded,
)
from hwnas.hardware.host_load import others_training, training
from hwnas.strategy.base import Proposal

log = logging.getLogger("hwnas")

MAX_DUPLICATE_STREAK = 500  # asks in a row that only found known archs: the space is exhausted
#: pareto.json is rewritten when the front changes, else at most this often (and at the end):
#: on a tabular search, writing it after every trial was most of hwnas's time per trial
PARETO_WRITE_SECONDS = 1.0


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C (or sent SIGTERM); everything finished is saved. A
    ``KeyboardInterrupt``, so a caller's ``except KeyboardInterrupt`` hears it and an
    ``except Exception`` does not swallow it."""

    def __init__(self) -> None:
        super().__init__("interrupted: finished trials are saved; the same call resumes")


@dataclass
class SearchResult:
    out_dir: Path
    trials: list[Trial]
    pareto: list[Trial]
    report: Path | None
    stopped: str  # budget | time | exhausted | strategy | device (the board stopped answering)
    summary: dict[str, Any]


def trial_seed(seed: int, trial_id: int) -> int:
    return (seed * 1_000_003 + trial_id * 7_919) % (2**31 - 1)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def config_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> list[str]:
    """``key: old -> new`` for the first ``limit`` keys that differ, so a refusal says why:
    a section's kind first (its other keys follow from it and are left out), then values
    both configs set, then keys only one of them has (a newer version's defaults)."""
    a, b = _flat(old), _flat(new)
    keys = [k for k in a.keys() | b.keys() if k not in a or k not in b or a[k] != b[k]]
    kinds = {k[: -len(".name")] for k in keys if k.endswith(".name") and k in a and k in b}
    keys = [k for k in keys if not any(k.startswith(f"{p}.") and k != f"{p}.name" for p in kinds)]
    keys.sort(key=lambda k: (not k.endswith(".name"), k not in a or k not in b, k))

    def show(d: dict[str, Any], k: str) -> str:
        text = json.dumps(d[k]) if k in d else "unset"
        return text if len(text) <= 60 else text[:57] + "..."  # e.g. a whole list of stages

    shown = [f"{k}: {show(a, k)} -> {show(b, k)}" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"{len(keys) - limit} more")
    return shown


#: longest file or folder name most file systems take (ext4, xfs, apfs, ntfs: 255 bytes)
NAME_MAX = 255


def check_names(out_dir: Path) -> None:
    """Refuse a folder name longer than file systems take, before any path call trips on it."""
    longest = max((len(os.fsencode(p)) for p in out_dir.parts), default=0)
    if longest > NAME_MAX:
        raise ConfigError(
            f"--out: a folder name is {longest} bytes long; the file system allows {NAME_MAX}"
        )


def check_dir(cfg: ExperimentConfig, out_dir: Path, force: bool) -> bool:
    """Refuse an ``--out`` that is a file or holds a different experiment (unless ``force``);
    True when the study there must be moved aside. Writes nothing; a config that names no
    budget takes the budget of the study it resumes (not the default's: dropping ``--budget``
    from the resume command would otherwise extend the search)."""
    check_names(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: is a file, not a directory")
    for name in (Store.FILENAME, "hwnas.log", "pareto.json", "report.html", ".lock", "weights"):
        path = out_dir / name
        if path.exists() and path.is_dir() != (name == "weights"):
            what = "a directory" if path.is_dir() else "a file"
            raise ConfigError(
                f"--out {out_dir}: {name} is {what}; a study writes its own {name} there"
            )
    db_path = out_dir / Store.FILENAME
    if not db_path.exists() or not holds_tables(db_path):
        return False
    with Store(db_path, readonly=True) as store:
        stored = store.get_meta_json("config")
        try:
            old = stored_config(store.path, stored) if stored is not None else None
        except StoreError as exc:  # a config this version cannot read: --force starts over
            if force:
                return True
            raise ConfigError(
                f"{exc}; use another --out or --force (the old study is kept as a backup)"
            ) from None
        changed = config_changes(old.identity(), cfg.identity()) if old is not None else []
        if old is not None and not changed and "budget" not in cfg.model_fields_set:
            cfg.budget = old.budget
        elif old is not None and not changed and cfg.budget.trials < old.budget.trials:
            spent = _spent(store.trials())
            if spent > cfg.budget.trials:  # it would be stored as the study's budget
                raise ConfigError(
                    f"budget: {cfg.budget.trials} is below the {spent} trials the study in "
                    f"{out_dir} has run; give {spent} or more to go on (or omit it)"
                )
        # every trial is read only when the config changed, not on each resume
        if changed and not force and holds_work(out_dir, store):
            raise ConfigError(
                f"{out_dir} holds a different experiment's config ({'; '.join(changed)}); "
                "use another --out or --force (the old study is kept as a backup)"
            )
    return bool(changed)


def holds_work(out_dir: Path, store: Store) -> bool:
    """Whether a study holds anything a run made: a finished trial, a training's weights
    or state, a one-shot phase's supernet, a prefilter's scores. A run stopped or refused
    before its first trial finished leaves none, and a corrected command may then start
    over without ``--force`` (the old file is still kept as a backup)."""
    return (
        any(t.status != "running" for t in store.trials())
        or any((out_dir / "weights").glob("*"))
        or any((out_dir / "supernet").glob("*"))
        or store.get_meta_json("prefilter") is not None
    )


def backup_name(out_dir: Path) -> Path:
    """A backup name no earlier backup has (two --force in one second keep both)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = out_dir / f"study-{stamp}.db.bak"
    n = 1
    while any(Path(str(backup) + s).exists() for s in ("", ".weights")):
        n += 1
        backup = out_dir / f"study-{stamp}-{n}.db.bak"
    return backup


def prepare_dir(
    cfg: ExperimentConfig, out_dir: Path, force: bool, said: Callable[[str], None] | None = None
) -> Store:
    """Open or create DIR/study.db; refuse a directory that holds a different experiment
    (with ``force``, move its study aside as a backup, told to ``said``) and record this
    run's config."""
    replace = check_dir(cfg, out_dir, force)
    try:  # what is stored must read back: a study whose config does not is lost to every command
        validate_config(cfg.to_json_dict())
    except ConfigError as exc:
        raise ConfigError(f"config: does not read back as stored ({exc}); a bug of hwnas") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / Store.FILENAME
    if replace:  # with --force, or a study with nothing in it (check_dir)
        backup = backup_name(out_dir)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(db_path) + suffix)
            if src.exists():
                src.rename(Path(str(backup) + suffix))
        if (out_dir / "weights").exists():
            shutil.move(out_dir / "weights", Path(str(backup) + ".weights"))
        if said is not None and backup.exists():
            said(f"the study that was in {out_dir} is kept as {backup}")
    store = Store(db_path)
    store.set_meta("config", cfg.to_json_dict())
    # relative paths in the config are read from here: show/report/export elsewhere use it
    store.set_meta("start_dir", os.getcwd())
    return store


class Experiment:
    """One search in one directory. ``run`` may be called again on the same directory."""

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | Path,
        *,
        force: bool = False,
        on_trial: Callable[[Trial, dict[str, Any]], None] | None = None,
        on_start: Callable[[dict[str, Any]], None] | None = None,
        on_phase: Callable[[str, int, int], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = config
        self.dir = Path(out_dir)
        self.force = force
        self._evaluator: Any = None  # its cost models are closed when the search ends
        self._kit: Any = None  # a one-shot strategy's supernet kit, built with the evaluator
        self.on_trial = on_trial
        self.on_start = on_start  # called once set-up (data, space, store) has succeeded
        self.on_phase = on_phase  # a one-shot strategy's phases before the first trial
        self.on_warning = on_warning  # a warning said before the search starts (one-shot)
        self._warned: list[str] = []  # ... not said again by on_start
        self._counted: list[str] = []  # constraints on a count no net drawn meets
        self._rerun: set[int] = set()  # trials lost on the device, not yet started again
        self.objectives = [(o.metric, o.direction) for o in config.objectives]

    # ---------------------------------------------------------------- plumbing
    def _setup_logging(self) -> logging.Handler:
        handler = logging.FileHandler(self.dir / "hwnas.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        return handler

    @torch_threads_kept()
    def run(self) -> SearchResult:
        # everything that can refuse the user's input comes before the first write: a start
        # that fails leaves no study behind to refuse the corrected command as "different"
        check_names(self.dir)
        lock = StudyLock(self.dir)
        if self.dir.is_dir():  # another writer may be creating the study: say so, first
            lock.acquire()
        try:
            check_dir(self.cfg, self.dir, self.force)
        except BaseException:
            lock.release()
            raise
        try:
            parts = self._build()
            if not lock.held:  # only now: a refused start creates no directory
                self.dir.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            store = prepare_dir(self.cfg, self.dir, self.force, self.on_warning)
            lock.announce()
        except BaseException:
            lock.release()
            if self._evaluator is not None:
                self._evaluator.close()
            raise
        handler = self._setup_logging()
        previous = signal.getsignal(signal.SIGTERM)

        def _term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _term)
        try:
            return self._run(store, *parts)
        except KeyboardInterrupt:
            log.info("interrupted: finished trials are saved; the same command resumes")
            raise Interrupted() from None
        finally:
            if self._evaluator is not None:
                self._evaluator.close()
            signal.signal(signal.SIGTERM, previous)
            log.removeHandler(handler)
            handler.close()
            store.close()
            lock.release()

    def _build(self) -> tuple[Any, Any, Any, Any]:
        """Evaluator (data, space, estimator, cost models), strategy, pruner and scheduler,
        each from its own section; any bad input is a one-line error here."""
        from hwnas.core.registry import pruners, schedulers
        from hwnas.experiment.evaluate import build_evaluator
        from hwnas.strategy import make_strategy

        cfg = self.cfg
        evaluator = self._evaluator = build_evaluator(cfg)
        for source in evaluator.sources:  # a board that does not answer: refused up front
            source.model.check()
        evaluator.estimator.check(evaluator.space, evaluator.input_shape, evaluator.num_classes)
        space = evaluator.estimator.search_space(evaluator.space)
        strategy = make_strategy(cfg.strategy, space, self.objectives, cfg.seed)
        if evaluator.knows_costs and space is evaluator.space:
            strategy.known_costs = evaluator.known_costs
            strategy.constraints = list(cfg.constraints)
        if cfg.constraints and space is evaluator.space and not strategy.one_shot:
            # a constraint on a count: nets that break it are drawn again, not pruned one
            # trial at a time (a build per draw; a one-shot strategy derives its nets)
            probe = evaluator.built_costs(space.sample(random.Random(0))) or {}
            if any(c.metric in probe for c in cfg.constraints):
                strategy.built_costs = evaluator.built_costs
                strategy.constraints = list(cfg.constraints)
        try:
            pruner = pruners.create(cfg.pruner, self.objectives)
            scheduler = schedulers.create(
                cfg.scheduler, self.objectives, evaluator.estimator.default_fidelity().epochs
            )
        except ValueError as exc:
            raise ConfigError(f"config: {exc}") from None
        if strategy.one_shot:  # refused here, before the study is written
            self._kit = self._supernet_kit(evaluator)
            strategy.check(self._kit)
        if scheduler.warm_start and not evaluator.estimator.needs_model:
            scheduler.warm_start = False  # no weights to go on from: promotions start afresh
        return evaluator, strategy, pruner, scheduler

    def _run(
        self, store: Store, evaluator: Any, strategy: Any, pruner: Any, scheduler: Any
    ) -> SearchResult:
        from hwnas.experiment.evaluate import Job, Outcome
        from hwnas.experiment.executor import make_executor
        from hwnas.strategy import Result, StrategyDone, StrategyWaiting

        cfg = self.cfg
        estimator, space = evaluator.estimator, evaluator.space
        io = evaluator.model_io()
        if io is not None:
            if store.next_id():  # a study's data must stay those its nets were trained on
                evaluator.check_same_data(store.get_meta_json("model_io"))
            store.set_meta("model_io", io)
        estimator_id = estimator.identity()
        state = store.get_meta_json("strategy_state")
        if state is not None:
            strategy.load_state(state)
        if strategy.built_costs is not None:  # a strategy that draws again (not nash), of a
            # study begun since: a bound no net drawn meets is said, and not drawn towards
            if strategy.weigh_built and strategy.weighs_known_costs():
                self._counted = _out_of_reach(evaluator, space, list(cfg.constraints))
            if self._counted or not strategy.weigh_built:
                strategy.built_costs = None
        priced = strategy.known_costs is not None or strategy.built_costs is not None
        if priced and strategy.weighs_known_costs():
            log.info(
                "costs known before training (a table, a predictor, a net's counts) are "
                "weighed by the strategy"
            )
        study = Study(self.dir)
        existing = store.trials()
        self._identify(store, existing, estimator)
        trials = existing  # kept in step with the store: no re-reading per trial
        log.info(
            "search %s: %s space (%d archs), %s strategy, target %s, budget %d, %d trials stored",
            self.dir,
            space.name,
            space.size(),
            strategy.name,
            cfg.target.name,
            cfg.budget.trials,
            len(existing),
        )
        # an interrupted final training is re-run by the final stage, not as a search trial
        pending = [t for t in existing if t.status == "running" and t.stage != "final"]
        # so is one that failed because the board did not answer: its net was never judged
        lost = {t.id for t in existing if _lost_on_device(t)}
        self._rerun = set(lost)  # not spent until they run again (the progress count)
        pending += [t for t in existing if t.id in lost]
        by_key = {
            t.key: t for t in reversed(existing) if t.status != "running" and t.id not in lost
        }
        # completed trials by net: a proposal of one trained at least as long is answered
        by_arch: dict[str, list[Trial]] = {}
        for t in existing:
            if t.status == "complete":
                by_arch.setdefault(t.arch_hash, []).append(t)
        for t in existing:
            if t.status != "running" and t.id not in lost:
                pruner.observe(t)
                scheduler.observe(t)
            else:
                scheduler.launched(t)
        if strategy.one_shot:  # trains its supernet (or resumes it) before the first ask
            self._kit.save = store.set_meta
            began = time.monotonic()
            try:  # the supernet trains here: other processes' latency readings must know
                with training():
                    strategy.prepare(self._kit)
            finally:  # what the one-shot phase cost in all (cost tables, supernet, deriving),
                # across calls: an interrupted one's time counts too
                before = float(store.get_meta_json("oneshot_seconds") or 0.0)
                store.set_meta("oneshot_seconds", before + time.monotonic() - began)
        warm, threshold = self._prefilter(store, evaluator, existing)
        task = getattr(evaluator.estimator, "task", None)
        data = getattr(task, "dataset", None)
        warnings = (
            (list(data.warnings) if data is not None else [])
            + evaluator.estimator.warnings()
            + self._counted
            + unused_data(self.cfg, loaded=data is not None)
            + self.cfg.capacity_notes()
        )
        for w in warnings:
            log.warning("%s", w)
        # logged by the strategy; one said when it was found is not said again
        warnings += [w for w in strategy.warnings() if w not in self._warned]
        if self.on_start:
            self.on_start({**self._progress(existing), "warnings": warnings})
        start = time.monotonic()
        # budget.minutes counts the whole search, across resumptions
        spent_before = float(store.get_meta_json("search_seconds") or 0.0)
        duplicate_streak = filtered_streak = 0
        stopped = "budget"

        front = pareto_front(existing, self.objectives)
        written: tuple[list[int], float] | None = None  # front ids and time of the last write
        executor = make_executor(cfg, evaluator)
        inflight: dict[Future[Outcome], Trial] = {}
        deferred: dict[str, list[Any]] = {}  # trial key in flight -> archs asked for again

        def launch(trial: Trial) -> None:
            weights = study.weights_path(trial.id) if estimator.needs_model else None
            inherit = None
            if trial.info.get("inherit"):
                pid = trial.info["inherit"]["trial"]
                parent = next(t for t in trials if t.id == pid)
                inherit = {
                    "arch": parent.arch,
                    "weights": study.weights_path(pid),
                    "morphs": trial.info["inherit"]["morphs"],
                }
            fidelity = Fidelity.from_dict(trial.fidelity)
            filtered = trial.stage == "search" and trial.info.get("op") not in (
                "warm_start",
                "promote",
            )
            job = Job(
                trial.arch,
                trial.seed,
                weights,
                inherit,
                fidelity,
                _recipe(trial.info.get("train")),
                pruner.rule(fidelity),
                threshold if filtered else None,
            )
            inflight[executor.submit(job)] = trial

        def finish(trial: Trial, outcome: Outcome) -> None:
            nonlocal front, written, filtered_streak, stopped
            trial.status, trial.metrics, trial.curve = (
                outcome.status,
                outcome.metrics,
                outcome.curve,
            )
            trial.error = outcome.error
            if outcome.prune_reason is not None:
                trial.info = {**trial.info, "prune_reason": outcome.prune_reason}
            if outcome.stopped_at_epoch is not None:
                trial.info = {**trial.info, "stopped_at_epoch": outcome.stopped_at_epoch}
            filtered_streak = filtered_streak + 1 if outcome.prune_reason == "prefilter" else 0
            if filtered_streak >= MAX_DUPLICATE_STREAK and stopped == "budget":
                stopped = "exhausted"  # the strategy keeps proposing what the filter rejects
                log.info("prefilter: %d proposals in a row rejected; stopping", filtered_streak)
            told = _told_fidelity(trial)
            strategy.tell(
                Result(trial.id, trial.arch, trial.status, trial.metrics, outcome.feasible, told)
            )
            for arch in deferred.pop(trial.key or "", []):  # asked again while it was running
                strategy.tell(
                    Result(
                        trial.id,
                        arch,
                        trial.status,
                        _search_metrics(trial),
                        is_feasible(trial),
                        told,
                    )
                )
            spent = spent_before + time.monotonic() - start
            store.finish_trial(trial, strategy.state(), {"search_seconds": spent})
            resumed = (trial.info.get("train") or {}).get("start_epoch")
            if resumed and trial.status == "complete" and trial.info.get("inherit"):
                # the paused run it went on from is promoted once: its state has served
                state_path(study.weights_path(trial.info["inherit"]["trial"])).unlink(
                    missing_ok=True
                )
            by_key[trial.key] = trial
            if trial.status == "complete":
                by_arch.setdefault(trial.arch_hash, []).append(trial)
            pruner.observe(trial)
            scheduler.observe(trial)
            log.info(
                "trial %d %s %s | %s",
                trial.id,
                trial.status,
                trial.describe,
                json.dumps(
                    {
                        k: round(v, 5) if isinstance(v, float) else v
                        for k, v in trial.metrics.items()
                    }
                )
                + (f" | {trial.error}" if trial.error else ""),
            )
            if trial.status == "complete" and trial.info.get("promoted_from") is not None:
                front = pareto_front(trials, self.objectives)  # its source leaves the front
            elif is_feasible(trial):  # the front of (front + new) is the front of all trials
                front = pareto_front([*front, trial], self.objectives)
            ids = [t.id for t in front]
            now = time.monotonic()
            if written is None or ids != written[0] or now - written[1] >= PARETO_WRITE_SECONDS:
                study.write_pareto_json(trials, front)
                written = (ids, now)
            if self.on_trial:
                self.on_trial(trial, self._progress(trials, front))

        def start_of(info: dict[str, Any]) -> str | None:
            """What a trial that inherits weights starts from (part of its key): the parent's
            key and the morphisms; None for a trial trained from scratch."""
            inherit = info.get("inherit")
            if not inherit:
                return None
            parent = next(t for t in trials if t.id == inherit["trial"])
            return json.dumps([parent.key, inherit.get("morphs", [])], sort_keys=True)

        def scheduled(proposal: Proposal, fidelity: Fidelity) -> Proposal:
            """The proposal with the scheduler's recipe keys for its fidelity (a rung paused
            on the top rung's schedule) beside the strategy's own; none where the strategy
            chose the fidelity or the weights itself (NASH's steps are no rungs)."""
            if proposal.fidelity is not None or proposal.info.get("inherit"):
                return proposal
            extra = scheduler.train(fidelity)
            if not extra:
                return proposal
            train = {**(proposal.info.get("train") or {}), **extra}
            return replace(proposal, info={**proposal.info, "train": train})

        def new_trial(proposal: Any, fidelity: Fidelity, h: str, key: str) -> Trial:
            tid = trials[-1].id + 1 if trials else 0
            return Trial(
                id=tid,
                arch=proposal.arch,
                arch_hash=h,
                status="running",
                seed=trial_seed(cfg.seed, tid),
                describe=space.describe(proposal.arch),
                parent_id=proposal.parent_id,
                info=proposal.info,
                fidelity=fidelity.to_dict(),
                stage=proposal.stage,
                key=key,
            )

        def next_trial(promotions_only: bool = False) -> Trial | None:
            """A new trial: a promotion, else (unless ``promotions_only``) the strategy's;
            None when it must wait or the search stops."""
            nonlocal duplicate_streak, stopped
            promo = scheduler.promotion()
            if promo is not None:
                h = space.arch_hash(promo.arch)
                fidelity = estimator.fidelity(promo.fidelity)
                info: dict[str, Any] = {
                    "op": "promote",
                    "rung": promo.rung,
                    "promoted_from": promo.trial_id,
                }
                if promo.warm_start:  # goes on from the promoted trial's weights
                    info["epochs_total"] = promo.epochs_total
                    info["inherit"] = {"trial": promo.trial_id, "morphs": []}
                if promo.train:  # where its rung paused the schedule
                    info["train"] = promo.train
                key = trial_key(h, estimator_id, fidelity, start_of(info), _keyed(promo.train))
                proposal = Proposal(promo.arch, parent_id=promo.trial_id, info=info)
                trial = new_trial(proposal, fidelity, h, key)
                scheduler.launched(trial)
                if key not in by_key and not any(t.key == key for t in inflight.values()):
                    return trial
            if promotions_only:
                return None
            while warm:  # the prefilter's best-scored archs first: the strategy learns of them
                proposal = Proposal(warm.pop(0), info={"op": "warm_start"})
                h = space.arch_hash(proposal.arch)
                fidelity = estimator.fidelity(scheduler.fidelity(None))
                proposal = scheduled(proposal, fidelity)
                key = trial_key(h, estimator_id, fidelity, None, _keyed(proposal.info.get("train")))
                if key not in by_key and not any(t.key == key for t in inflight.values()):
                    return new_trial(proposal, fidelity, h, key)
            while True:
                try:
                    proposal = strategy.ask()
                except StrategyWaiting:
                    if not inflight:
                        raise RuntimeError(
                            f"{strategy.name}: waits with nothing in flight"
                        ) from None
                    return None
                except StrategyDone as exc:
                    stopped = "strategy"
                    log.info("%s", exc)
                    return None
                h = space.arch_hash(proposal.arch)
                try:
                    fidelity = estimator.fidelity(scheduler.fidelity(proposal.fidelity))
                except ValueError as exc:
                    raise ConfigError(f"config: {strategy.name}: {exc}") from None
                proposal = scheduled(proposal, fidelity)
                key = trial_key(
                    h,
                    estimator_id,
                    fidelity,
                    start_of(proposal.info),
                    _keyed(proposal.info.get("train")),
                )
                # a net that inherits trained weights is new even if its graph was seen before
                inherits = bool(proposal.info.get("inherit"))
                known = (
                    None
                    if inherits
                    else by_key.get(key) or _judged_longer(by_arch.get(h, []), fidelity)
                )
                running = not inherits and any(t.key == key for t in inflight.values())
                if known is None and not running:
                    duplicate_streak = 0
                    return new_trial(proposal, fidelity, h, key)
                duplicate_streak += 1
                if duplicate_streak >= MAX_DUPLICATE_STREAK:
                    stopped = "exhausted"
                    log.info("space exhausted: %d asks in a row were known archs", duplicate_streak)
                    return None
                if known is None:  # being evaluated now: its result answers this ask too
                    deferred.setdefault(key, []).append(proposal.arch)
                    continue
                strategy.tell(
                    Result(
                        known.id,
                        known.arch,
                        known.status,
                        _search_metrics(known),
                        is_feasible(known),
                        _told_fidelity(known),
                    )
                )

        # the budget counts the search stage; final models (NASH's last net) come on top
        finished = _spent([t for t in trials if t.id not in lost])
        device_streak = 0  # trials in a row that failed on the remote device, not the net
        try:
            while True:
                # fill the executor: interrupted trials first (same arch, same seed), then asks
                while len(inflight) < executor.workers and stopped == "budget":
                    if pending:
                        trial = pending.pop(0)
                        if trial.id in lost:
                            log.info("re-running trial %d: the device did not answer", trial.id)
                        else:
                            log.info("re-running interrupted trial %d", trial.id)
                        store.restart_trial(trial)
                        self._rerun.discard(trial.id)
                        launch(trial)
                        continue
                    searching = sum(_counts(t) for t in inflight.values())
                    # the budget counts distinct networks: a promotion re-evaluates one at a
                    # higher fidelity, so once the budget is spent only promotions go on
                    spent = finished + searching >= cfg.budget.trials
                    if (
                        cfg.budget.minutes is not None
                        and spent_before + time.monotonic() - start > 60 * cfg.budget.minutes
                    ):
                        stopped = "time"
                        break
                    new = next_trial(promotions_only=spent)
                    if new is None:
                        break
                    store.start_trial(new, strategy.state())
                    trials.append(new)
                    scheduler.launched(new)  # Hyperband deals the next arch by what is dealt
                    launch(new)
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: inflight[f].id):
                    trial = inflight.pop(fut)
                    finish(trial, fut.result())
                    finished += _counts(trial)
                    gone = trial.status == "failed" and _device_failure(trial.error)
                    device_streak = device_streak + 1 if gone else 0
                    if device_streak >= MAX_DEVICE_FAILURES and stopped == "budget":
                        # a board that stopped answering would fail the rest of the budget
                        stopped = "device"
                        log.warning(
                            "%d trials in a row failed on the device (%s): the search stops; "
                            "the same command goes on once it answers",
                            device_streak,
                            trial.error,
                        )
        except BaseException:
            executor.shutdown(cancel=True)
            raise
        executor.shutdown(cancel=False)

        # a board that stopped answering would fail the re-timing and the final stage too:
        # they come when the same command goes on
        if stopped != "device":
            # several workers time candidates on the hardware others are training on (or another
            # study trained on this host, `latency_busy`): any reading may be inflated, so the
            # quiet machine decides again what those readings decided
            contended = executor.workers > 1 or any(
                t.metrics.get("latency_busy") for t in store.trials() if t.stage in SEARCHED
            )
            timers = latency_timers(self.cfg, evaluator)
            # once per set of finished candidates: the same command run again on a finished
            # search must change nothing, and each pass would add readings (keeping the lowest)
            # and could reshape the front, and with it the final stage's choice
            finished_now = sum(
                t.stage in SEARCHED and t.status != "running" for t in store.trials()
            )
            if store.get_meta_json("retimed_after") != finished_now:
                if contended and self._bounded_latencies(evaluator):
                    self._recheck_pruned(store, evaluator, study)
                here = {m for m, (_, local, _) in timers.items() if local}
                for metric, (read, local, tol) in timers.items():
                    everything = local and contended
                    self._retime_front(store, evaluator, read, metric, tol, everything, here)
                store.set_meta("retimed_after", finished_now)

            trials = store.trials()
            front = pareto_front(trials, self.objectives)
            self._test_final(store, evaluator, front, study)
            if cfg.final.repeats:
                self._train_final(store, evaluator, front, study)
                side_by_side = {m: read for m, (read, _, _) in timers.items()}
                time_side_by_side(store, evaluator, side_by_side, cfg.final.timing_rounds)
        else:
            front = pareto_front(store.trials(), self.objectives)
        trials = store.trials()
        study.write_pareto_json(trials)
        log.info("done (%s): %d trials, Pareto front %d", stopped, len(trials), len(front))
        summary = study.summary(trials)
        for metric, fig in summary.get("surrogate", {}).items():
            log.info(
                "surrogate, held out (%d archs it picked): %s Spearman %s, mean abs error %g",
                fig["n"],
                metric,
                fig["spearman"],
                fig["mae"],
            )
        front = study.pareto(trials)
        study.close()
        return SearchResult(self.dir, trials, front, None, stopped, summary)

    def _prefilter(
        self, store: Store, evaluator: Any, existing: list[Trial]
    ) -> tuple[list[Any], float | None]:
        """The archs to train first (the best-scored of a random sample, not yet trialled)
        and the score below which a later proposal is not trained; the sample's scores are
        kept in the study (meta ``prefilter``), so a resumed search does not score again."""
        pf = self.cfg.prefilter
        if pf.proxy is None:
            return [], None
        space = evaluator.space
        meta = store.get_meta_json("prefilter")
        if meta is None:
            rng = random.Random(self.cfg.seed + 17)
            scored: list[dict[str, Any]] = []
            seen, t0 = set(), time.monotonic()
            for _ in range(pf.sample * 10):
                if len(scored) >= pf.sample:
                    break
                arch = space.sample(rng)
                h = space.arch_hash(arch)
                if h in seen:
                    continue
                seen.add(h)
                try:
                    score = evaluator.proxy_score(arch, self.cfg.seed)
                except Exception as exc:  # noqa: BLE001 - an unscorable arch is left out
                    log.debug("prefilter: %s not scored: %s", space.describe(arch), exc)
                    continue
                if math.isfinite(score):
                    scored.append({"arch": arch, "score": score})
            meta = {"proxy": pf.proxy, "scored": scored, "seconds": time.monotonic() - t0}
            store.set_meta("prefilter", meta)
            log.info(
                "prefilter: %d archs scored by %s in %.1f s", len(scored), pf.proxy, meta["seconds"]
            )
        scores = sorted(s["score"] for s in meta["scored"])
        threshold = None
        if pf.below > 0 and scores:
            threshold = scores[min(len(scores) - 1, int(pf.below * len(scores)))]
        done = {t.arch_hash for t in existing}
        best = sorted(meta["scored"], key=lambda s: -s["score"])[: pf.keep]
        return [s["arch"] for s in best if space.arch_hash(s["arch"]) not in done], threshold

    def _supernet_kit(self, evaluator: Any) -> Any:
        """What a one-shot strategy trains on: the evaluator's data and device, the space,
        the lookup-table settings of every runtime a latency metric may name."""
        from hwnas.hardware.config import DeviceTarget
        from hwnas.hardware.lut import lut_of
        from hwnas.oneshot.kit import SupernetKit

        cfg = self.cfg
        luts: dict[str, Any] = {}
        devices: dict[str, Any] = {}
        tabled: set[str] = set()
        # in the evaluator's order, so that a metric two sources give is priced by the one
        # whose figure the trials store (the later one)
        for _, src in cfg.sources():
            label = getattr(src, "label", None)
            at = f"@{label}" if label else ""
            names = src.metric_names()  # None: the source cannot say in advance
            if isinstance(src, DeviceTarget):  # a datasheet model: blocks estimated, not timed
                for m in (f"latency_ms{at}", f"energy_mj{at}"):
                    if names is None or m in names:  # not one its `provides` leaves out
                        devices[m] = src
                        luts.pop(m, None)
                        tabled.discard(m)
                continue
            lut = lut_of(src)
            if lut is None:
                continue
            given = names if names is not None else {f"latency_ms{at}"}
            timed = [m for m in sorted(given) if base_name(m) == "latency_ms"]
            for m in timed:  # e.g. a command's `metric: latency_ms@board`
                luts[m] = lut
                devices.pop(m, None)
                if lut is src:  # the table is the source: its figures are predictions
                    tabled.add(m)
                else:
                    tabled.discard(m)
        if evaluator.input_shape is None or evaluator.num_classes is None:
            raise ConfigError(f"strategy: {cfg.strategy.name} trains a supernet: it needs data")
        return SupernetKit(
            task=evaluator.estimator.task,
            space=evaluator.space,
            input_shape=evaluator.input_shape,
            num_classes=evaluator.num_classes,
            cfg=cfg.supernet,
            directory=self.dir / "supernet",
            seed=cfg.seed,
            constraints=list(cfg.constraints),
            luts=luts,
            devices=devices,
            tabled=tabled,
            price=lambda arch, metric=None: evaluator.measure(arch, cfg.seed, only=metric),
            report=self.on_phase,
            warn=self._warn_early if self.on_warning is not None else None,
        )

    def _warn_early(self, text: str) -> None:
        self._warned.append(text)
        if self.on_warning is not None:
            self.on_warning(text)

    @staticmethod
    def _identify(store: Store, trials: list[Trial], estimator: Any) -> None:
        """Give trials of a study from before trial keys (schema 1) their fidelity and key:
        they ran at the estimator's settings, with a proposal's epochs where it set them."""
        estimator_id = estimator.identity()
        for t in trials:
            if t.key is not None:
                continue
            epochs = (t.info.get("train") or {}).get("epochs")
            fidelity = estimator.fidelity(Fidelity(epochs=epochs))
            t.fidelity, t.key = fidelity.to_dict(), trial_key(t.arch_hash, estimator_id, fidelity)
            if t.info.get("nash", {}).get("final"):
                t.stage = "final"
            store.set_identity(t)

    def _progress(self, trials: list[Trial], front: list[Trial] | None = None) -> dict[str, Any]:
        # as the budget counts: `hwnas train`'s runs come on top, a trial that failed on the
        # device counts once it has run again (counted before, its re-run repeated a count)
        done = _spent([t for t in trials if t.id not in self._rerun])
        accs = [t.metrics["accuracy"] for t in trials if is_feasible(t) and "accuracy" in t.metrics]
        return {
            "done": done,
            "total": self.cfg.budget.trials,
            "best_accuracy": max(accs) if accs else None,
            "pareto_size": len(pareto_front(trials, self.objectives) if front is None else front),
        }

    def _bounded_latencies(self, evaluator: Any) -> list[str]:
        """The latency metrics (``latency_ms``, ``latency_ms@label``) under a constraint that
        are read on this machine, where other trainings can inflate a reading."""
        metrics = {c.metric for c in self.cfg.constraints if base_name(c.metric) == "latency_ms"}
        timers = {m: latency_timer(self.cfg, evaluator, m) for m in sorted(metrics)}
        return [m for m, t in timers.items() if t is not None and t[1]]

    def _recheck_pruned(self, store: Store, evaluator: Any, study: Study) -> list[int]:
        """Evaluate again, now that no worker trains, every trial pruned by latency bounds
        alone (any latency read on this machine, labelled or not): a reading may have been
        inflated by the others. One that now meets every constraint is trained and completes;
        the rest stay pruned, each latency keeping its lower reading. Returns the ids that
        completed."""
        from hwnas.experiment.evaluate import Job, violated

        latencies = self._bounded_latencies(evaluator)
        others = [c for c in self.cfg.constraints if c.metric not in latencies]
        if not latencies:
            return []
        revived = []
        for t in store.trials("pruned"):
            if (
                t.info.get("inherit")
                or t.info.get("prune_reason", "constraint") != "constraint"
                or violated(others, t.metrics)
            ):
                continue  # pruned for another reason, or needs a parent's weights
            first = {m: t.metrics[m] for m in latencies if m in t.metrics}
            out = evaluator(
                Job(
                    t.arch,
                    t.seed,
                    study.weights_path(t.id) if evaluator.estimator.needs_model else None,
                    fidelity=Fidelity.from_dict(t.fidelity),  # what the strategy asked for
                    recipe=_recipe(t.info.get("train")),
                )
            )
            if out.status == "pruned":
                lower = {m: min(v, out.metrics.get(m, v)) for m, v in first.items()}
                if lower != first:
                    # each latency keeps its lower reading (noise only adds time), and a
                    # first reading kept keeps its flag
                    kept_first = any(
                        v == first[m] and v < out.metrics.get(m, math.inf) for m, v in lower.items()
                    )
                    busy = t.metrics.get("latency_busy")
                    t.metrics = {**out.metrics, **lower}
                    if kept_first and busy:
                        t.metrics["latency_busy"] = busy
                    t.error = "; ".join(violated(self.cfg.constraints, t.metrics)) or out.error
                    store.finish_trial(t)
                continue
            t.status, t.metrics, t.curve, t.error = out.status, out.metrics, out.curve, out.error
            under_load = first.get("latency_ms", next(iter(first.values()), None))
            t.info = {**t.info, "pruned_under_load_ms": under_load}
            if len(first) > 1 or "latency_ms" not in first:
                t.info["pruned_under_load"] = first  # each bounded latency's first reading
            t.info.pop("prune_reason", None)
            t.finished_at = None
            store.finish_trial(t)
            revived.append(t.id)
            log.info(
                "trial %d was pruned at %s under load; on the quiet machine it is %s",
                t.id,
                ", ".join(f"{m} {v:.4g}" for m, v in first.items()),
                t.status,
            )
        return revived

    def _retime_front(
        self,
        store: Store,
        evaluator: Any,
        timer: Callable[[Any, Any], dict[str, Any]],
        metric: str = "latency_ms",
        tol: float = 0.0,
        everything: bool = False,
        retimed_here: set[str] | None = None,
    ) -> None:
        """Re-time (``metric``: ``latency_ms``, or a labelled source's ``latency_ms@label``)
        every candidate that is on the front or would be if it were timed faster (by its
        source's ``retime_tolerance``, ``tol``).

        A single slow reading must not keep a candidate off the front, nor a lucky one keep it
        on. Candidates whose latency, reduced by ``retime_tolerance``, would be non-dominated are
        timed again and keep the lowest reading (noise only adds time); repeated until the set
        is stable. ``everything``: the first round re-times every feasible candidate.
        ``retimed_here``: the latencies the search re-times on this machine (default: just
        ``metric``), which must all have a quiet kept reading to clear ``latency_busy``.
        """
        _, at, name = metric.partition("@")
        key = f"latency_readings_ms{at}{name}"  # every reading, the first included
        retimed_here = {metric} if retimed_here is None else retimed_here
        label = f" ({metric})" if at else ""
        retimed: set[int] = set()
        for round_ in range(4):
            every = store.trials()
            gone = superseded(every)  # a promotion answers for its source's net
            trials = [t for t in every if is_feasible(t) and t.id not in gone]
            front = pareto_front(trials, self.objectives)
            front_ids = {t.id for t in front}
            candidates = []
            for t in trials:
                if t.id in retimed or metric not in t.metrics:
                    continue
                if t.id in front_ids or (everything and round_ == 0):
                    candidates.append(t)
                    continue
                faster = {**t.metrics, metric: t.metrics[metric] / (1 + tol)}
                probe = [f.metrics for f in front] + [faster]
                if len(probe) - 1 in pareto_indices(probe, self.objectives):
                    candidates.append(t)
            if not candidates:
                break
            log.info("re-timing %d candidates near the front%s", len(candidates), label)
            for t in candidates:
                model = evaluator.build(t.arch, t.seed)
                retimed.add(t.id)
                try:
                    new = timer(t.arch, model)
                except Exception as exc:  # noqa: BLE001 - e.g. the board went away: keep the first
                    log.warning("re-timing trial %d failed, first reading kept: %s", t.id, exc)
                    continue
                if metric not in new:  # the source gave another metric this time
                    continue
                readings = t.metrics.get(key, [t.metrics[metric]])
                readings.append(new[metric])
                t.metrics[key] = readings
                if new[metric] < t.metrics[metric]:
                    t.metrics.update(new)
                    _mark_reading(t.metrics, metric, others_training(), retimed_here)
                store.update_metrics(t.id, t.metrics)
            log.info("re-timed %d candidates near the front%s", len(candidates), label)

    def _test_final(self, store: Store, evaluator: Any, front: list[Trial], study: Study) -> None:
        """Test metrics for the final models only (the test split never guides the search)."""
        for t in front:
            if "test_accuracy" in t.metrics:
                continue
            tested = evaluator.test(t.arch, t.seed, study.weights_path(t.id))
            if tested:
                t.metrics.update(tested)
                store.update_metrics(t.id, t.metrics)

    def _train_final(self, store: Store, evaluator: Any, front: list[Trial], study: Study) -> None:
        """``final.repeats`` trainings of (up to ``final.max_models``) front members, and
        with ``final.references`` of the nets the search started from (``strategy.start``)."""
        from hwnas.experiment.final import FinalTrainer, pick, within_budget

        fc = self.cfg.final
        costs = [m for m, _ in self.objectives if m != "accuracy"] or ["macs"]
        trials = store.trials()
        refs = self._references(trials) if fc.references else []
        # one training per net: a reference's net on the front is trained as a reference,
        # and takes no place among the max_models
        ref_nets = {r.arch_hash for r in refs}
        searched = [t for t in front if t.stage in SEARCHED and t.arch_hash not in ref_nets]
        rivals, rest = pick(searched, refs, fc.max_models, self.objectives, costs[0])
        # a resumed final stage (after as many search trials): the nets it began count
        # against max_models; a search extended since has a final stage of its own
        after = sum(t.stage in SEARCHED for t in trials)
        by_id = {t.id: t for t in trials}
        spent = {
            i
            for t in trials
            if t.stage == "final"
            and t.info.get("after_trials") == after
            and (i := t.info.get("final_of")) in by_id
            and by_id[i].arch_hash not in ref_nets
        }
        begun = [t for t in searched if t.id in spent]
        if len(begun) < len(spent):
            log.info(
                "final training: %d net(s) begun earlier left the front on re-timing: not "
                "trained further",
                len(spent) - len(begun),
            )
        rivals, rest = within_budget(rivals, rest, begun, len(spent), fc.max_models)
        against = f" ({len(rivals)} dominating a reference) and {len(refs)} reference(s)"
        log.info(
            "final training: %d front members%s x %d runs, %s epochs",
            len(rivals) + len(rest),
            against if refs else "",
            fc.repeats,
            fc.epochs or "estimator's",
        )
        from hwnas.experiment.evaluate import final_evaluator

        trainer = FinalTrainer(
            self.cfg, final_evaluator(self.cfg, evaluator), store, study, after_trials=after
        )
        # the comparison first: a final stage cut short still says whether the search won
        for t in [*rivals, *refs, *rest]:
            trainer.train(t.arch, t, fc.repeats)

    @staticmethod
    def _references(trials: list[Trial]) -> list[Trial]:
        """The nets the search started from (``strategy.start``), each as its standing
        trial: a promotion to a higher fidelity answers for the start trial it trained
        further, as on the front. One that was pruned or failed is said and left out."""
        gone = superseded(trials)
        out: list[Trial] = []
        for s in (t for t in trials if t.stage in SEARCHED and t.info.get("op") == "start"):
            same = [
                t
                for t in trials
                if t.stage in SEARCHED
                and t.arch_hash == s.arch_hash
                and t.id not in gone
                and t.status == "complete"
            ]
            if not same:
                log.info("final training: reference trial %d is %s: not trained", s.id, s.status)
                continue
            standing = max(same, key=lambda t: t.id)
            if all(t.id != standing.id for t in out):
                out.append(standing)
        return out


def _mark_reading(metrics: dict[str, Any], metric: str, busy: int, retimed: set[str]) -> None:
    """Record that ``metric``'s kept reading was taken with ``busy`` other trainings on the
    host. ``latency_busy`` flags a trial whose kept latencies include one read under load;
    a trial's latencies are first read together, so re-timing one of them quietly clears
    the flag only once each latency it holds that the search re-times here (``retimed``:
    the latency objectives read on this machine) has been kept from a quiet reading
    (``latency_quiet`` lists those while the flag stands). A latency never re-timed (a
    reported one, a board's, a table's) cannot hold the flag up for ever."""
    if busy:
        metrics["latency_busy"] = busy
        quiet = [m for m in metrics.get("latency_quiet", []) if m != metric]
    elif "latency_busy" in metrics:
        quiet = sorted({*metrics.get("latency_quiet", []), metric})
        if all(k in quiet for k in retimed if k in metrics):
            metrics.pop("latency_busy")
            metrics.pop("latency_quiet", None)
            return
    else:
        return
    if quiet:
        metrics["latency_quiet"] = quiet
    else:
        metrics.pop("latency_quiet", None)


def _reread(evaluator: Any, source: Any, arch: Any, model: Any) -> dict[str, Any]:
    """``source``'s fresh reading of ``arch``'s built ``model`` (empty when it gives none)."""
    return source.remeasure(evaluator.candidate(arch, model)) or {}


def latency_timer(
    cfg: ExperimentConfig, evaluator: Any, metric: str = "latency_ms"
) -> tuple[Callable[[Any, Any], dict[str, Any]], bool, float] | None:
    """How to read ``metric`` (``latency_ms``, or ``latency_ms@label`` of a labelled
    source) again, whether that is on this machine, and that source's
    ``retime_tolerance``: the source that sets it last (a runtime here, a board through
    the agent or a command); None when that source is deterministic (a table, a model)
    or nothing measures it."""
    from hwnas.hardware.base import CostModel

    last = [i for i, s in enumerate(evaluator.sources) if s.names(metric)][-1:]
    if not last:
        return None
    source = evaluator.sources[last[0]]
    if type(source.model).remeasure is CostModel.remeasure:
        return None
    configs = [c for _, c in cfg.sources()]  # the evaluator's sources, in order
    own = configs[last[0]] if len(configs) == len(evaluator.sources) else cfg.target
    return (
        partial(_reread, evaluator, source),
        type(source.model).local,
        float(getattr(own, "retime_tolerance", 0.0)),
    )


def latency_timers(
    cfg: ExperimentConfig, evaluator: Any
) -> dict[str, tuple[Callable[[Any, Any], dict[str, Any]], bool, float]]:
    """:func:`latency_timer` of each latency objective that can be read again."""
    timers = {
        o.metric: latency_timer(cfg, evaluator, o.metric)
        for o in cfg.objectives
        if base_name(o.metric) == "latency_ms"
    }
    return {m: t for m, t in timers.items() if t is not None}


#: stages whose trials spend the budget and whose front the final stage trains: a search's
#: candidates and a one-shot strategy's derived nets
SEARCHED = ("search", "derived")


#: archs drawn at the start to see whether a constraint on a count can be met at all
_REACH_DRAWS = 20


def _out_of_reach(evaluator: Any, space: Any, constraints: list[Any]) -> list[str]:
    """A warning for each constraint on a net's counts (params, peak memory, a device
    model's SRAM) that none of a few archs drawn meets, with the least seen: said before the
    search spends its budget on nets pruned one after another."""
    from hwnas.core.constraints import violated

    rng = random.Random(1)
    seen: dict[str, list[float]] = {}
    for _ in range(_REACH_DRAWS):
        costs = evaluator.built_costs(space.sample(rng)) or {}
        for c in constraints:
            if c.metric in costs:
                seen.setdefault(c.metric, []).append(float(costs[c.metric]))
        if costs and not violated(constraints, costs):
            return []  # one net meets them all
    out = []
    for c in constraints:
        values = seen.get(c.metric)
        if values and not any(c.holds(v) for v in values):
            best = min(values) if c.op in ("<=", "<") else max(values)
            out.append(
                f"constraint {c}: none of {_REACH_DRAWS} nets drawn from the space meets it "
                f"(best {fmt_number(best)}); the search may find none"
            )
    return out


#: trials in a row failing on the hardware-in-the-loop device before a search stops
MAX_DEVICE_FAILURES = 3


def _device_failure(error: str | None) -> bool:
    """Whether a trial failed because the remote board did not answer (``DeviceUnreachable``,
    as the evaluator words a failure), not on its own net (a model over the agent's limit,
    a command failing for this net)."""
    return (error or "").startswith("DeviceUnreachable")


def _judged_longer(trials: list[Trial], fidelity: Fidelity) -> Trial | None:
    """Of one net's ``trials``, a completed search trial trained at least as long on at least
    as much data as ``fidelity`` asks: a multi-fidelity scheduler dealt BO's proposal of a
    net already trained 3 epochs to a 1-epoch rung, and the budget paid for the lesser
    figure."""
    best = None
    for t in trials:
        if t.status != "complete" or t.stage not in SEARCHED:
            continue
        if t.info.get("inherit"):  # trained on from another's weights: not a fresh reading
            continue
        have = _told_fidelity(t)
        if have.resolution != fidelity.resolution:
            continue
        longer = (have.epochs or 0) >= (fidelity.epochs or 0)
        more = (have.data_fraction or 1.0) >= (fidelity.data_fraction or 1.0)
        if (
            longer
            and more
            and (best is None or (have.epochs or 0) > (_told_fidelity(best).epochs or 0))
        ):
            best = t
    return best


def _lost_on_device(trial: Trial) -> bool:
    """A search trial that failed because the board did not answer: run again on resume."""
    return trial.status == "failed" and trial.stage != "final" and _device_failure(trial.error)


def _spent(trials: list[Trial]) -> int:
    """The budget spent by finished trials: the loop's stopping rule and the progress count
    read it alike."""
    return sum(t.status != "running" and _counts(t) for t in trials)


def _counts(trial: Trial) -> bool:
    """Whether a trial spends the budget: a search-stage trial of a new network (final
    trainings, promotions of a known network to a higher fidelity and proposals the
    prefilter kept from training do not)."""
    return (
        trial.stage in SEARCHED
        and trial.info.get("op") != "promote"
        and trial.info.get("prune_reason") != "prefilter"
    )


def _recipe(train: dict[str, Any] | None) -> dict[str, Any] | None:
    """A proposal's recipe overrides; ``epochs`` there is its fidelity (older studies)."""
    if not train:
        return None
    return {k: v for k, v in train.items() if k != "epochs"} or None


def _keyed(train: dict[str, Any] | None) -> dict[str, Any] | None:
    """The recipe overrides a trial key holds: where the trial lies on a longer schedule
    (other overrides, e.g. NASH's rates, come with inherited weights, already in the key)."""
    picked = {k: v for k, v in (train or {}).items() if k in SCHEDULE_KEYS}
    return picked or None


def _told_fidelity(trial: Trial) -> Fidelity:
    """The fidelity a result stands for: a warm start's epochs counted from scratch."""
    fid = Fidelity.from_dict(trial.fidelity)
    total = trial.info.get("epochs_total")
    return fid if total is None else Fidelity(int(total), fid.data_fraction, fid.resolution)


def _search_metrics(trial: Trial) -> dict[str, Any]:
    """What a strategy may see: never the final models' test accuracy."""
    return {k: v for k, v in trial.metrics.items() if k != "test_accuracy"}


__all__ = ["Experiment", "Interrupted", "SearchResult", "StoreError"]
