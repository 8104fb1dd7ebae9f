"""One contract for every space: each capability a space offers is checked the same way.

Every case below runs through every check; a check whose capability the space lacks is
skipped (``pytest -rs`` lists which). To put another space under the suite -- a new built-in,
a user space, an out-of-tree plugin's -- append a :class:`SpaceCase` to :data:`CASES` (or to
the list :func:`conformance_cases` returns, from a plugin's own test module):

    CASES.append(SpaceCase("myspace", lambda: MySpace(MyConfig(width=8)), (3, 16, 16)))

``caps`` pins the capabilities a space must offer (None: whatever it has), so a built-in
space cannot lose one unnoticed. Keep each case small: the whole file runs in well under a
minute on two cores.
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from conftest import REPO

from hwnas.core.errors import UserError
from hwnas.experiment.config import load_config
from hwnas.oneshot.paths import PathSpace
from hwnas.space import make_space
from hwnas.space.base import InvalidArch, Space
from hwnas.space.capabilities import (
    CAPABILITIES,
    BlockDecomposable,
    Encodable,
    Evolvable,
    Morphable,
    Neighbourly,
    PerChoiceCosts,
    Supernet,
    Vectorizable,
    supports,
    unsupported,
)
from hwnas.space.cell import CellSpace
from hwnas.space.chain import ChainSpace
from hwnas.space.config import (
    CellSpaceConfig,
    ChainSpaceConfig,
    FastCnnSpaceConfig,
    FastGroupConfig,
    FbnetSpaceConfig,
    GraphSpaceConfig,
    StageConfig,
)
from hwnas.space.fastcnn import FastCnnSpace
from hwnas.space.fbnet import FbnetSpace
from hwnas.space.graph import GraphSpace

sys.path.insert(0, str(REPO / "examples"))  # the user space of examples/tiny_space.py

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class SpaceCase:
    """A space under test: how to make it, the input its networks get, what it must offer."""

    id: str
    make: Callable[[], Space]
    input_shape: Shape = (1, 8, 8)
    num_classes: int = 5
    caps: frozenset[str] | None = None  # capability class names it must offer exactly
    draws: int = 60  # mutations / crossovers / samples checked per test


def _caps(*names: str) -> frozenset[str]:
    return frozenset(names)


GENES = ("Evolvable", "Neighbourly", "Vectorizable", "Encodable")
ONE_SHOT = ("BlockDecomposable", "Supernet", "PerChoiceCosts")


def _small_chain() -> Space:
    return ChainSpace(
        ChainSpaceConfig(
            stem_channels=4,
            stages=[
                StageConfig(depths=[0, 1, 2], widths=[4, 8], stride=1),
                StageConfig(depths=[0, 2], widths=[8, 12], stride=2),
            ],
            kernels=[3, 5],
            expansions=[1, 2],
            head_channels=16,
        )
    )


def _user() -> Space:
    cfg = load_config(None, ["space.name=tiny_space:TinyCNNSpace", "space.options.max_width=24"])
    return make_space(cfg.space)


CASES: list[SpaceCase] = [
    SpaceCase("chain", ChainSpace, caps=_caps(*GENES, *ONE_SHOT)),
    SpaceCase("chain-small", _small_chain, caps=_caps(*GENES, *ONE_SHOT)),
    SpaceCase("chain-paths", lambda: PathSpace(_small_chain()), caps=_caps(*GENES)),
    SpaceCase(
        "cell",
        lambda: CellSpace(CellSpaceConfig(channels=4, cells_per_stage=1)),
        (3, 16, 16),
        caps=_caps(*GENES, "Supernet"),
    ),
    SpaceCase(
        "graph",
        lambda: GraphSpace(
            GraphSpaceConfig(
                channels=[4, 8], max_channels=32, max_layers=10, max_nodes=16, sample_morphs=4
            )
        ),
        (3, 8, 8),
        caps=_caps("Evolvable", "Neighbourly", "Vectorizable", "Morphable"),
        draws=30,
    ),
    SpaceCase(
        "fbnet",
        lambda: FbnetSpace(FbnetSpaceConfig(width_multiplier=0.25, head_channels=64)),
        (3, 32, 32),
        caps=_caps(*GENES, "BlockDecomposable", "Supernet", "PerChoiceCosts"),
    ),
    SpaceCase(
        "fastcnn",
        lambda: FastCnnSpace(
            FastCnnSpaceConfig(
                groups=[
                    FastGroupConfig(widths=[4, 8], depths=[1, 2, 3], kernels=[3, 5]),
                    FastGroupConfig(widths=[8, 16]),
                ]
            )
        ),
        (3, 12, 12),
        caps=_caps(*GENES),
    ),
    SpaceCase("user-tiny", _user, caps=_caps(*GENES)),
]


def conformance_cases() -> list[SpaceCase]:
    """The cases every check runs on (the list itself: append to extend)."""
    return CASES


_SPACES: dict[str, Space] = {}


@pytest.fixture(params=conformance_cases(), ids=lambda c: c.id)
def case(request: pytest.FixtureRequest) -> SpaceCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def space(case: SpaceCase) -> Space:
    """One instance per case for the whole file (making a space is cheap; reuse is faster)."""
    if case.id not in _SPACES:
        _SPACES[case.id] = case.make()
    return _SPACES[case.id]


def need(space: Space, capability: type) -> None:
    if not supports(space, capability):
        pytest.skip(f"space {space.name} is not {CAPABILITIES[capability]}")


def samples(space: Space, n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def roundtrip(arch: dict) -> dict:
    return json.loads(json.dumps(arch))


# ------------------------------------------------------------------ every space
def test_offers_the_capabilities_it_should(case: SpaceCase, space: Space):
    offered = {c.__name__ for c in CAPABILITIES if supports(space, c)}
    if case.caps is not None:
        assert offered == case.caps


def test_sample_is_valid_and_deterministic_per_seed(case: SpaceCase, space: Space):
    a, b = samples(space, case.draws, seed=7), samples(space, case.draws, seed=7)
    assert a == b
    for arch in a:
        space.validate(arch)
        json.dumps(arch)  # archs are JSON
    if space.size() != 1:
        assert len({space.arch_hash(x) for x in a}) > 1
    assert samples(space, 5, seed=8) != samples(space, 5, seed=9) or space.size() == 1


def test_canonical_is_idempotent_and_hash_survives_json(case: SpaceCase, space: Space):
    for arch in samples(space, case.draws, seed=1):
        before = copy.deepcopy(arch)
        form = space.canonical(arch)
        assert arch == before  # canonical never changes its input
        assert space.canonical(roundtrip(arch)) == form
        assert space.arch_hash(roundtrip(arch)) == space.arch_hash(arch)
        assert space.key(roundtrip(arch)) == space.key(arch)
        try:  # where the normal form is itself an arch, it is its own normal form
            space.validate(form)
        except InvalidArch:
            continue  # e.g. the chain's form names a network, it is not a genotype
        assert space.canonical(form) == form
        assert space.arch_hash(form) == space.arch_hash(arch)


def test_validate_rejects_what_is_not_an_arch(space: Space):
    for bad in ({}, {"nonsense": 1}, []):
        with pytest.raises(InvalidArch):
            space.validate(bad)  # type: ignore[arg-type]


def test_build_forward_shape_and_describe(case: SpaceCase, space: Space):
    for arch in samples(space, 2, seed=3):
        model = space.build(arch, case.input_shape, case.num_classes).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *case.input_shape))
        assert out.shape == (2, case.num_classes)
        line = space.describe(arch)
        assert line and "\n" not in line


# ------------------------------------------------------------------ capabilities
def test_mutate_always_changes_the_network(case: SpaceCase, space: Space):
    need(space, Evolvable)
    assert isinstance(space, Evolvable)
    rng = random.Random(11)
    for arch in samples(space, case.draws, seed=2):
        child = space.mutate(arch, rng)
        space.validate(child)
        assert space.arch_hash(child) != space.arch_hash(arch)


def test_crossover_gives_a_valid_arch(case: SpaceCase, space: Space):
    need(space, Evolvable)
    assert isinstance(space, Evolvable)
    rng = random.Random(12)
    parents = samples(space, case.draws + 1, seed=4)
    for a, b in zip(parents, parents[1:], strict=False):
        space.validate(space.crossover(a, b, rng))


def test_neighbours_are_distinct_valid_and_exclude_the_arch(space: Space):
    need(space, Neighbourly)
    assert isinstance(space, Neighbourly)
    for arch in samples(space, 3, seed=5):
        neigh = space.neighbours(arch)
        assert neigh or space.size() == 1
        hashes = [space.arch_hash(n) for n in neigh]
        assert len(hashes) == len(set(hashes))
        assert space.arch_hash(arch) not in hashes
        for n in neigh:
            space.validate(n)


def test_encode_has_a_fixed_length(case: SpaceCase, space: Space):
    need(space, Vectorizable)
    assert isinstance(space, Vectorizable)
    vectors = [space.encode(a) for a in samples(space, case.draws, seed=6)]
    assert len({len(v) for v in vectors}) == 1 and vectors[0]
    assert all(isinstance(x, float) and math.isfinite(x) for v in vectors for x in v)


def test_parameters_round_trip_to_valid_archs(case: SpaceCase, space: Space):
    need(space, Encodable)
    assert isinstance(space, Encodable)
    params = space.parameters()
    assert params and all(values for values in params.values())
    rng = random.Random(13)
    for _ in range(case.draws):  # any pick a generic sampler may make is a valid arch
        pick = {k: rng.choice(v) for k, v in params.items()}
        space.validate(space.from_parameters(pick))
    for arch in samples(space, case.draws, seed=8):  # and every arch has a pick
        genes = space.to_parameters(arch)
        assert list(genes) == list(params)
        assert all(genes[k] in params[k] for k in params)
        again = space.from_parameters(roundtrip(genes))
        space.validate(again)
        assert space.arch_hash(again) == space.arch_hash(arch)


def _randomise(net: torch.nn.Module) -> None:
    """Weights and BN statistics as after training (an untouched BN hides mistakes)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))


@torch.no_grad()
def test_morphisms_preserve_the_function(case: SpaceCase, space: Space):
    need(space, Morphable)
    assert isinstance(space, Morphable)
    torch.manual_seed(0)
    shape, classes = case.input_shape, case.num_classes
    x = torch.randn(3, *shape)
    start = space.start_arch()
    space.validate(start)
    for seed in range(4):
        rng = random.Random(seed)
        parent, _ = space.morph_sequence(start, seed, rng)  # 0-3 morphisms from the start
        net = space.build(parent, shape, classes)
        _randomise(net)
        net.eval()
        child, morphs = space.morph_sequence(parent, 2, rng)
        assert space.arch_hash(child) != space.arch_hash(parent)
        json.dumps(morphs)  # stored with the trial
        inherited, state = space.inherit(parent, net.state_dict(), roundtrip(morphs))
        assert space.arch_hash(inherited) == space.arch_hash(child)
        grown = space.build(inherited, shape, classes)
        grown.load_state_dict(state)  # strict: every weight accounted for
        grown.eval()
        assert float((grown(x) - net(x)).abs().max()) <= 1e-4


def test_blocks_cover_the_network(case: SpaceCase, space: Space):
    need(space, BlockDecomposable)
    assert isinstance(space, BlockDecomposable)
    shape, classes = case.input_shape, case.num_classes
    ident = space.blocks_id()
    assert isinstance(ident, str) and ident == space.blocks_id()
    every = space.all_blocks(shape, classes)
    keys = None if every is None else {b.key for b in every}
    for arch in samples(space, 4, seed=9):
        blocks = space.blocks(arch, shape, classes)
        assert blocks and blocks[0].first
        if keys is not None:
            assert {b.key for b in blocks} <= keys
        net = space.build(arch, shape, classes)
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        assert sum(count(b.build()) for b in blocks) == count(net)  # each weight in one block
        with torch.no_grad():
            for b in blocks:  # each block's recorded input shape is what it takes
                b.build().eval()(torch.zeros(1, *b.input_shape))


def test_supernet_runs_every_arch_as_its_own_net(case: SpaceCase, space: Space):
    """Picks and archs convert both ways; the supernet runs any path, hard or mixed, and the
    stand-alone net of a path computes what the supernet computes on it (its weights are the
    shared ones)."""
    need(space, Supernet)
    assert isinstance(space, Supernet)
    shape, classes = case.input_shape, case.num_classes
    choices = space.choices()
    torch.manual_seed(0)
    net = space.supernet(shape, classes).eval()
    rng = random.Random(3)
    x = torch.randn(2, *shape)
    for _ in range(3):
        picks = [rng.randrange(len(c)) for c in choices]
        arch = space.from_choices(picks)
        space.validate(arch)
        assert space.to_choices(arch) == picks
        alone = space.build(arch, shape, classes).eval()
        alone.load_state_dict(net.state_for(picks))
        with torch.no_grad():
            torch.testing.assert_close(alone(x), net(x, [(i, None) for i in picks]))
            onehot = [torch.eye(len(c))[i] for c, i in zip(choices, picks, strict=True)]
            torch.testing.assert_close(alone(x), net(x, onehot))  # a one-hot mixture


def test_per_choice_costs_add_up(case: SpaceCase, space: Space):
    """A pick's block is what its arch adds over the fixed blocks (every weight counted)."""
    need(space, PerChoiceCosts)
    assert isinstance(space, PerChoiceCosts) and isinstance(space, Supernet)
    shape, classes = case.input_shape, case.num_classes
    fixed, per_pick = space.choice_blocks(shape, classes)
    choices = space.choices()
    assert [len(r) for r in per_pick] == [len(c) for c in choices]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    rng = random.Random(4)
    for _ in range(3):
        picks = [rng.randrange(len(c)) for c in choices]
        alone = space.build(space.from_choices(picks), shape, classes)
        blocks = [*fixed, *(per_pick[j][i] for j, i in enumerate(picks))]
        assert sum(count(b.build()) for b in blocks if b is not None) == count(alone)


# ------------------------------------------------------------------ detection
def test_capability_detection_is_real():
    class NoCross(ChainSpace):
        @unsupported
        def crossover(self, a, b, rng):
            return a

    space = NoCross()
    assert isinstance(space, Evolvable) and not supports(space, Evolvable)
    assert supports(space, Encodable) and not supports(CellSpace(), BlockDecomposable)
    assert supports(ChainSpace, BlockDecomposable) and not supports(NoCross, Evolvable)
    with pytest.raises(NotImplementedError, match="crossover"):
        space.crossover({}, {}, random.Random(0))
    bare = type("Bare", (), {"sample": lambda self, rng: {}})()  # a method missing: not evolvable
    assert not isinstance(bare, Evolvable) and not supports(bare, Evolvable)


def test_strategies_refuse_a_space_without_what_they_need():
    from hwnas.strategy import make_strategy

    def refusal(space_name: str, strategy: str) -> str:
        cfg = load_config(None, [f"space={space_name}", f"strategy={strategy}"])
        with pytest.raises(UserError) as err:
            make_strategy(cfg.strategy, make_space(cfg.space), [("accuracy", "max")], 0)
        return str(err.value)

    assert refusal("chain", "nash") == (
        "strategy: nash needs a morphable space (space graph is one); space chain is not"
    )
    assert refusal("graph", "optuna") == (
        "strategy: optuna needs an encodable space (spaces chain, cell, fbnet, fastcnn are); "
        "space graph is not"
    )
