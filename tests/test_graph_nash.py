"""Graph space, function-preserving morphisms and NASH hill climbing."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from conftest import run_cli

from hwnas.space.base import InvalidArch
from hwnas.space.config import GraphSpaceConfig
from hwnas.space.graph import Graph, GraphSpace, apply_morph, initial_arch

SHAPE = (3, 8, 8)


def _space(**kw):
    return GraphSpace(GraphSpaceConfig(channels=[8, 16], max_channels=96, **kw))


def _randomise(net: torch.nn.Module, scale: float = 0.05) -> None:
    """Make every weight and BN statistic non-trivial, as after training."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))


@torch.no_grad()
def _check_sequences(space: GraphSpace, n_seq: int, steps: int, kinds=None) -> float:
    torch.manual_seed(0)
    worst = 0.0
    x = torch.randn(3, *SHAPE)
    for seq in range(n_seq):
        rng = random.Random(seq)
        arch = copy.deepcopy(space.start)
        net = space.build(arch, SHAPE, 10)
        _randomise(net, 0.2)
        for _ in range(steps):
            net.eval()
            ref = net(x)
            m = space.random_morph(arch, rng, kinds)
            arch, state = apply_morph(arch, m, net.state_dict())
            child = space.build(arch, SHAPE, 10)
            child.load_state_dict(state)  # strict: every parameter is accounted for
            child.eval()
            worst = max(worst, float((child(x) - ref).abs().max()))
            _randomise(child)  # zero-initialised branches now carry signal too
            net = child
    return worst


def test_morphisms_preserve_the_function():
    worst = _check_sequences(_space(), n_seq=60, steps=6)
    assert worst <= 1e-5


def test_joint_scaling_preserves_the_function_and_grows_depth_and_width():
    space = _space(morphisms=["scale", "skip"])
    assert _check_sequences(space, n_seq=10, steps=3, kinds=("scale",)) <= 1e-5
    arch, _ = apply_morph(space.start, {"kind": "scale", "depth": 1.2, "width": 1.1, "seed": 1})
    before, after = Graph(space.start).convs(), Graph(arch).convs()
    assert len(after) == 2 * len(before)  # ceil(1 * 1.2) = 2 convs per level
    assert [n["c"] for n in after if n["id"] in {b["id"] for b in before}] == [9, 18]


def test_each_morphism_changes_the_graph_as_specified():
    start = initial_arch([8, 16])
    conv1 = start["nodes"][0]["id"]
    deeper, _ = apply_morph(start, {"kind": "deeper", "node": conv1, "k": 5})
    g = Graph(deeper)
    assert len(g.convs()) == 3 and g.channels[deeper["nodes"][1]["id"]] == 8
    wider, _ = apply_morph(start, {"kind": "wider", "node": conv1, "c": 32, "seed": 0})
    assert Graph(wider).channels[conv1] == 32
    last = start["nodes"][-1]["id"]
    pool = start["nodes"][1]["id"]
    cat, _ = apply_morph(start, {"kind": "skip", "from": pool, "to": last, "join": "concat"})
    assert Graph(cat).channels[Graph(cat).output] == 16 + 8
    add, _ = apply_morph(start, {"kind": "skip", "from": pool, "to": last, "join": "add"})
    assert Graph(add).channels[Graph(add).output] == 16


def test_space_interface():
    space = _space()
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(20)]
    assert len({space.arch_hash(a) for a in archs}) > 10
    for a in archs[:5]:
        json.dumps(a)
        space.validate(a)
        assert len(space.encode(a)) == len(space.encode(space.start))
        assert space.mutate(a, rng) != a
        assert space.describe(a)
        out = space.build(a, SHAPE, 10)(torch.zeros(2, *SHAPE))
        assert out.shape == (2, 10)
    neigh = space.neighbours(space.start)
    assert len(neigh) == len({space.arch_hash(a) for a in neigh}) > 5
    # the same graph grown in two orders hashes the same
    start = space.start
    a1, b1 = start["nodes"][0]["id"], start["nodes"][-1]["id"]
    x = apply_morph(
        apply_morph(start, {"kind": "deeper", "node": a1, "k": 3})[0],
        {"kind": "deeper", "node": b1, "k": 3},
    )[0]
    y = apply_morph(
        apply_morph(start, {"kind": "deeper", "node": b1, "k": 3})[0],
        {"kind": "deeper", "node": a1, "k": 3},
    )[0]
    assert x != y and space.arch_hash(x) == space.arch_hash(y)
    with pytest.raises(InvalidArch):
        space.validate({"nodes": [{"id": 1, "op": "conv", "in": [5], "k": 3, "c": 4}]})


def _grow(space, steps):
    """Mutate the start net up to ``steps`` times, until the space's limits refuse."""
    rng = random.Random(0)
    arch = space.start
    for _ in range(steps):
        try:
            arch = space.mutate(arch, rng)
        except InvalidArch:
            break
    return arch


def test_limits_stop_growth():
    space = GraphSpace(GraphSpaceConfig(channels=[4], max_channels=8, max_layers=2, max_nodes=4))
    g = Graph(_grow(space, 30))
    assert max(n["c"] for n in g.convs()) <= 8 and len(g.convs()) <= 2


NASH = [
    "space=graph",
    "space.channels=[8, 16]",
    "strategy=nash",
    "strategy.n_steps=2",
    "strategy.n_neigh=3",
    "strategy.n_nm=2",
    "strategy.epochs_init=3",
    "strategy.epochs_neigh=1",
    "strategy.epochs_final=1",
    "target.runs=10",
    "target.blocks=2",
    "target.warmup=2",
]


def _nash_args(*extra):
    out = []
    for item in [*NASH, *extra]:
        out += ["--set", item]
    return out


def test_nash_search_end_to_end(tmp_path):
    out = tmp_path / "nash"
    args = _nash_args("strategy.final_cutout=3")
    r = run_cli("search", "--out", str(out), "--budget", "50", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    # Algorithm 1: start net, n_steps x n_neigh candidates, the final net; then it stops
    assert len(trials) == 1 + 2 * 3 + 1
    assert all(t["status"] == "complete" for t in trials)
    start = trials[0]
    assert (
        start["parent_id"] is None
        and start["fidelity"] == {"epochs": 3}
        and start["stage"] == "search"
    )
    step1 = trials[1:4]
    assert {t["parent_id"] for t in step1} == {start["id"]}
    assert [len(t["info"]["inherit"]["morphs"]) for t in step1] == [2, 2, 0]
    # the parent of step 2 is the best of step 1 by validation accuracy
    best1 = max(step1, key=lambda t: t["metrics"]["accuracy"])
    step2 = trials[4:7]
    assert {t["parent_id"] for t in step2} == {best1["id"]}
    # weights were inherited: the continued parent starts where it stood and improves on it
    assert step1[2]["arch"] == start["arch"]
    assert step1[2]["metrics"]["accuracy"] >= start["metrics"]["accuracy"] - 0.05
    final = trials[-1]
    assert final["info"]["nash"]["final"] and final["fidelity"] == {"epochs": 1}
    assert final["stage"] == "final"
    fronts = json.loads((out / "pareto.json").read_text())["fronts_by_stage"]
    assert fronts["final"] == [final["id"]] and final["id"] not in fronts["search"]
    # cutout regularises the final training only
    assert final["info"]["train"]["cutout"] == 3
    assert all("cutout" not in t["info"]["train"] for t in trials[:-1])


def test_nash_respects_a_constraint_before_training(tmp_path):
    out = tmp_path / "nash"
    r = run_cli(
        "search",
        "--out",
        str(out),
        "-q",
        *_nash_args("strategy.n_nm=4", "strategy.n_neigh=4", "constraints=['params <= 6000']"),
    )
    assert r.returncode == 0, r.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    pruned = [t for t in trials if t["status"] == "pruned"]
    assert pruned and all("params <= 6000" in t["error"] for t in pruned)
    assert all("train_seconds" not in t["metrics"] for t in pruned)
    parents = {t["parent_id"] for t in trials} - {None}
    assert all(next(t for t in trials if t["id"] == p)["status"] == "complete" for p in parents)


def test_nash_needs_the_graph_space(tmp_path):
    r = run_cli("search", "--out", str(tmp_path / "x"), "--set", "strategy=nash")
    assert r.returncode == 2
    assert "graph" in r.stderr and "Traceback" not in r.stderr


def test_scale_stops_at_the_limits():
    space = GraphSpace(
        GraphSpaceConfig(
            channels=[8, 16], morphisms=["scale"], max_channels=20, max_layers=5, max_nodes=8
        )
    )
    g = Graph(_grow(space, 6))
    assert len(g.convs()) <= 5 and len(g.nodes) <= 8
    assert len(g.convs()) > 2  # it did grow
    assert max(n["c"] for n in g.convs()) == 20  # 16 -> 18 -> 20 (capped), never beyond


def test_nash_ends_cleanly_when_the_start_net_breaks_a_constraint(tmp_path):
    out = tmp_path / "nash"
    r = run_cli("search", "--out", str(out), "-q", *_nash_args("constraints=['params <= 10']"))
    assert r.returncode == 1, r.stderr  # ended cleanly, but nothing completed
    assert "no trial completed" in r.stderr and "1 x params <= 10" in r.stderr
    assert "Traceback" not in r.stderr and "the strategy finished" in r.stdout
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert [t["status"] for t in trials] == ["pruned"]
    assert "nothing to climb from" in (out / "hwnas.log").read_text()
