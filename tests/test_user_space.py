"""The documented user-space API, through the worked example in examples/tiny_space.py."""

from __future__ import annotations

import json
import random
import sys

import pytest
import torch
from conftest import REPO, run_cli

from hwnas.core.errors import UserError
from hwnas.experiment.config import load_config
from hwnas.space import make_space
from hwnas.space.base import InvalidArch

sys.path.insert(0, str(REPO / "examples"))


def test_example_space_operations():
    space = make_space(
        load_config(
            None, ["space.name=tiny_space:TinyCNNSpace", "space.options.max_width=24"]
        ).space
    )
    assert space.size() == 2 * 3 * 3 * 2
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        arch = space.sample(rng)
        seen.add(space.arch_hash(arch))
        child = space.mutate(arch, rng)
        assert sum(arch[k] != child[k] for k in arch) == 1
        if child["width"] != arch["width"]:
            assert abs(child["width"] - arch["width"]) == 8  # integers move one step
    assert len(seen) == space.size()  # sampling reaches every network
    arch = {"op1": "conv5", "op2": "dw5", "width": 16, "skip": True}
    assert len(space.neighbours(arch)) == 1 + 2 + 2 + 1
    assert space.encode(arch) == [1.0, 1.0, 0.5, 0.0]
    assert space.describe(arch) == "op1=conv5 op2=dw5 width=16 skip=True"
    model = space.build(arch, (1, 8, 8), 10)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(InvalidArch, match="width=40"):
        space.validate({**arch, "width": 40})


def test_bad_user_space_paths():
    with pytest.raises(UserError, match="cannot import"):
        make_space(load_config(None, ["space.name=no_such_module:Space"]).space)
    with pytest.raises(UserError, match="space.options"):
        make_space(
            load_config(None, ["space.name=tiny_space:TinyCNNSpace", "space.options.bogus=1"]).space
        )


def test_search_a_user_space_through_the_cli(tmp_path):
    out = tmp_path / "tiny"
    res = run_cli(
        "search",
        "--out",
        str(out),
        "--budget",
        "3",
        "-q",
        "--set",
        "space.name=tiny_space:TinyCNNSpace",
        "--set",
        "space.options.max_width=16",
        "--set",
        "estimator.epochs=2",
        "--set",
        "strategy.population=2",
        "--set",
        "strategy.sample_size=2",
        env={"PYTHONPATH": str(REPO / "examples")},
    )
    assert res.returncode == 0, res.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert [t["status"] for t in trials] == ["complete"] * 3
    assert all(t["describe"].startswith("op1=") and t["metrics"]["latency_ms"] > 0 for t in trials)
    assert trials[2]["parent_id"] in {0, 1}
