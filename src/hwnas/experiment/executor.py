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
import queue
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
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


@contextmanager
def _spawn_guard() -> Iterator[None]:
    """Hold Ctrl-C off while a pool may start a worker process (on submit, lazily).

    A ``KeyboardInterrupt`` raised in the driver between starting a child and writing its
    start-up data leaves the child to die on an empty pipe with a traceback on the user's
    terminal; and a child that is still importing when a terminal's Ctrl-C reaches the whole
    process group prints a ``KeyboardInterrupt`` traceback of its own. So SIGINT is blocked in
    this thread (a child inherits the mask through ``exec`` and ignores SIGINT once its
    initializer runs) and, in the main thread, a Ctrl-C that arrives meanwhile is only noted
    and raised once the pool has its children.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.getsignal(signal.SIGINT)
    # off the main thread no KeyboardInterrupt can be raised here; a handler set outside
    # Python (None) is left as it is
    hold = threading.current_thread() is threading.main_thread() and previous is not None
    caught: list[int] = []
    if hold:
        signal.signal(signal.SIGINT, lambda sig, _: caught.append(sig))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending Ctrl-C lands in `caught`
        if hold:
            signal.signal(signal.SIGINT, previous)
            if caught and callable(previous):
                previous(signal.SIGINT, None)  # Python's own handler raises KeyboardInterrupt
            elif caught and previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by _spawn_guard
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
    in flight with it, and which of them killed it cannot be told. So none of them is blamed:
    each runs again, first in the rebuilt pool beside the others (a one-off kill costs one
    re-run), and if that pool breaks too, alone, one trial at a time in a pool of one worker,
    where a death can only be the trial's own. A trial is recorded as failed only once its
    worker has died while it ran alone and it has had ``retries`` re-runs; the search goes on.
    Nothing is stored until a result comes back, so a re-run trial is neither lost nor written
    twice.
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
        self._cfg = run_config
        self._threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._ctx = multiprocessing.get_context("spawn")
        # several GPUs: worker i trains on gpus[i % len(gpus)] (a rebuilt pool goes on counting)
        self.gpus = list(gpus or [])
        self._slot = self._ctx.Value("i", 0)
        # guards the pools and `_closing` against the threads that re-run trials
        self._lock = threading.Lock()
        self._closing = False
        self._pool = self._new_pool(workers)
        self._alone: ProcessPoolExecutor | None = None  # the one-worker pool, made on need
        self._alone_jobs: queue.SimpleQueue[tuple[Job, Future[Outcome], int]] = queue.SimpleQueue()
        self._alone_runner: threading.Thread | None = None
        self._runner_lock = threading.Lock()

    @classmethod
    def from_config(
        cls, section: Any, evaluator: Evaluator, run_config: dict[str, Any], threads: int
    ) -> ProcessExecutor:
        gpus = visible_gpus() if run_config.get("device") == "cuda" else []
        gpus = gpus if len(gpus) > 1 else []  # one GPU: every worker has it already
        where = f" over GPUs {', '.join(gpus)}" if gpus else ""
        log.info("executor: %d worker processes%s", section.workers, where)
        return cls(run_config, section.workers, threads, gpus, retries=section.retries)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(self._cfg, self._threads, os.getpid(), self.gpus, self._slot),
        )

    def submit(self, job: Job) -> Future[Outcome]:
        outer: Future[Outcome] = Future()
        self._submit_shared(job, outer, attempt=0)
        return outer

    def _submit_shared(self, job: Job, outer: Future[Outcome], attempt: int) -> None:
        """``job`` into the shared pool (rebuilt if a death broke it); ``attempt``: its runs so
        far that ended in a dead worker."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the search is stopping")
            try:
                with _spawn_guard():
                    inner = self._pool.submit(_run_in_worker, job)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False)
                self._pool = self._new_pool(self.workers)
                with _spawn_guard():
                    inner = self._pool.submit(_run_in_worker, job)

        def _done(f: Future[Outcome]) -> None:
            # Python 3.12 runs this holding the broken pool's lock: only hand the trial on
            exc = f.exception()
            if exc is None:
                outer.set_result(f.result())
            elif isinstance(exc, BrokenProcessPool):
                self._died(job, outer, attempt + 1, alone=False, exc=exc)
            else:  # the evaluator records candidate failures itself: this is a worker fault
                outer.set_result(Outcome("failed", error=f"worker: {type(exc).__name__}: {exc}"))

        inner.add_done_callback(_done)

    def _died(
        self, job: Job, outer: Future[Outcome], attempt: int, alone: bool, exc: BaseException
    ) -> None:
        """The worker running ``job`` died (its ``attempt``-th run to end so): run it again,
        beside the others once, then alone; fail it once it died alone with its re-runs
        spent. Never raises, so ``outer`` is always answered."""
        try:
            if self._closing:
                raise RuntimeError("the search is stopping")
            if alone and attempt > self.retries:
                why = f"its worker process died {attempt} times, the last while it ran alone"
                outer.set_result(Outcome("failed", error=f"{why}: {exc}"))
                return
            what = job.weights_path.stem if job.weights_path else "a trial"
            shared = attempt == 1 and self.retries >= 1
            log.warning(
                "a worker process died: %s runs again%s (re-run %d)",
                what,
                "" if shared else ", alone",
                attempt,
            )
            if shared:  # not from the callback's thread: see _done
                threading.Thread(
                    target=self._resubmit, args=(job, outer, attempt), daemon=True
                ).start()
            else:
                self._alone_jobs.put((job, outer, attempt))
                # not `_lock`: the driver may hold it while the broken pool runs this callback
                with self._runner_lock:
                    if self._alone_runner is None:
                        self._alone_runner = threading.Thread(target=self._run_alone, daemon=True)
                        self._alone_runner.start()
        except BaseException as err:  # a thread that cannot start, the search stopping...
            if not outer.done():
                outer.set_result(Outcome("failed", error=f"worker process died: {exc} ({err})"))

    def _resubmit(self, job: Job, outer: Future[Outcome], attempt: int) -> None:
        try:
            self._submit_shared(job, outer, attempt)
        except BaseException as err:  # the search stopping, no process to be had...
            outer.set_result(Outcome("failed", error=f"worker process died; re-run: {err}"))

    def _run_alone(self) -> None:
        """Re-run queued trials one at a time on a pool of one worker: a death there is the
        trial's own, so only its own runs count against it."""
        while True:
            job, outer, attempt = self._alone_jobs.get()
            try:
                with self._lock:
                    if self._closing:
                        raise RuntimeError("the search is stopping")
                    if self._alone is None:
                        self._alone = self._new_pool(1)
                    with _spawn_guard():
                        inner = self._alone.submit(_run_in_worker, job)
                outer.set_result(inner.result())
            except BrokenProcessPool as exc:
                with self._lock:
                    broken, self._alone = self._alone, None
                if broken is not None:
                    broken.shutdown(wait=False)
                self._died(job, outer, attempt + 1, alone=True, exc=exc)
            except BaseException as err:
                if not outer.done():
                    outer.set_result(
                        Outcome("failed", error=f"worker: {type(err).__name__}: {err}")
                    )

    def shutdown(self, *, cancel: bool) -> None:
        with self._lock:  # no re-run starts a pool after this
            self._closing = True
            pools = [p for p in (self._pool, self._alone) if p is not None]
        for pool in pools:
            if cancel:  # Ctrl-C: stop now; running trials stay `running` and re-run on resume
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=cancel)


def make_executor(cfg: ExperimentConfig, evaluator: Evaluator) -> Executor:
    """The configured executor; ``inprocess`` uses the driver's own evaluator."""
    from hwnas.core.registry import executors

    threads = getattr(cfg.estimator, "threads", 0)  # a training estimator's CPU threads
    executor: Executor = executors.create(cfg.executor, evaluator, cfg.to_json_dict(), threads)
    return executor
