"""Executors (trials in worker processes) and the budget across resumptions."""

from __future__ import annotations

import json
import signal

import pytest
from conftest import fast_args, run_cli
from test_graph_nash import _nash_args
from test_search import _rows, _start, _wait_for, show_json

from hwnas.experiment.config import ConfigError, validate_config


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
