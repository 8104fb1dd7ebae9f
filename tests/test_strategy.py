from __future__ import annotations

import json
import random

import pytest

from hwnas.core.errors import ConfigError
from hwnas.experiment.config import load_config
from hwnas.space.chain import ChainSpace
from hwnas.strategy import Result, make_strategy
from hwnas.strategy.evolution import RegularizedEvolution
from hwnas.strategy.random import RandomSearch

OBJ = [("accuracy", "max"), ("latency_ms", "min")]


def fake_metrics(space, arch):
    """A deterministic landscape: deeper/wider = more accurate and slower."""
    enc = space.encode(arch)
    size = sum(enc)
    return {
        "accuracy": 0.5 + size / (2 * len(enc)),
        "latency_ms": 0.1 + size,
        "macs": size * 1000,
        "params": size,
    }


def test_random_is_seeded():
    space = ChainSpace()
    a, b = RandomSearch(space, OBJ, 3), RandomSearch(space, OBJ, 3)
    assert [a.ask().arch for _ in range(10)] == [b.ask().arch for _ in range(10)]
    assert [a.ask().arch for _ in range(3)] != [
        RandomSearch(space, OBJ, 4).ask().arch for _ in range(3)
    ]


def test_evolution_samples_until_population_then_mutates_with_parent():
    space = ChainSpace()
    evo = RegularizedEvolution(space, OBJ, 0, population=4, sample_size=2)
    for i in range(4):
        p = evo.ask()
        assert p.parent_id is None
        evo.tell(Result(i, p.arch, "complete", fake_metrics(space, p.arch)))
    child = evo.ask()
    assert child.parent_id in {0, 1, 2, 3}
    assert child.info["op"] in {"mutate", "crossover"}


def test_evolution_ages_out_oldest_and_ignores_failures():
    space = ChainSpace()
    evo = RegularizedEvolution(space, OBJ, 0, population=3, sample_size=2)
    rng = random.Random(0)
    for i in range(5):
        arch = space.sample(rng)
        evo.tell(Result(i, arch, "complete", fake_metrics(space, arch)))
    evo.tell(Result(9, space.sample(rng), "failed", {}))
    evo.tell(Result(10, space.sample(rng), "pruned", {"latency_ms": 9.0}))
    evo.tell(
        Result(
            11,
            space.sample(rng),
            "complete",
            {"accuracy": 0.99, "latency_ms": 0.01},
            feasible=False,
        )
    )
    assert [m["id"] for m in evo.population] == [2, 3, 4]


def test_evolution_tolerates_out_of_order_results():
    space = ChainSpace()
    evo = RegularizedEvolution(space, OBJ, 0, population=4, sample_size=2)
    asked = [(i, evo.ask()) for i in range(6)]
    for i, p in reversed(asked):  # results come back in reverse
        evo.tell(Result(i, p.arch, "complete", fake_metrics(space, p.arch)))
    assert len(evo.population) == 4
    assert evo.ask().parent_id is not None


def test_pareto_selection_prefers_non_dominated():
    space = ChainSpace()
    evo = RegularizedEvolution(space, OBJ, 0, population=10, sample_size=10)
    rng = random.Random(0)
    for i in range(10):
        arch = space.sample(rng)
        good = i == 7
        evo.tell(
            Result(
                i,
                arch,
                "complete",
                {"accuracy": 0.99 if good else 0.5, "latency_ms": 0.1 if good else 1.0 + i},
            )
        )
    assert {evo.ask().parent_id for _ in range(20)} == {7}


def test_scalar_selection_uses_weights():
    space = ChainSpace()
    for weights, parent in (
        ({"accuracy": 1.0, "latency_ms": 0.0}, 0),
        ({"accuracy": 0.0, "latency_ms": 1.0}, 1),
    ):
        evo = RegularizedEvolution(
            space, OBJ, 0, population=2, sample_size=2, selection="scalar", weights=weights
        )
        rng = random.Random(0)
        evo.tell(Result(0, space.sample(rng), "complete", {"accuracy": 0.9, "latency_ms": 5.0}))
        evo.tell(Result(1, space.sample(rng), "complete", {"accuracy": 0.8, "latency_ms": 0.1}))
        assert {evo.ask().parent_id for _ in range(5)} == {parent}
    # a weight that would weigh nothing is refused where a config is read, naming it: a
    # metric that is no objective (a typo), or weights under pareto selection
    for sets, said in (
        (["strategy.selection=scalar", "strategy.weights.latency=2"], "latency is no objective"),
        (["strategy.weights.latency_ms=2"], "only `selection: scalar` weighs objectives"),
    ):
        with pytest.raises(ConfigError, match=said):
            load_config(None, sets)


def test_state_round_trip_continues_identically():
    space = ChainSpace()
    evo = RegularizedEvolution(space, OBJ, 5, population=3, sample_size=2)
    for i in range(4):
        p = evo.ask()
        evo.tell(Result(i, p.arch, "complete", fake_metrics(space, p.arch)))
    state = json.loads(json.dumps(evo.state()))  # must survive JSON
    from hwnas.strategy.config import EvolutionStrategyConfig

    clone = make_strategy(EvolutionStrategyConfig(population=3, sample_size=2), space, OBJ, 999)
    clone.load_state(state)
    assert [evo.ask().arch for _ in range(5)] == [clone.ask().arch for _ in range(5)]


def _duplicate_asks(fresh_tries: int, seed: int) -> int:
    from hwnas.space.cell import CellSpace

    space = CellSpace()
    evo = RegularizedEvolution(space, OBJ, seed, population=5, sample_size=5, fresh_tries=0)
    evo.fresh_tries = fresh_tries
    seen: set[str] = set()
    dups = 0
    for i in range(150):
        if i == 75:  # resume mid-run: the memory of what was proposed survives
            state = json.loads(json.dumps(evo.state()))
            evo = RegularizedEvolution(space, OBJ, 0, 5, 5, fresh_tries=fresh_tries)
            evo.load_state(state)
        arch = evo.ask().arch
        h = space.arch_hash(arch)
        dups += h in seen
        seen.add(h)
        evo.tell(Result(i, arch, "complete", fake_metrics(space, arch)))
    return dups


def test_evolution_fresh_tries_avoids_proposing_seen_archs():
    """A tournament of the whole population keeps picking the same parent, so plain mutation
    re-proposes archs often; with fresh_tries the children are nearly always new."""
    plain = [_duplicate_asks(0, s) for s in range(3)]
    fresh = [_duplicate_asks(10, s) for s in range(3)]
    assert min(plain) >= 8
    assert max(fresh) == 0


def test_optuna_strategy_ask_tell_and_resume_state():
    import pytest

    pytest.importorskip("optuna")
    from hwnas.space.cell import CellSpace
    from hwnas.space.config import CellSpaceConfig
    from hwnas.strategy.optuna import OptunaStrategy

    space = CellSpace(CellSpaceConfig())
    strat = OptunaStrategy(space, OBJ, 0, sampler="tpe")
    asked = [strat.ask() for _ in range(6)]
    for i, p in reversed(list(enumerate(asked))):  # out of order
        space.validate(p.arch)
        score = sum(op == "nor_conv_3x3" for op in p.arch["ops"])
        strat.tell(Result(i, p.arch, "complete", {"accuracy": score / 6, "latency_ms": 1 + score}))
    strat.tell(Result(9, space.sample(random.Random(1)), "failed", {}))  # not asked: added
    assert len(strat.study.trials) == 7
    clone = OptunaStrategy(space, OBJ, 0, sampler="tpe")
    clone.load_state(json.loads(json.dumps(strat.state())))
    assert len(clone.study.trials) == 7
    assert [t.state for t in clone.study.trials] == [t.state for t in strat.study.trials]
    # chain space genes round-trip, with illegal skips repaired
    chain = ChainSpace()
    params = {k: v[-1] for k, v in chain.parameters().items()}
    chain.validate(chain.from_parameters(params))


def test_evolution_starts_from_named_archs_then_mutates_them(tmp_path):
    space = ChainSpace()
    rng = random.Random(7)
    mine = [space.sample(rng), space.sample(rng)]
    spec = tmp_path / "mine.json"
    spec.write_text(json.dumps(mine[1]))
    evo = RegularizedEvolution(
        space, OBJ, 0, population=2, sample_size=2, start=[json.dumps(mine[0]), f"@{spec}"]
    )
    first = evo.ask()
    # a resumed search does not propose the start archs again
    clone = RegularizedEvolution(space, OBJ, 0, population=2, sample_size=2, start=[])
    clone.start = evo.start
    clone.load_state(json.loads(json.dumps(evo.state())))
    second = clone.ask()
    assert [first.arch, second.arch] == mine
    assert first.info["op"] == second.info["op"] == "start"
    for i, p in enumerate([first, second]):
        clone.tell(Result(i, p.arch, "complete", fake_metrics(space, p.arch)))
    child = clone.ask()
    assert child.parent_id in {0, 1} and child.info["op"] in {"mutate", "crossover"}


def test_evolution_start_spec_errors_name_the_key(tmp_path):
    import pytest

    from hwnas.space.base import InvalidArch

    space = ChainSpace()
    for spec, words in [
        (f"@{tmp_path / 'missing.json'}", "strategy.start: file not found"),
        ("{not json", "strategy.start: not valid JSON"),
        ('{"stages": 1}', "strategy.start:"),
        ("airbench94", "strategy.start airbench94: a reference net of the fastcnn space"),
    ]:
        with pytest.raises(InvalidArch, match=words.replace("(", r"\(")):
            RegularizedEvolution(space, OBJ, 0, start=[spec])


def test_random_evolution_reinforce_and_optuna_never_propose_a_degenerate_cell():
    """A cell whose output no path reaches cannot learn (NB201's 341 such cells all score
    ~10 %): the drawing strategies draw again rather than spend a trial on one. A strategy
    state written before this has no ``skip_degenerate``: that study goes on as it began."""
    from hwnas.space.cell import CellSpace
    from hwnas.strategy.optuna import OptunaStrategy
    from hwnas.strategy.reinforce import Reinforce

    space = CellSpace()
    # one path, input -> node 1 -> output: a mutation that cuts it leaves a degenerate cell
    sparse = {"ops": ["nor_conv_3x3", "none", "none", "none", "nor_conv_3x3", "none"]}
    assert not space.degenerate(sparse)
    objectives = [("accuracy", "max")]
    for make in (
        lambda: RandomSearch(space, objectives, seed=0),
        lambda: RegularizedEvolution(space, objectives, seed=0, population=4, sample_size=2),
        lambda: Reinforce(space, objectives, seed=0),
        lambda: OptunaStrategy(space, objectives, seed=0, sampler="random"),
    ):
        proposed = {True: 0, False: 0}
        for skip in (True, False):
            s = make()
            if not skip:  # as a study resumed from before
                s.load_state({k: v for k, v in s.state().items() if k != "skip_degenerate"})
            assert s.skip_degenerate is skip
            for i in range(400):
                p = s.ask()
                proposed[skip] += space.degenerate(p.arch)
                metrics = {"accuracy": 0.9 if p.arch == sparse else 0.5}
                s.tell(Result(i, sparse if i < 4 else p.arch, "complete", metrics, True))
        assert proposed[True] == 0, type(s).__name__
        assert proposed[False] > 0, type(s).__name__
