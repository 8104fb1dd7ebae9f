"""Executors (trials in worker processes) and the budget across resumptions."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import typing

import pytest
from conftest import fast_args, run_cli
from test_graph_nash import _nash_args
from test_search import _rows, _start, _wait_for, show_json

from hwnas.core.errors import ConfigError
from hwnas.experiment.config import validate_config


def _essence(trials):
    return [
        (
            t["id"],
            t["status"],
            json.dumps(t["arch"], sort_keys=True),
            t["parent_id"],
            t["metrics"].get("accuracy"),
        )
        for t in trials
    ]


def test_nash_in_worker_processes_gives_the_same_trials(tmp_path):
    """NASH waits for each step, so 3 workers must give exactly the one-process trials."""
    args = [*_nash_args("estimator.threads=1"), "-q"]
    one, pool = tmp_path / "one", tmp_path / "pool"
    r = run_cli("search", "--out", str(one), *args)
    assert r.returncode == 0, r.stderr
    r = run_cli("search", "--out", str(pool), *args, "--workers", "3")
    assert r.returncode == 0, r.stderr
    a, b = show_json(one), show_json(pool)
    assert len(a) == 8 and all(t["status"] == "complete" for t in b)
    assert _essence(a) == _essence(b)  # weights crossed processes through the study's files
    assert "executor: 3 worker processes" in (pool / "hwnas.log").read_text()


def test_evolution_in_workers_spends_the_budget_on_distinct_archs(tmp_path):
    out = tmp_path / "evo"
    args = ["--budget", "6", "--workers", "2", *fast_args("estimator.epochs=5")]
    r = run_cli("search", "--out", str(out), "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_json(out)
    assert len(trials) == 6 and all(t["status"] == "complete" for t in trials)
    assert len({json.dumps(t["arch"], sort_keys=True) for t in trials}) == 6
    assert max(t["metrics"]["accuracy"] for t in trials) > 0.5  # really trained
    # timed while the other worker trained: every candidate is timed again once the pool is
    # gone, and keeps its lower reading
    for t in trials:
        readings = t["metrics"]["latency_readings_ms"]
        assert len(readings) >= 2 and t["metrics"]["latency_ms"] == pytest.approx(min(readings))
    assert "re-timed 6 candidates" in (out / "hwnas.log").read_text()


def test_ctrl_c_stops_the_workers_and_the_search_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--budget", "5", "--workers", "2", *fast_args("estimator.epochs=6")]
    proc = _start(out, *args)
    assert _wait_for(lambda: sum(r[1] == "running" for r in _rows(out / "study.db")) == 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    r = run_cli("search", "--out", str(out), "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_json(out)
    assert [t["id"] for t in trials] == [0, 1, 2, 3, 4]
    assert all(t["status"] == "complete" for t in trials)


def test_more_workers_need_the_process_executor():
    with pytest.raises(ConfigError, match="executor"):
        validate_config({"executor": {"workers": 4}})
    cfg = validate_config({"executor": {"name": "process", "workers": 4}})
    assert cfg.executor.workers == 4


def test_time_budget_counts_across_resumptions(tmp_path):
    out = tmp_path / "timed"
    args = ["--budget", "50", *fast_args("budget.minutes=0.005")]  # 0.3 s: one trial or two
    r = run_cli("search", "--out", str(out), "-q", *args)
    assert r.returncode == 0, r.stderr
    first = show_json(out)
    assert 1 <= len(first) < 50
    r = run_cli("search", "--out", str(out), "-q", *args)  # the 0.3 s are spent already
    assert r.returncode == 0, r.stderr
    assert len(show_json(out)) == len(first)


def test_an_arch_asked_again_while_running_is_answered_by_that_trial(tmp_path, monkeypatch):
    """With workers, a strategy may ask for an arch still being evaluated: it is not launched
    twice, costs no budget, and the strategy is told that trial's result."""
    from conftest import REPO, SHARED

    import hwnas
    import hwnas.strategy as strategies
    from hwnas.strategy.random import RandomSearch

    table = SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz"
    if not table.exists():  # like every other test on the published tables
        pytest.skip(f"{table} not present")
    told: list[tuple[int, str]] = []

    class Repeating(RandomSearch):
        def ask(self):
            p = super().ask()
            self.last = p if not hasattr(self, "last") or self.rng.random() < 0.5 else self.last
            return type(p)(self.last.arch, info={"op": "repeat"})

        def tell(self, result):
            told.append((result.trial_id, self.space.arch_hash(result.arch)))

    monkeypatch.setattr(
        strategies,
        "make_strategy",
        lambda cfg, space, objectives, seed: Repeating(space, objectives, seed),
    )
    cfg = hwnas.load_config(
        REPO / "configs" / "nb201_pixel3.yaml",
        [
            f"estimator.path={table}",
            "executor.name=process",
            "executor.workers=3",
        ],
        budget=8,
    )
    result = hwnas.run_search(cfg, tmp_path / "run")
    hashes = [t.arch_hash for t in result.trials]
    assert len(result.trials) == 8 and len(set(hashes)) == 8  # each arch evaluated once
    by_id = dict(zip([t.id for t in result.trials], hashes, strict=True))
    assert all(by_id[tid] == h for tid, h in told)  # every answer is that arch's own trial
    assert len(told) > 8  # repeats were answered too, in flight or from the study


def test_a_net_pruned_by_a_reading_taken_under_load_is_evaluated_again(tmp_path):
    """With several workers a latency reading may be inflated by the others' training: once
    the pool is gone, a trial pruned by a latency bound alone is measured on the quiet
    machine and, meeting the bound now, trained; one pruned for another reason is left."""
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config
    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.experiment import Experiment
    from hwnas.experiment.store import Store
    from hwnas.experiment.study import Study

    sets = [*FAST, "constraints=['latency_ms <= 1.0', 'params <= 1000000']"]
    cfg = load_config(None, sets, budget=3)
    out = tmp_path / "run"
    run_search(cfg, out)
    store = Store(out / "study.db")
    a, b = store.trials()[:2]
    assert a.status == b.status == "complete"
    for t, metric, value in ((a, "latency_ms", 5.0), (b, "params", 2e6)):
        t.status, t.curve, t.error = "pruned", [], f"{metric} too high"
        t.metrics = {k: v for k, v in t.metrics.items() if k not in ("accuracy", "val_loss")}
        t.metrics[metric] = value  # as if read while another worker trained
        store.finish_trial(t)

    evaluator = build_evaluator(cfg)
    revived = Experiment(cfg, out)._recheck_pruned(store, evaluator, Study(out))
    assert revived == [a.id]
    again, left = store.trial(a.id), store.trial(b.id)
    assert again is not None and left is not None
    assert again.status == "complete" and again.error is None
    assert again.metrics["latency_ms"] < 1.0 and again.metrics["accuracy"] > 0.3  # trained
    assert again.info["pruned_under_load_ms"] == 5.0
    assert Study(out).weights_path(a.id).exists()
    assert left.status == "pruned" and left.metrics["params"] == 2e6  # not a latency matter

    # a bound the net cannot meet even on a quiet machine: it stays pruned
    cfg_tight = load_config(None, [*FAST, "constraints=['latency_ms <= 0.0001']"], budget=3)
    again.status, again.metrics["latency_ms"] = "pruned", 5.0
    store.finish_trial(again)
    tight = build_evaluator(cfg_tight)
    assert Experiment(cfg_tight, out)._recheck_pruned(store, tight, Study(out)) == []
    still = store.trial(a.id)
    assert still is not None and still.status == "pruned"
    assert still.metrics["latency_ms"] < 5.0  # the quiet reading replaced the inflated one
    store.close()


_HOLD = (
    "import sys, time\n"
    "from hwnas.hardware.host_load import training\n"
    "with training():\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _holder():  # another process training on this host
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_training_on_the_host_is_counted_until_its_process_dies(own_markers):
    from hwnas.hardware.host_load import marker_dir, others_training, training

    assert marker_dir().parent == own_markers
    before = others_training()
    proc = _holder()
    try:
        assert others_training() == before + 1
        with training():  # this process's own training is not "another"
            assert others_training() == before + 1
    finally:
        proc.kill()  # kill -9: the kernel drops its lock, the next count tidies its file
        proc.wait()
    assert others_training() == before
    assert not [p for p in marker_dir().iterdir() if p.name.startswith(f"{proc.pid}-")]
    # a process killed before it named its marker leaves a hidden file: tidied once stale
    stale = marker_dir() / ".0-deadbeef"
    stale.touch()
    assert others_training() == before and stale.exists()  # young: it may be naming now
    os.utime(stale, (time.time() - 120, time.time() - 120))
    assert others_training() == before and not stale.exists()


def test_readings_taken_beside_another_training_are_flagged_and_re_timed(tmp_path, own_markers):
    """One process alone, but another training on the host: its latency readings say so,
    the search re-times the candidates that decide the front, and the summary counts them."""
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config
    from hwnas.experiment.study import Study

    proc = _holder()
    try:
        res = run_search(load_config(None, FAST, budget=3), tmp_path / "run")
        # a device model's latency is computed, not read: never busy
        computed = run_search(
            load_config(None, [*FAST, "target=device"], budget=2), tmp_path / "device"
        )
    finally:
        proc.kill()
        proc.wait()
    assert all("latency_ms" in t.metrics for t in computed.trials)
    assert not any("latency_busy" in t.metrics for t in computed.trials)
    assert "busy_readings" not in computed.summary
    trials = Study(tmp_path / "run").trials()
    assert all(t.metrics["latency_busy"] >= 1 for t in trials if "latency_ms" in t.metrics)
    assert res.summary["busy_readings"]["n"] == len(trials)
    # the quiet re-timing ran although the executor had one worker: every feasible trial was
    # timed again, as with several workers
    assert all(len(t.metrics.get("latency_readings_ms", [])) >= 2 for t in trials)
    alone = run_search(load_config(None, FAST, budget=3), tmp_path / "alone")
    assert "busy_readings" not in alone.summary
    assert all("latency_busy" not in t.metrics for t in alone.trials)


def test_a_search_started_beside_another_training_warns_in_one_line(
    tmp_path, own_markers, monkeypatch
):
    """Searches started side by side by hand oversubscribe a small CPU: the second says so
    as it starts (the first cannot know), and a search alone says nothing of it."""
    from conftest import fast_args, run_cli

    from hwnas.experiment.lock import StudyLock

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # set, it would silence the warning
    env = {"TMPDIR": str(own_markers), "HWNAS_TEST_FRESH": "1"}  # the test's own markers
    search = ["search", *fast_args(), "--budget", "1", "--quiet"]
    proc = _holder()
    try:
        beside = run_cli(*search, "--out", str(tmp_path / "beside"), env=env)
    finally:
        proc.kill()
        proc.wait()
    assert beside.returncode == 0, beside.stderr
    warned = [ln for ln in beside.stderr.splitlines() if "other hwnas training" in ln]
    assert len(warned) == 1 and warned[0].startswith("warning: 1 other hwnas training running")
    assert "OMP_NUM_THREADS" in warned[0]
    alone = run_cli(*search, "--out", str(tmp_path / "alone"), env=env)
    assert alone.returncode == 0, alone.stderr
    assert "other hwnas training" not in alone.stderr
    proc = _holder()
    try:  # threads already shared out: nothing to advise
        shared = run_cli(
            *search, "--out", str(tmp_path / "shared"), env={**env, "OMP_NUM_THREADS": "1"}
        )
        # a start refused (another writer holds the study) says only that
        with StudyLock(tmp_path / "alone"):
            refused = run_cli(*search, "--out", str(tmp_path / "alone"), env=env)
    finally:
        proc.kill()
        proc.wait()
    assert shared.returncode == 0 and "other hwnas training" not in shared.stderr
    assert refused.returncode == 2 and "other hwnas training" not in refused.stderr
    assert "in use by another hwnas process" in refused.stderr


def test_a_search_leaves_its_callers_torch_threads_as_it_found_them(tmp_path):
    """`estimator.threads` governs the driver while a search runs; an API caller's own
    count is back afterwards (a test left on one thread once broke an exact-equality test)."""
    import torch
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        seen: list[int] = []
        cfg = load_config(None, [*FAST, "estimator.threads=1"], budget=1)
        run_search(cfg, tmp_path / "run", on_start=lambda _: seen.append(torch.get_num_threads()))
        assert seen == [1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def _gpu_seen(_: int) -> tuple[int, str | None]:
    time.sleep(0.2)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_worker_processes_spread_over_the_visible_gpus(monkeypatch):
    """With several GPUs each worker process takes the next one, round-robin, before CUDA
    starts in it (from what CUDA_VISIBLE_DEVICES lets the driver see); checked in processes
    spawned as the process executor spawns them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from hwnas.experiment.executor import claim_gpu, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a, 3,-1")
    assert visible_gpus() == ["GPU-a", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")  # CUDA stops at the invalid entry
    assert visible_gpus() == ["0"]
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("i", 0)
    assert [claim_gpu(counter, ["a", "b", "c"]) for _ in range(4)] == ["a", "b", "c", "a"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "a"  # the claimer's own environment
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    slot = ctx.Value("i", 0)
    with ProcessPoolExecutor(4, ctx, initializer=claim_gpu, initargs=(slot, ["5", "7"])) as pool:
        seen = dict(pool.map(_gpu_seen, range(8)))
    assert slot.value == 4  # four workers started, each claimed one GPU
    assert set(seen.values()) <= {"5", "7"} and len(seen) >= 2


def test_the_process_executor_takes_gpus_only_for_cuda_runs_with_several(monkeypatch):
    from types import SimpleNamespace

    from hwnas.experiment.executor import ProcessExecutor

    section = SimpleNamespace(workers=2, retries=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    cuda = ProcessExecutor.from_config(section, None, {"device": "cuda"}, 1)  # type: ignore[arg-type]
    cpu = ProcessExecutor.from_config(section, None, {"device": "cpu"}, 1)  # type: ignore[arg-type]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    one = ProcessExecutor.from_config(section, None, {"device": "cuda"}, 1)  # type: ignore[arg-type]
    try:
        assert (cuda.gpus, cpu.gpus, one.gpus) == (["0", "1", "2"], [], [])
    finally:
        for ex in (cuda, cpu, one):
            ex.shutdown(cancel=False)


def test_gpu_workers_keep_nvlink_multicast_off_unless_the_user_says(monkeypatch):
    """On a shared several-GPU host NVLink multicast can take GPUs out of service: every
    process the executors start gets it off, and a value the user set is kept."""
    from hwnas.experiment.executor import GPU_SAFE_ENV, gpu_safe_env

    for key in GPU_SAFE_ENV:
        monkeypatch.delenv(key, raising=False)
    assert gpu_safe_env() == {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")
    assert gpu_safe_env()["NCCL_NVLS_ENABLE"] == "1"


def _worker_pids(driver: int) -> list[int]:
    from faults import children
    from test_search import _cmdline

    return [k for k in children(driver) if "spawn_main" in _cmdline(k)]


def test_a_killed_worker_s_trial_runs_again_and_nothing_is_lost_or_doubled(tmp_path):
    """`kill -9` of a worker process mid-trial (the OOM killer, a lost GPU): the trials it
    broke run again, every trial of the budget completes, none is trained twice."""
    out = tmp_path / "run"
    proc = _start(out, "--budget", "6", "--workers", "2", *fast_args("estimator.epochs=6"))
    db = out / "study.db"
    assert _wait_for(lambda: any(r[1] == "complete" for r in _rows(db)), timeout=180)
    assert _wait_for(lambda: any(r[1] == "running" for r in _rows(db)), timeout=60)
    victim = _worker_pids(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = _rows(db)
    assert [r[1] for r in rows] == ["complete"] * 6
    assert len({r[2] for r in rows}) == 6  # none trained twice as two trials
    assert "a worker process died" in (out / "hwnas.log").read_text()


class _Pool:
    """Stands in for a process pool. A job with ``{"poison": True}`` kills its worker 0.2 s in,
    which breaks the pool and every trial in flight there; other jobs complete 0.4 s in. As in
    Python 3.12, the pool breaks on a thread of its own, holding the lock that ``submit`` and
    ``shutdown`` take: a done-callback that calls either deadlocks."""

    def __init__(self, workers: int, runs: list[tuple[int, str]]) -> None:
        self.workers, self.runs = workers, runs
        self._shutdown_lock = threading.Lock()
        self.broken = False
        self.futures: list = []

    def submit(self, fn, job):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        from hwnas.experiment.evaluate import Outcome

        with self._shutdown_lock:
            if self.broken:
                raise BrokenProcessPool("the pool is not usable anymore")
            fut: Future = Future()
            self.futures.append(fut)
        self.runs.append((self.workers, json.dumps(job.arch)))

        def poison():
            time.sleep(0.2)
            with self._shutdown_lock:
                self.broken = True
                for f in self.futures:
                    if not f.done():
                        f.set_exception(BrokenProcessPool("a child process terminated abruptly"))

        def finish():
            time.sleep(0.4)
            with self._shutdown_lock:
                if not fut.done():
                    fut.set_result(Outcome("complete", {"accuracy": 0.5}))

        threading.Thread(target=poison if job.arch.get("poison") else finish).start()
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        with self._shutdown_lock:
            pass


def test_a_trial_that_kills_its_worker_fails_alone_and_spares_the_others(monkeypatch):
    """A healthy trial broken with a poisonous one runs again beside it once, then alone, and
    completes; the poisonous one fails only after it killed its worker running alone, with
    its re-runs spent (``retries`` 2: three runs)."""
    from hwnas.experiment.evaluate import Job
    from hwnas.experiment.executor import ProcessExecutor

    runs: list[tuple[int, str]] = []
    monkeypatch.setattr(ProcessExecutor, "_new_pool", lambda self, w: _Pool(w, runs))
    ex = ProcessExecutor({}, workers=2, retries=2)
    bad = ex.submit(Job({"poison": True}, seed=0))
    good = ex.submit(Job({"x": 1}, seed=0))
    assert good.result(timeout=10).status == "complete"
    outcome = bad.result(timeout=10)
    assert outcome.status == "failed"
    assert "died 3 times, the last while it ran alone" in outcome.error
    poison = [w for w, arch in runs if "poison" in arch]
    assert poison == [2, 2, 1]  # beside the other trial twice, then alone
    ex.shutdown(cancel=False)


def test_a_one_off_death_costs_one_re_run_beside_the_others(monkeypatch):
    from hwnas.experiment.evaluate import Job
    from hwnas.experiment.executor import ProcessExecutor

    runs: list[tuple[int, str]] = []
    pools: list[_Pool] = []

    def new_pool(self, w):
        pools.append(_Pool(w, runs))
        if len(pools) == 1:  # the first pool loses a worker to something outside the search
            pools[0].submit(None, Job({"poison": True}, seed=0))
        return pools[-1]

    monkeypatch.setattr(ProcessExecutor, "_new_pool", new_pool)
    ex = ProcessExecutor({}, workers=2, retries=0)
    jobs = [ex.submit(Job({"x": i}, seed=0)) for i in range(2)]
    assert [j.result(timeout=10).status for j in jobs] == ["complete", "complete"]
    # retries 0: no re-run in the shared pool, but a trial is never blamed for a death it
    # did not die alone: each ran once more, alone
    assert [w for w, arch in runs if "poison" not in arch] == [2, 2, 1, 1]
    ex.shutdown(cancel=False)


def test_a_labelled_latency_objective_is_re_timed_too(tmp_path):
    """A latency objective from a labelled source (``latency_ms@t``) is re-timed at the end
    like the target's own (it was not: only ``latency_ms`` was), each reading kept under the
    labelled name and the lowest one kept."""
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config

    cfg = load_config(
        None,
        [
            *FAST,
            "target=analytic",
            "costs=[{name: cpu-torch, label: t, threads: 1, runs: 20, blocks: 4, warmup: 3}]",
            "objectives={accuracy: max, latency_ms@t: min}",
        ],
        budget=4,
    )
    res = run_search(cfg, tmp_path / "run")
    assert res.pareto
    for t in res.pareto:
        readings = t.metrics["latency_readings_ms@t"]
        assert len(readings) >= 2 and t.metrics["latency_ms@t"] == pytest.approx(min(readings))
        assert "latency_ms" not in t.metrics  # the analytic target times nothing
    assert "near the front (latency_ms@t)" in (tmp_path / "run" / "hwnas.log").read_text()
    # show puts it beside the first latency, in milliseconds (it came last, as `g` figures)
    from conftest import run_cli

    shown = run_cli("show", str(tmp_path / "run"), env={"COLUMNS": "250"}).stdout
    header = [c.strip() for c in next(x for x in shown.splitlines() if "┃" in x).split("┃")]
    assert header[6:8] == ["latency ms", "latency ms @t"], header
    t = res.pareto[0]
    row = next(r for r in shown.splitlines() if re.match(rf"│\s*{t.id} ", r))
    assert row.split("│")[7].strip() == f"{t.metrics['latency_ms@t']:.3f}"


def test_a_net_pruned_by_a_labelled_latency_read_under_load_is_evaluated_again(tmp_path):
    """The quiet re-check covers a bound on a labelled source's latency (``latency_ms@t``):
    it looked at ``latency_ms`` alone, so a net pruned by ``latency_ms@t <= 3`` under load
    stayed pruned; a net that misses the bound even quietly keeps its lower reading."""
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config
    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.experiment import Experiment
    from hwnas.experiment.store import Store
    from hwnas.experiment.study import Study

    sets = [
        *FAST,
        "target=analytic",
        "costs=[{name: cpu-torch, label: t, threads: 1, runs: 20, blocks: 4, warmup: 3}]",
        "objectives={accuracy: max, latency_ms@t: min}",
    ]
    # a bound with room: a quiet reading on a busy CI host may come out 70 % slower
    cfg = load_config(None, [*sets, "constraints=['latency_ms@t <= 3.0']"], budget=3)
    out = tmp_path / "run"
    run_search(cfg, out)
    store = Store(out / "study.db")
    a = min(store.trials("complete"), key=lambda t: t.metrics["latency_ms@t"])
    a.status, a.curve, a.error = "pruned", [], "latency_ms@t too high"
    a.metrics = {k: v for k, v in a.metrics.items() if k not in ("accuracy", "val_loss")}
    a.metrics["latency_ms@t"] = 50.0  # as if read while another worker trained
    store.finish_trial(a)

    exp = Experiment(cfg, out)
    evaluator = build_evaluator(cfg)
    assert exp._bounded_latencies(evaluator) == ["latency_ms@t"]
    assert a.id in exp._recheck_pruned(store, evaluator, Study(out))  # with any near the bound
    again = store.trial(a.id)
    assert again is not None and again.status == "complete" and "accuracy" in again.metrics
    assert Study(out).weights_path(a.id).exists()  # trained
    assert again.info["pruned_under_load"] == {"latency_ms@t": 50.0}

    tight = load_config(None, [*sets, "constraints=['latency_ms@t <= 0.0001']"], budget=2)
    again.status, again.metrics["latency_ms@t"] = "pruned", 50.0
    store.finish_trial(again)
    assert Experiment(tight, out)._recheck_pruned(store, build_evaluator(tight), Study(out)) == []
    still = store.trial(a.id)
    assert still is not None and still.status == "pruned"
    assert still.metrics["latency_ms@t"] < 50.0  # the quiet reading replaced the inflated one
    assert "latency_ms@t <= 0.0001" in (still.error or "")
    store.close()


def test_a_net_still_pruned_keeps_each_latencys_lower_reading_and_its_flag(tmp_path):
    """Re-checked on the quiet machine and still over a bound, a net keeps the lower of its two
    readings of each latency; a first reading kept (it was lower) keeps its busy flag."""
    from conftest import FAST

    from hwnas.api import run_search
    from hwnas.experiment.config import load_config
    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.experiment import Experiment
    from hwnas.experiment.store import Store
    from hwnas.experiment.study import Study

    sets = [
        *FAST,
        "target=cpu-torch",
        "costs=[{name: cpu-torch, label: t, threads: 1, runs: 20, blocks: 4, warmup: 3}]",
        "objectives={accuracy: max, latency_ms: min}",
    ]
    run_search(load_config(None, sets, budget=1), tmp_path / "run")
    store = Store(tmp_path / "run" / "study.db")
    a = store.trials()[0]
    a.status, a.curve, a.error = "pruned", [], "too slow"
    a.metrics["latency_ms"] = 50.0  # inflated by the load
    a.metrics["latency_ms@t"] = 1e-5  # lower than any quiet reading will be
    a.metrics["latency_busy"] = 2
    store.finish_trial(a)
    tight = ["constraints=['latency_ms <= 0.0001', 'latency_ms@t <= 0.0001']"]
    cfg = load_config(None, [*sets, *tight], budget=1)
    exp = Experiment(cfg, tmp_path / "run")
    evaluator = build_evaluator(cfg)
    assert exp._bounded_latencies(evaluator) == ["latency_ms", "latency_ms@t"]
    assert exp._recheck_pruned(store, evaluator, Study(tmp_path / "run")) == []
    still = store.trial(a.id)
    assert still is not None and still.status == "pruned"
    assert still.metrics["latency_ms"] < 50.0 and still.metrics["latency_ms@t"] == 1e-5
    assert still.metrics["latency_busy"] == 2  # the kept @t reading was taken under load
    assert "latency_ms <= 0.0001" in (still.error or "")
    store.close()


def test_re_timing_one_latency_quietly_keeps_the_flag_of_another_read_under_load():
    """``latency_busy`` flags a trial whose kept latencies include one read under load: a
    quiet re-timing of one of them clears it only once every latency it holds is quiet."""
    from hwnas.experiment.experiment import _mark_reading

    both = {"latency_ms", "latency_ms@cpu"}  # the latencies the search re-times here
    m = {"latency_ms": 1.0, "latency_ms@cpu": 5.0, "latency_busy": 2, "macs": 3}
    _mark_reading(m, "latency_ms", 0, both)
    assert m["latency_busy"] == 2 and m["latency_quiet"] == ["latency_ms"]
    _mark_reading(m, "latency_ms@cpu", 1, both)  # kept, but read under load again
    assert m["latency_busy"] == 1 and m["latency_quiet"] == ["latency_ms"]
    _mark_reading(m, "latency_ms@cpu", 0, both)
    assert "latency_busy" not in m and "latency_quiet" not in m
    # a latency the search never re-times (a board's, a reported one) holds nothing up
    m = {"latency_ms": 2.0, "latency_ms@t": 5.0, "latency_busy": 1}
    _mark_reading(m, "latency_ms@t", 0, {"latency_ms@t"})
    assert "latency_busy" not in m and "latency_quiet" not in m
    quiet = {"latency_ms": 1.0}
    _mark_reading(quiet, "latency_ms", 0, both)
    assert quiet == {"latency_ms": 1.0}  # nothing to clear, nothing added
    _mark_reading(quiet, "latency_ms", 3, both)
    assert quiet["latency_busy"] == 3 and "latency_quiet" not in quiet


def test_a_broken_latency_bound_is_read_twice_under_the_sources_label_too():
    """A reading over a latency bound is taken again and the faster kept, for a labelled
    source's ``latency_ms@label`` as for the target's ``latency_ms`` (the second reading of a
    labelled source was taken and thrown away)."""
    from types import SimpleNamespace

    from hwnas.core.constraints import Constraint
    from hwnas.experiment.evaluate import Evaluator, Source
    from hwnas.hardware.base import CostModel

    class Slow(CostModel):
        retry_on_violation = True

        def costs(self, cand):
            return {"latency_ms": 10.0}

        def remeasure(self, cand):
            return {"latency_ms": 1.0}

    for label, key in ((None, "latency_ms"), ("x", "latency_ms@x")):
        me = SimpleNamespace(constraints=[Constraint.parse(f"{key} <= 5")])
        metrics: dict = {}
        Evaluator._costs(me, Source(Slow(), None, label), None, metrics)  # type: ignore[arg-type]
        assert metrics[key] == 1.0, (label, metrics)


def test_a_ctrl_c_while_a_worker_starts_waits_until_it_has_started():
    """A Ctrl-C that lands while the pool starts a worker is raised after, not inside: the
    child has its start-up data, and the child starts with SIGINT blocked (it ignores it once
    its initializer runs), so a terminal's Ctrl-C prints no traceback from a half-born worker."""
    from hwnas.experiment.executor import _spawn_guard

    # Python's own handler, as a terminal's run has it: a run started in the background of a
    # non-interactive shell inherits SIGINT ignored, and nothing would be raised
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_while_spawning(_spawn_guard)
    finally:
        signal.signal(signal.SIGINT, started_with)


def _ctrl_c_while_spawning(_spawn_guard: typing.Any) -> None:
    import subprocess
    import sys

    reached = []
    with pytest.raises(KeyboardInterrupt), _spawn_guard():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        reached.append("after the signal")
        child = subprocess.run(
            [sys.executable, "-c", "print(open('/proc/self/status').read())"],
            capture_output=True,
            text=True,
            check=True,
        )
    assert reached == ["after the signal"]
    blocked = next(ln for ln in child.stdout.splitlines() if ln.startswith("SigBlk:"))
    assert int(blocked.split()[1], 16) & (1 << (signal.SIGINT - 1))
    # the driver's own mask and handler are back as they were
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
