"""The Ray executor on a local Ray instance: trials run as tasks, weights come back to the
driver, `--workers` keeps Ray, a killed worker's trial re-runs (nothing lost, nothing twice),
and a missing `ray` or a bad address is a one-line error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CACHE, REPO, RESUMED_HALVING, fast_args, run_cli, same_as_one_run, show_trials

pytest.importorskip("ray")

RAY = ["executor.name=ray", "executor.local_cpus=2", "target=analytic"]


def test_a_search_on_ray_writes_weights_in_the_driver_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = fast_args(*RAY, "objectives={accuracy: max, macs: min}")
    r = run_cli("search", "--out", str(out), "--budget", "5", "--workers", "2", "-q", *args)
    assert r.returncode == 0, r.stderr
    # Ray's own chatter stays out of a quiet run (a note that other hwnas trainings share
    # the host is hwnas's, and may come when another test run trains beside this one)
    ours = [ln for ln in r.stderr.strip().splitlines() if "other hwnas training" not in ln]
    assert ours == ["5 complete"], r.stderr
    log = (out / "hwnas.log").read_text()
    assert "executor: ray at local, 2 trials in flight" in log  # --workers kept Ray
    first = show_trials(out)
    assert [t["status"] for t in first] == ["complete"] * 5
    for t in first:  # the workers' weights, written by the driver
        assert (out / "weights" / f"trial_{t['id']}.pt").stat().st_size > 1000
    r = run_cli("search", "--out", str(out), "--budget", "7", "--workers", "2", "-q", *args)
    assert r.returncode == 0, r.stderr
    again = show_trials(out)
    assert len(again) == 7
    assert [t["curve"] for t in again[:5]] == [t["curve"] for t in first]  # kept, not redone


@pytest.mark.slow
def test_a_killed_worker_s_trial_runs_again_and_nothing_is_lost(tmp_path):
    out = tmp_path / "run"
    args = fast_args(*RAY, "estimator.epochs=6", "objectives={accuracy: max, macs: min}")
    cmd = [sys.executable, "-m", "hwnas.cli", "search", "--out", str(out), "--budget", "8"]
    env = {**os.environ, "HWNAS_CACHE": CACHE}
    proc = subprocess.Popen(
        [*cmd, "--workers", "2", "-q", *args], cwd=REPO, env=env, stderr=subprocess.PIPE
    )
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        found = subprocess.run(
            ["pgrep", "-f", "ray::evaluate_remote"], capture_output=True, text=True
        ).stdout.split()
        if found and (out / "study.db").exists():
            killed = int(found[0])
            os.kill(killed, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert killed is not None, "no Ray worker was seen running a trial"
    assert proc.returncode == 0, err.decode()
    trials = show_trials(out)
    assert len(trials) == 8 and all(t["status"] == "complete" for t in trials)
    archs = [json.dumps(t["arch"], sort_keys=True) for t in trials]
    assert len(set(archs)) == len(archs)  # none trained twice as two trials


def test_ray_errors_are_one_line(tmp_path):
    r = run_cli(
        "search",
        "--out",
        str(tmp_path / "a"),
        "--set",
        "executor.name=ray",
        "--set",
        "executor.address=nowhere",
    )
    assert r.returncode == 2 and "executor.address 'nowhere'" in r.stderr
    assert "Traceback" not in r.stderr
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "ray.py").write_text("raise ImportError('no ray here')\n")
    r = run_cli(
        "search",
        "--out",
        str(tmp_path / "b"),
        "--budget",
        "1",
        *fast_args("executor.name=ray"),
        env={"PYTHONPATH": f"{fake}{os.pathsep}{REPO / 'src'}"},
    )
    assert r.returncode == 2, r.stderr
    assert "pip install 'hwnas[ray]'" in r.stderr and "Traceback" not in r.stderr


def _running_on(session: int) -> bool:
    """Whether a process of that session (a node started with `ray start`) runs a trial."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (
                os.getsid(int(proc.name)) == session
                and b"evaluate_remote" in (proc / "cmdline").read_bytes()
            ):
                return True
        except (OSError, ValueError):
            continue
    return False


@pytest.mark.slow
def test_a_search_across_two_nodes_survives_losing_one(tmp_path):
    """A head and a second node (each one CPU, so a trial runs on each); the second node is
    started as a user would on another host (`ray start`, in another working directory and
    HOME, so nothing of the driver's folders is assumed) and killed mid-search with all its
    processes: its trial runs again on the head, every trial completes."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    node = tmp_path / "node2"
    (node / "home").mkdir(parents=True)
    second = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--block", "--num-cpus=1",
         f"--address={cluster.address}"],
        cwd=node, env={**os.environ, "HOME": str(node / "home")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        ray.init(address=cluster.address)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2, "the second node did not join"
        ray.shutdown()
        out = tmp_path / "run"
        args = fast_args(
            "executor.name=ray",
            f"executor.address={cluster.address}",
            "target=analytic",
            "estimator.epochs=6",
            "objectives={accuracy: max, macs: min}",
        )
        cmd = [sys.executable, "-m", "hwnas.cli", "search", "--out", str(out), "--budget", "6"]
        env = {**os.environ, "HWNAS_CACHE": CACHE}
        proc = subprocess.Popen(
            [*cmd, "--workers", "2", "-q", *args], cwd=REPO, env=env, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if (out / "hwnas.log").exists() and _running_on(second.pid):
                break
        assert proc.poll() is None, "the search ended before a node could be lost"
        assert _running_on(second.pid), "no trial ran on the second node"
        os.killpg(second.pid, signal.SIGKILL)  # the node's raylet and its trial's worker die
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)
        second.wait()
        cluster.shutdown()
    trials = show_trials(out)
    assert len(trials) == 6 and all(t["status"] == "complete" for t in trials)
    assert sorted(t["id"] for t in trials) == list(range(6))  # 0 lost, 0 duplicated


def test_ray_proposes_the_same_archs_as_the_process_pool(tmp_path):
    """Random search does not depend on the order results arrive in: the same config and
    seed give the same archs on Ray as with worker processes."""
    archs = {}
    for kind in ("ray", "process"):
        out = tmp_path / kind
        extra = ["executor.local_cpus=2"] if kind == "ray" else []
        args = fast_args(
            f"executor.name={kind}",
            *extra,
            "strategy=random",
            "target=analytic",
            "objectives={accuracy: max, macs: min}",
        )
        r = run_cli("search", "--out", str(out), "--budget", "5", "--workers", "2", "-q", *args)
        assert r.returncode == 0, r.stderr
        archs[kind] = sorted(json.dumps(t["arch"], sort_keys=True) for t in show_trials(out))
    assert archs["ray"] == archs["process"]


def test_a_resumed_schedule_on_ray_carries_the_paused_state_both_ways(tmp_path):
    """`schedule: resume` on Ray: a paused rung's state travels back to the driver beside its
    weights and out again with its promotion, so the promoted arch ends exactly as one
    uninterrupted in-process training of its root trial."""
    overrides = [*RAY, *RESUMED_HALVING]
    out = tmp_path / "run"
    args = fast_args(*overrides)
    r = run_cli("search", "--out", str(out), "--budget", "4", "--workers", "2", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    promoted = [t for t in trials if t["info"].get("promoted_from") is not None]
    assert promoted
    sources = {p["info"]["promoted_from"] for p in promoted}
    waiting = {t["id"] for t in trials if t["info"].get("train") == {"schedule_epochs": 4}}
    left = {p.name for p in (out / "weights").glob("*.resume.pt")}
    assert left == {f"trial_{i}.resume.pt" for i in waiting - sources}  # came back from Ray
    p = promoted[0]
    # 1 thread, as each of the 2 Ray workers on 2 CPUs: the same sums in the same order
    same_as_one_run(out, p, trials[p["info"]["promoted_from"]], overrides, threads=1)
