"""Executors: where candidates are evaluated. The search loop and the store stay in the driver.

``inprocess`` evaluates each trial in the driver as soon as it is submitted (the default:
deterministic, nothing to set up). ``process`` keeps ``workers`` spawned processes, each with
its own dataset, space and cost models, and evaluates that many trials at once -- several
small candidates on one GPU, workers spread round-robin over a box's GPUs (``device: cuda``),
or one per core on a CPU. Workers only compute: every result
comes back to the driver, which tells the strategy and commits the trial, so the study and
resumption work exactly as with one process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from hwnas.experiment.evaluate import Job, Outcome

if TYPE_CHECKING:
    from hwnas.experiment.config import ExperimentConfig
    from hwnas.experiment.evaluate import Evaluator

log = logging.getLogger("hwnas")


class Executor(Protocol):
    """Runs jobs; ``workers`` of them may be in flight at once."""

    workers: int

    def submit(self, job: Job) -> Future[Outcome]: ...

    def shutdown(self, *, cancel: bool) -> None: ...


class InProcessExecutor:
    """Evaluates in the driver, at submit time: the returned future is already done."""

    workers = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    @classmethod
    def from_config(
        cls, section: Any, evaluator: Evaluator, run_config: dict[str, Any], threads: int
    ) -> InProcessExecutor:
        return cls(evaluator)

    def submit(self, job: Job) -> Future[Outcome]:
        fut: Future[Outcome] = Future()
        fut.set_result(self.evaluator(job))  # Ctrl-C propagates: nothing to clean up
        return fut

    def shutdown(self, *, cancel: bool) -> None:
        pass


# ------------------------------------------------------------------ process pool
_worker_evaluator: Evaluator | None = None


def _exit_with(parent: int, every: float = 0.5) -> None:
    """Exit as soon as ``parent`` is gone (re-parented: ``getppid`` changes). A driver killed
    with ``kill -9`` cannot stop its workers; without this they would train on, orphaned."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


#: NVLink multicast off in every process that may touch a GPU: on a shared several-GPU host
#: it can take GPUs out of service, and hwnas's trials run no collectives that would need it
GPU_SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


def gpu_safe_env() -> dict[str, str]:
    """:data:`GPU_SAFE_ENV`, where the user's own environment does not set a value."""
    return {k: os.environ.get(k, v) for k, v in GPU_SAFE_ENV.items()}


def visible_gpus() -> list[str]:
    """The GPUs this process may use, named as ``CUDA_VISIBLE_DEVICES`` names them (indices
    or UUIDs); empty without CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        gpus = []
        for g in (g.strip() for g in env.split(",")):
            if not g or g.startswith("-"):
                break  # CUDA ignores an invalid entry and every one after it
            gpus.append(g)
        return gpus
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def claim_gpu(slot: Any, gpus: list[str]) -> str:
    """Give this worker process the next GPU, round-robin over ``gpus`` by a counter shared
    with its siblings (``slot``), before CUDA starts here: every worker would otherwise train
    on the first GPU while the others idle."""
    with slot.get_lock():
        i = slot.value
        slot.value += 1
    gpu = gpus[i % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def _init_worker(
    raw_cfg: dict[str, Any], threads: int, driver: int, gpus: list[str], slot: Any
) -> None:
    """Build this worker's evaluator once; Ctrl-C is the driver's to handle; the worker ends
    with the driver (``driver``: its pid, passed in, since it may already be gone by now).
    With several GPUs (``gpus``) the worker takes one of them first."""
    global _worker_evaluator
    os.environ.update(gpu_safe_env())
    if gpus:
        claim_gpu(slot, gpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(driver,), daemon=True).start()
    from hwnas.experiment.config import ExperimentConfig
    from hwnas.experiment.evaluate import build_evaluator

    cfg = ExperimentConfig.model_validate(raw_cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)
    _worker_evaluator = build_evaluator(cfg)


def _run_in_worker(job: Job) -> Outcome:
    assert _worker_evaluator is not None, "worker not initialised"
    return _worker_evaluator(job)


class ProcessExecutor:
    """``workers`` spawned processes (spawn: safe with CUDA and threads in the driver).

    A worker that dies (killed, out of host memory, a lost GPU) breaks the pool and every trial
    in flight with it. Which trial killed it cannot be told, so the pool is rebuilt and each of
    them runs again, up to ``retries`` times (as Ray re-runs a task whose worker died); a trial
    that breaks the pool every time is then recorded as failed and the search goes on. Nothing
    is stored until a result comes back, so a re-run trial is neither lost nor written twice.
    """

    def __init__(
        self,
        run_config: dict[str, Any],
        workers: int,
        threads: int = 0,
        gpus: list[str] | None = None,
        retries: int = 2,
    ) -> None:
        import multiprocessing

        self.workers = workers
        self.retries = retries
        self._lock = threading.Lock()  # done-callbacks of one broken pool race to rebuild it
        self._closing = False
        self._cfg = run_config
        self._threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._ctx = multiprocessing.get_context("spawn")
        # several GPUs: worker i trains on gpus[i % len(gpus)] (a rebuilt pool goes on counting)
        self.gpus = list(gpus or [])
        self._slot = self._ctx.Value("i", 0)
        self._pool = self._new_pool()

    @classmethod
    def from_config(
        cls, section: Any, evaluator: Evaluator, run_config: dict[str, Any], threads: int
    ) -> ProcessExecutor:
        gpus = visible_gpus() if run_config.get("device") == "cuda" else []
        gpus = gpus if len(gpus) > 1 else []  # one GPU: every worker has it already
        where = f" over GPUs {', '.join(gpus)}" if gpus else ""
        log.info("executor: %d worker processes%s", section.workers, where)
        return cls(run_config, section.workers, threads, gpus, retries=section.retries)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(self._cfg, self._threads, os.getpid(), self.gpus, self._slot),
        )

    def submit(self, job: Job) -> Future[Outcome]:
        outer: Future[Outcome] = Future()
        self._submit(job, outer, attempt=0)
        return outer

    def _submit(self, job: Job, outer: Future[Outcome], attempt: int) -> None:
        with self._lock:
            pool = self._pool
            try:
                inner = pool.submit(_run_in_worker, job)
            except BrokenProcessPool:
                pool = self._pool = self._new_pool()
                inner = pool.submit(_run_in_worker, job)

        def _done(f: Future[Outcome]) -> None:
            exc = f.exception()
            if exc is None:
                outer.set_result(f.result())
            elif (
                isinstance(exc, BrokenProcessPool) and attempt < self.retries and not self._closing
            ):
                what = job.weights_path.stem if job.weights_path else "its trial"
                log.warning(
                    "a worker process died: %s runs again (re-run %d of %d)",
                    what,
                    attempt + 1,
                    self.retries,
                )
                # not from here: Python 3.12 runs this callback holding the broken pool's
                # lock, which shutting it down or submitting to it would take again
                threading.Thread(
                    target=self._again, args=(pool, job, outer, attempt + 1), daemon=True
                ).start()
            elif isinstance(exc, BrokenProcessPool):
                tries = f" ({attempt + 1} attempts)" if attempt else ""
                outer.set_result(Outcome("failed", error=f"worker process died{tries}: {exc}"))
            else:  # the evaluator records candidate failures itself: this is a worker fault
                outer.set_result(Outcome("failed", error=f"worker: {type(exc).__name__}: {exc}"))

        inner.add_done_callback(_done)

    def _again(
        self, broken: ProcessPoolExecutor, job: Job, outer: Future[Outcome], attempt: int
    ) -> None:
        try:
            self._replace(broken)
            self._submit(job, outer, attempt)
        except (RuntimeError, BrokenProcessPool) as exc:  # shut down meanwhile, or broken again
            outer.set_result(Outcome("failed", error=f"worker process died: {exc}"))

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """A fresh pool in place of ``broken``, once however many of its trials report it."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the search is stopping")
            if self._pool is broken:
                self._pool = self._new_pool()
        broken.shutdown(wait=False)

    def shutdown(self, *, cancel: bool) -> None:
        self._closing = True  # a pool broken by the shutdown itself re-runs nothing
        if cancel:  # Ctrl-C: stop now; running trials stay `running` and re-run on resume
            for p in list(getattr(self._pool, "_processes", {}).values()):
                p.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def make_executor(cfg: ExperimentConfig, evaluator: Evaluator) -> Executor:
    """The configured executor; ``inprocess`` uses the driver's own evaluator."""
    from hwnas.core.registry import executors

    threads = getattr(cfg.estimator, "threads", 0)  # a training estimator's CPU threads
    executor: Executor = executors.create(cfg.executor, evaluator, cfg.to_json_dict(), threads)
    return executor
