"""The Ray executor: trials as Ray tasks, on a local Ray instance or a cluster.

Workers only compute, as in the process pool: every result comes back to the driver, which
alone tells the strategy and writes ``study.db`` and the weights directory. No shared
filesystem is assumed: a trial's trained weights (and a paused run's state) travel back as
bytes in its result, and those a warm start or a morphism inherits travel out with the task.
Each worker process builds the run's evaluator once (dataset, space, cost models) and keeps
it for later tasks.

Faults: a worker process or node that dies mid-trial makes Ray run the task again elsewhere,
up to ``retries`` times; after that the trial is recorded as failed with the reason, and the
search goes on. Ctrl-C cancels the tasks in flight (they stay ``running`` in the store and
re-run on resume, as with the other executors).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.core.errors import UserError
from hwnas.estimate.resume import state_path
from hwnas.experiment.evaluate import Job, Outcome
from hwnas.experiment.executor import gpu_safe_env

if TYPE_CHECKING:
    from hwnas.experiment.evaluate import Evaluator

log = logging.getLogger("hwnas")

_evaluators: dict[str, Evaluator] = {}  # in a worker process: the run's evaluator, by digest


def _evaluator(raw_cfg: dict[str, Any], digest: str, threads: int) -> Evaluator:
    if digest not in _evaluators:
        from hwnas.experiment.config import ExperimentConfig
        from hwnas.experiment.evaluate import build_evaluator

        if threads:
            import torch

            torch.set_num_threads(threads)
        _evaluators[digest] = build_evaluator(ExperimentConfig.model_validate(raw_cfg))
    return _evaluators[digest]


def read_files(weights: Path) -> dict[str, bytes] | None:
    """A trial's files as bytes: its weights and, for a run paused mid-schedule, the state
    it goes on from (:mod:`hwnas.estimate.resume`); None when it saved no weights."""
    if not weights.exists():
        return None
    files = {"weights": weights.read_bytes()}
    paused = state_path(weights)
    if paused.exists():
        files["resume"] = paused.read_bytes()
    return files


def write_files(files: dict[str, bytes], weights: Path) -> None:
    """Write what :func:`read_files` read, under ``weights``' name (each file whole or not
    at all)."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    for key, path in (("weights", weights), ("resume", state_path(weights))):
        if key in files:
            part = path.with_suffix(".part")
            part.write_bytes(files[key])
            part.replace(path)


def evaluate_remote(
    raw_cfg: dict[str, Any],
    digest: str,
    threads: int,
    job: Job,
    inherited: dict[str, bytes] | None,
    keep_weights: bool,
) -> tuple[Outcome, dict[str, bytes] | None]:
    """One trial in a Ray worker: the job's paths are the driver's, so the files it starts
    from (weights, a paused run's state) arrive as ``inherited`` bytes and the files it
    writes go back as bytes."""
    evaluator = _evaluator(raw_cfg, digest, threads)
    with tempfile.TemporaryDirectory(prefix="hwnas-ray-") as tmp:
        inherit = job.inherit
        if inherit is not None and inherited is not None:
            parent = Path(tmp) / "parent.pt"
            write_files(inherited, parent)
            inherit = {**inherit, "weights": parent}
        weights = Path(tmp) / "weights.pt" if keep_weights else None
        outcome = evaluator(dataclasses.replace(job, weights_path=weights, inherit=inherit))
        data = read_files(weights) if weights is not None else None
    return outcome, data


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("executor: ray needs the ray package: pip install 'hwnas[ray]'") from None
    return ray


class RayExecutor:
    """``workers`` trials in flight as Ray tasks with the section's resources per trial."""

    def __init__(self, section: Any, run_config: dict[str, Any], threads: int) -> None:
        ray = self.ray = _import_ray()
        self.workers = section.workers
        self._started = False
        context = None
        if not ray.is_initialized():
            safe = gpu_safe_env()  # every process Ray starts, the local raylet's too
            for key, value in safe.items():
                os.environ.setdefault(key, value)
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(_python_path()), **safe}}
            if section.address == "local":
                context = ray.init(
                    num_cpus=section.local_cpus,
                    num_gpus=section.local_gpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    runtime_env=env,
                )
            else:
                context = ray.init(
                    address=section.address,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    runtime_env=env,
                )
            self._started = True
        self._digest = hashlib.sha1(
            json.dumps(run_config, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        self._threads = threads or max(1, int(section.cpus))
        self._task = ray.remote(evaluate_remote).options(
            num_cpus=section.cpus,
            num_gpus=section.gpus,
            resources=dict(section.resources) or None,
            max_retries=section.retries,
            retry_exceptions=False,  # a candidate's own failure is an Outcome, not retried
        )
        self._config_ref = ray.put(run_config)
        self._inflight: dict[Any, Future[Outcome]] = {}
        log.info(
            "executor: ray at %s, %d trials in flight, per trial %g CPU %g GPU %s",
            section.address,
            self.workers,
            section.cpus,
            section.gpus,
            dict(section.resources) or "",
        )
        url = getattr(context, "dashboard_url", None)
        if url:  # a cluster started with the dashboard (ray[default]); plain ray has none
            log.info("ray dashboard: http://%s", url)

    @classmethod
    def from_config(
        cls, section: Any, evaluator: Evaluator, run_config: dict[str, Any], threads: int
    ) -> RayExecutor:
        return cls(section, run_config, threads)

    def submit(self, job: Job) -> Future[Outcome]:
        inherited = None
        if job.inherit is not None and job.inherit.get("weights") is not None:
            inherited = read_files(Path(job.inherit["weights"]))
        ref = self._task.remote(
            self._config_ref,
            self._digest,
            self._threads,
            dataclasses.replace(job, weights_path=None),
            inherited,
            job.weights_path is not None,
        )
        outer: Future[Outcome] = Future()
        self._inflight[ref] = outer
        target = job.weights_path

        def _done(f: Future[Any]) -> None:
            self._inflight.pop(ref, None)
            if outer.done():
                return
            try:
                outcome, data = f.result()
            except Exception as exc:  # noqa: BLE001 - every remote fault becomes a failed trial
                outer.set_result(Outcome("failed", error=_reason(exc)))
                return
            if data is not None and target is not None:  # the driver alone writes the study
                write_files(data, target)
            outer.set_result(outcome)

        ref.future().add_done_callback(_done)
        return outer

    def shutdown(self, *, cancel: bool) -> None:
        if cancel:  # Ctrl-C: stop the trials in flight; they re-run on resume
            for ref in list(self._inflight):
                with contextlib.suppress(Exception):  # already finished or gone
                    self.ray.cancel(ref, force=True)
        if self._started:
            self.ray.shutdown()


def _reason(exc: BaseException) -> str:
    """A one-line reason for a trial Ray could not finish (retries spent, node lost...)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"ray: {type(exc).__name__}: {first}"[:300]


def _python_path() -> list[str]:
    """hwnas's own source folder first, so a worker imports the driver's hwnas."""
    here = str(Path(__file__).resolve().parents[2])  # src/, holding the hwnas package
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [here, *[p for p in rest if p != here]]
