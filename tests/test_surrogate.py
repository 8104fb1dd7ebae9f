"""Accuracy surrogates and predictor-guided evolution (`strategy: evolution` with `guide`):
the surrogate predicts unseen archs, guidance beats plain evolution on the NB201 table, the
predictions are stored and reported as held-out figures, and the state resumes exactly."""

from __future__ import annotations

import json
import random
import statistics

import numpy as np
import pytest
from conftest import run_cli
from test_bo import CONV, TABLE, _regret, _score, _table, needs_table

from hwnas.core.errors import UserError
from hwnas.space.cell import CellSpace
from hwnas.space.config import GraphSpaceConfig
from hwnas.space.graph import GraphSpace
from hwnas.strategy.base import Result
from hwnas.strategy.evolution import RegularizedEvolution
from hwnas.strategy.surrogate import GeneSurrogate, best_predicted


def test_the_surrogate_predicts_every_objective_of_unseen_archs():
    space, rng = CellSpace(), random.Random(0)
    archs = [space.sample(rng) for _ in range(100)]
    codes = [[space.ops.index(op) for op in a["ops"]] for a in archs]
    # minimisation vectors: -accuracy (first three edges) and a cost (convs anywhere)
    vectors = [[-_score(a["ops"]), float(sum(op == CONV for op in a["ops"]))] for a in archs]
    s = GeneSurrogate(2)
    assert not s.fit(codes[:2], vectors[:2], rng)  # too few results
    assert s.fit(codes[:70], vectors[:70], rng)
    pred, sd = s.predict(codes[70:])
    assert (sd > 0).all()
    for k in range(2):
        assert np.corrcoef(pred[:, k], [v[k] for v in vectors[70:]])[0, 1] > 0.9
    # the pick: dominated by the fewest told results
    told = [[0.0, 0.0], [-1.0, 1.0]]
    assert best_predicted(np.array([[0.5, 0.5], [-1.5, 2.0], [0.1, 0.1]]), told) == 1


@needs_table
def test_guided_evolution_beats_plain_evolution_on_the_nb201_table():
    table, space = _table(), CellSpace()
    obj = [("accuracy", "max")]

    def evo(seed: int, guide: int) -> RegularizedEvolution:
        return RegularizedEvolution(space, obj, seed, population=20, sample_size=10, guide=guide)

    # regret at 100 archs is bimodal (the optimum, or a local one ~0.1-0.6 below), so its mean
    # over a dozen seeds swings with one seed; what guidance buys is more seeds that reach the
    # optimum (30 seeds: 21 against 19 here; benchmarks/nb201_tabular.py had 22 against 19)
    plain = [_regret(evo(seed, 0), table, 100) for seed in range(30)]
    guided = [_regret(evo(seed, 10), table, 100) for seed in range(30)]
    hits = sum(r < 0.01 for r in guided)  # seeds whose pick is the optimum
    assert hits > sum(r < 0.01 for r in plain) and hits >= 20
    assert statistics.median(guided) < 0.01


def test_guided_proposals_carry_their_prediction_and_resume_exactly():
    space = CellSpace()
    obj = [("accuracy", "max"), ("latency_ms", "min")]

    def tell(s: RegularizedEvolution, i: int, arch: dict) -> None:
        m = {"accuracy": _score(arch["ops"]), "latency_ms": 1.0 + arch["ops"].count(CONV)}
        s.tell(Result(i, arch, "complete", m))

    a = RegularizedEvolution(space, obj, seed=2, population=8, sample_size=3, guide=5)
    for i in range(20):
        tell(a, i, a.ask().arch)
    proposal = a.ask()
    assert proposal.info["guided"] == 5 and set(proposal.info["predicted"]) == {
        "accuracy",
        "latency_ms",
    }
    assert proposal.info["predicted"]["latency_ms"] > 0  # in the metric's own units
    state = json.loads(json.dumps(a.state()))
    b = RegularizedEvolution(space, obj, seed=99, population=8, sample_size=3, guide=5)
    b.load_state(state)
    for i in range(5):
        pa, pb = a.ask(), b.ask()
        assert pa.arch == pb.arch and pa.info == pb.info
        tell(a, 30 + i, pa.arch)
        tell(b, 30 + i, pb.arch)
    with pytest.raises(UserError, match="encodable"):
        RegularizedEvolution(GraphSpace(GraphSpaceConfig()), obj, seed=0, guide=5)


@needs_table
def test_a_guided_search_reports_its_surrogate_held_out(tmp_path):
    out = tmp_path / "g"
    args = ["search", "--config", "configs/nb201_accuracy.yaml", "--set", f"estimator.path={TABLE}"]
    r = run_cli(*args, "--set", "strategy.guide=8", "--budget", "60", "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    shown = run_cli("show", str(out))
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("surrogate, held out"))
    n = int(line.split("(")[1].split()[0])
    rho = float(line.split("Spearman ")[1].split(",")[0])
    guided = 60 - 20  # after the population's 20 samples
    assert n >= guided - 5 and rho > 0.2
    assert "surrogate, held out" in (out / "hwnas.log").read_text()
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    picked = [t for t in trials if "predicted" in t["info"]]
    assert len(picked) == n and all(0 < t["info"]["predicted"]["accuracy"] < 1 for t in picked)


def test_the_pick_with_two_objectives_fills_a_gap_of_the_front():
    """Not the child beating the most told results (a near-copy of a dense corner), but the
    one adding the most hypervolume; a dominated child never wins over either."""
    from hwnas.strategy.surrogate import best_predicted

    told = [[0.0, 1.0], [0.05, 0.9], [0.1, 0.85], [1.0, 0.0]]  # dense corner, then a gap
    children = np.array(
        [
            [0.04, 0.86],  # just past the dense corner: beats a told point, adds little
            [0.5, 0.4],  # in the gap: beats none, adds the most
            [0.6, 0.95],  # dominated by the front
        ]
    )
    assert best_predicted(children, told) == 1
    assert best_predicted(children[[0, 2]], told) == 0
    assert best_predicted(np.array([[0.3], [0.2]]), [[0.5], [0.1]]) == 1  # one objective
