"""REINFORCE: the policy learns what is rewarded, MnasNet's reward trades accuracy for cost,
the state resumes exactly, and it runs from the command line on any encodable space."""

from __future__ import annotations

import json
import random

import pytest
from conftest import fast_args, run_cli

from hwnas.space.cell import CellSpace
from hwnas.strategy.base import Result
from hwnas.strategy.reinforce import Reinforce


def _score(arch):
    return sum(op == "nor_conv_3x3" for op in arch["ops"]) / len(arch["ops"])


def test_policy_learns_the_rewarded_choice():
    space = CellSpace()
    s = Reinforce(space, [("accuracy", "max")], seed=0)
    first, last = [], []
    for i in range(400):
        arch = s.ask().arch
        (first if i < 50 else last).append(_score(arch))
        s.tell(Result(i, arch, "complete", {"accuracy": _score(arch)}))
    assert sum(last[-50:]) / 50 > sum(first) / 50 + 0.3  # random: 0.2 of the edges
    for key in s.choices:
        p = dict(zip(s.choices[key], s._probs(key), strict=True))
        assert max(p, key=p.get) == "nor_conv_3x3"


def test_mnasnet_reward_and_failures():
    space = CellSpace()
    s = Reinforce(space, [("accuracy", "max"), ("latency_ms", "min")], seed=0, latency_target=2.0)
    arch = space.sample(random.Random(0))
    ok = Result(0, arch, "complete", {"accuracy": 0.9, "latency_ms": 4.0})
    assert s._reward(ok) == pytest.approx(0.9 * 2.0**-0.07)
    fast = Result(1, arch, "complete", {"accuracy": 0.9, "latency_ms": 1.0})
    assert s._reward(fast) > 0.9 > s._reward(ok)
    assert s._reward(Result(2, arch, "failed", {})) == 0.0
    assert s._reward(Result(3, arch, "pruned", {"accuracy": 0.9}, feasible=False)) == 0.0


def test_state_resumes_the_same_policy():
    space = CellSpace()
    a = Reinforce(space, [("accuracy", "max"), ("latency_ms", "min")], seed=3)
    for i in range(30):
        arch = a.ask().arch
        a.tell(Result(i, arch, "complete", {"accuracy": _score(arch), "latency_ms": 1 + i % 5}))
    state = json.loads(json.dumps(a.state()))  # as the store keeps it
    b = Reinforce(space, [("accuracy", "max"), ("latency_ms", "min")], seed=99)
    b.load_state(state)
    assert [a.ask().arch for _ in range(10)] == [b.ask().arch for _ in range(10)]


def test_reinforce_searches_from_the_command_line(tmp_path):
    res = run_cli(
        "search",
        "--out",
        str(tmp_path / "r"),
        "--budget",
        "4",
        "-q",
        *fast_args("strategy=reinforce"),
    )
    assert res.returncode == 0, res.stderr
    cell = run_cli(
        "search",
        "--out",
        str(tmp_path / "c"),
        "-q",
        "--set",
        "strategy=reinforce",
        "--set",
        "space=graph",
    )
    assert cell.returncode == 2 and "needs an encodable space" in cell.stderr
