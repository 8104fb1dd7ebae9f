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
from hwnas.space.user import Choice, Integer, UserSpace, optional

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
    # an option that makes a choice wrong-typed or empty is refused as the space is made
    for value, needle in (("abc", "must be an integer (got 'abc')"), ("4", "holds no value")):
        cfg = load_config(
            None, ["space.name=tiny_space:TinyCNNSpace", f"space.options.max_width={value}"]
        )
        with pytest.raises(UserError, match="space.options: ") as err:
            make_space(cfg.space)
        assert needle in str(err.value)
    with pytest.raises(ValueError, match="step must be at least 1"):
        Integer(1, 4, step=0)
    import numpy as np

    assert Integer(8, np.int64(24), step=8).values() == [8, 16, 24]  # numpy ints are integers
    with pytest.raises(TypeError, match="must be an integer"):
        Integer(8, 24.0)


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


class GatedSpace(UserSpace):
    """``k`` is the kernel of an optional conv: without the conv it builds nothing, so the
    canonical form drops it (as the base class asks of choices that don't change the net)."""

    choices = {"conv": optional(False), "k": Choice(3, 5, 7), "fixed": Choice("relu")}

    def canonical(self, arch):
        self.validate(arch)
        return {"conv": arch["conv"], "k": arch["k"] if arch["conv"] else None}

    def build_model(self, arch, input_shape, num_classes):
        raise NotImplementedError


class OneNetSpace(UserSpace):
    choices = {"op": Choice("conv3"), "width": Integer(8, 8)}

    def build_model(self, arch, input_shape, num_classes):
        raise NotImplementedError


def test_user_mutate_always_changes_the_network():
    """Space.mutate promises a child that builds another network: never a no-op."""
    space = GatedSpace()
    rng = random.Random(0)
    off = {"conv": False, "k": 3, "fixed": "relu"}
    for arch in (off, {**off, "conv": True}, *(space.sample(rng) for _ in range(20))):
        for _ in range(50):
            child = space.mutate(arch, rng)
            space.validate(child)
            assert space.arch_hash(child) != space.arch_hash(arch)
    hashes = [space.arch_hash(n) for n in space.neighbours(off)]
    assert len(hashes) == len(set(hashes)) and space.arch_hash(off) not in hashes
    # a space of one network has nothing to mutate to: say so rather than return the input
    single = OneNetSpace()
    with pytest.raises(InvalidArch, match="one network"):
        single.mutate(single.sample(rng), rng)
