"""The Python twins of ``hwnas search`` and ``hwnas train``: run or resume a search, or train
one net with the final recipe, then write the study's report.

It sits above the loop and the report (persistence does not render HTML), beside the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.core.errors import UserError
from hwnas.core.threads import torch_threads_kept
from hwnas.experiment.config import ExperimentConfig, load_config, validate_config
from hwnas.experiment.experiment import Experiment, SearchResult
from hwnas.experiment.store import Trial
from hwnas.experiment.study import Study
from hwnas.report.html import write_study_report


def run_search(
    config: ExperimentConfig | str | Path | dict[str, Any],
    out_dir: str | Path,
    *,
    force: bool = False,
    on_trial: Callable[[Trial, dict[str, Any]], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_phase: Callable[[str, int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run (or resume) a search in ``out_dir`` and write ``report.html``. ``on_warning`` hears
    at once what a one-shot strategy finds amiss before its supernet trains (else
    ``on_start``'s ``warnings`` carry it, after the training). ``config`` may also be a
    YAML file's path or a mapping, read as ``load_config`` / ``validate_config`` would."""
    config = as_config(config)
    result = Experiment(
        config,
        out_dir,
        force=force,
        on_trial=on_trial,
        on_start=on_start,
        on_phase=on_phase,
        on_warning=on_warning,
    ).run()
    study = Study(out_dir)
    try:
        result.report = write_study_report(study)
    finally:
        study.close()
    return result


def as_config(config: Any) -> ExperimentConfig:
    """A config given as the validated object, a YAML file's path or a mapping; anything else
    is a one-line :class:`UserError` (it was an ``AttributeError`` deep in the search)."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, dict):
        return validate_config(config)
    raise UserError(
        f"config: expected an ExperimentConfig, a YAML path or a mapping, not "
        f"{type(config).__name__}"
    )


@dataclass
class TrainResult:
    """What ``hwnas train`` did: the final trials, the search trial they retrain (if any, as
    stored after the run: its final summary and side-by-side medians), and the verdicts on
    the study's reference nets (``Study.reference_verdicts``) with the trials they name."""

    dir: Path
    trials: list[Trial]
    parent: Trial | None
    report: Path | None = None
    references: list[dict[str, Any]] = field(default_factory=list)
    study_trials: list[Trial] = field(default_factory=list)
    objectives: list[tuple[str, str]] = field(default_factory=list)
    #: the study's constraints the net breaks (by its costs): trained as asked all the same
    broken: list[str] = field(default_factory=list)
    #: the searched trial whose arch an ``--arch`` spec is (its runs are kept apart from it)
    same_as: int | None = None


@torch_threads_kept()
def train_net(
    out_dir: str | Path,
    arch_spec: str | None = None,
    *,
    config: ExperimentConfig | str | Path | dict[str, Any] | None = None,
    trial_id: int | None = None,
    repeats: int | None = None,
    epochs: int | None = None,
    force: bool = False,
    on_run: Callable[[Trial, int, int], None] | None = None,
    timing_rounds: int | None = None,
) -> TrainResult:
    """Train one net stand-alone with the final recipe and store it in a study as stage
    ``final``: a trial of the study in ``out_dir`` (``trial_id``), or an arch (JSON, ``@file``
    or a reference net's name) in the study there or, with ``config``, in a new one. A trial
    is then timed again side by side with the study's other nets with final trainings, where
    a reference net is among them (``timing_rounds``, default ``final.timing_rounds``)."""
    from hwnas.core.errors import UserError
    from hwnas.experiment.evaluate import build_evaluator, final_evaluator
    from hwnas.experiment.experiment import check_dir, latency_timers, prepare_dir
    from hwnas.experiment.final import FinalTrainer, time_side_by_side
    from hwnas.experiment.lock import StudyLock
    from hwnas.space.arch_spec import parse_arch

    config = as_config(config) if config is not None else None
    out = Path(out_dir)
    existing = (out / "study.db").exists() and config is None
    if trial_id is not None and not existing:
        raise UserError(f"{out}: no study here (--trial N names a trial of one)")
    parent = None
    if config is None:
        if not existing:
            raise UserError(f"{out}: no study here (give --config FILE to start one)")
        with Study(out, readonly=True) as peek:
            config = peek.config
            if trial_id is not None:
                parent = peek.store.trial(trial_id)
                if parent is None:
                    raise UserError(f"--trial {trial_id}: no such trial in {out}")
                if parent.stage == "final" and parent.parent_id is not None:
                    parent = peek.store.trial(parent.parent_id)
    else:
        check_dir(config, out, force)
    evaluator = build_evaluator(config)
    if not final_evaluator(config, evaluator).estimator.needs_model:  # a table: nothing trains
        evaluator.close()
        raise UserError(
            f"estimator `{config.estimator.name}` builds and trains no nets, so there is "
            "nothing to train; train the arch with --config FILE (a training estimator and "
            "data) into another study"
        )
    if existing:
        with Study(out, readonly=True) as peek:
            try:
                evaluator.check_same_data(peek.store.get_meta_json("model_io"))
            except BaseException:
                evaluator.close()
                raise
    lock = StudyLock(out)
    try:
        if parent is not None:
            arch = parent.arch
        else:
            if arch_spec is None:
                raise UserError("give --trial N or --arch SPEC")
            arch = parse_arch(arch_spec, evaluator.space)
        evaluator.check_buildable(arch)
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        store = prepare_dir(config, out, force) if not existing else None
        lock.announce()
        if store is not None:
            io = evaluator.model_io()
            if io is not None:
                store.set_meta("model_io", io)
            store.close()
        study = Study(out)
        try:
            fc = config.final
            n = repeats if repeats is not None else (fc.repeats or 1)
            if n < 1:
                raise UserError("--repeats must be at least 1")
            trainer = FinalTrainer(
                config, final_evaluator(config, evaluator), study.store, study, on_run
            )
            trials = trainer.train(arch, parent, n, epochs, retry_failed=True)
            if parent is not None:  # a searched net: the verdict on the references counts it
                timers = latency_timers(config, evaluator)
                reads = {m: read for m, (read, _, _) in timers.items()}
                rounds = config.final.timing_rounds if timing_rounds is None else timing_rounds
                time_side_by_side(study.store, evaluator, reads, rounds)
            study.write_pareto_json()
            report = write_study_report(study)
            result = TrainResult(out, trials, parent, report, objectives=study.objectives)
            if parent is None:  # an --arch spec of a net the search found: say which
                h = evaluator.space.arch_hash(arch)
                result.same_as = next(
                    (t.id for t in study.trials() if t.stage != "final" and t.arch_hash == h),
                    None,
                )
            if parent is not None:
                result.study_trials = study.trials()
                result.parent = study.store.trial(parent.id)
                result.references = study.reference_verdicts(result.study_trials)
            if trials:
                from hwnas.core.constraints import violated

                # a latency timed again side by side stands for the search's reading
                mine = result.parent.metrics if result.parent is not None else {}
                costs = {k: mine.get(f"final_{k}", v) for k, v in trials[0].metrics.items()}
                result.broken = violated(list(config.constraints), costs)
        finally:
            study.close()
    finally:
        lock.release()
        evaluator.close()
    return result
