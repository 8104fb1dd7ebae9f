from __future__ import annotations

import itertools
import random

import pytest
import torch

from hwnas.space.base import InvalidArch
from hwnas.space.chain import ChainSpace
from hwnas.space.config import ChainSpaceConfig, StageConfig


@pytest.fixture
def space():
    return ChainSpace()


def tiny_space(allow_skip=True, optional=False):
    lo = [0] if optional else []  # depth 0: the stage may be dropped
    return ChainSpace(
        ChainSpaceConfig(
            stem_channels=8,
            stages=[
                StageConfig(depths=[*lo, 1, 2], widths=[8, 16], stride=1),
                StageConfig(depths=[*lo, 1, 2], widths=[16], stride=2),
            ],
            kernels=[3, 5],
            expansions=[1],
            allow_skip=allow_skip,
        )
    )


def all_archs(space):
    """Every genotype of a tiny space, by brute force."""
    per_stage = []
    for st, maxd in zip(space.cfg.stages, space.max_depths, strict=True):
        opts = space.mb_ops + ["skip"]
        per_stage.append(
            [
                {"depth": d, "width": w, "ops": list(ops)}
                for d in st.depths
                for w in st.widths
                for ops in itertools.product(opts, repeat=maxd)
            ]
        )
    for combo in itertools.product(*per_stage):
        arch = {"stages": [dict(s, ops=list(s["ops"])) for s in combo]}
        try:
            space.validate(arch)
        except InvalidArch:
            continue
        yield arch


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("allow_skip", [True, False])
def test_size_counts_distinct_networks(allow_skip, optional):
    space = tiny_space(allow_skip, optional)
    archs = list(all_archs(space))
    hashes = {space.arch_hash(a) for a in archs}
    assert space.size() == len(hashes)
    # the hash is the built network: equal hashes build the same layers
    by_hash = {}
    for a in archs:
        shapes = [tuple(p.shape) for p in space.build(a, (1, 8, 8), 10).parameters()]
        assert by_hash.setdefault(space.arch_hash(a), shapes) == shapes


def test_a_dropped_stage_neither_strides_nor_widens():
    space = tiny_space(optional=True)
    arch = {
        "stages": [
            {"depth": 0, "width": 16, "ops": ["k3_e1", "k3_e1"]},
            {"depth": 1, "width": 16, "ops": ["k5_e1", "k3_e1"]},
        ]
    }
    net = space.build(arch, (1, 8, 8), 10)
    assert net.blocks[0].body[0][0].in_channels == 8  # stem -> stage 2 directly
    assert space.describe(arch) == "stem8 8x0[id] 16x1[k5e1]"
    bare = {"stages": [dict(s, depth=0) for s in arch["stages"]]}
    assert space.describe(bare) == "stem8 8x0[id] 8x0[id]"
    assert space.build(bare, (1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_sample_mutate_crossover_stay_valid_and_change(space):
    rng = random.Random(0)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        space.validate(a)
        child = space.mutate(a, rng)
        space.validate(child)
        assert space.arch_hash(child) != space.arch_hash(a)
        space.validate(space.crossover(a, b, rng))


def test_same_seed_same_samples(space):
    r1, r2 = random.Random(7), random.Random(7)
    assert [space.sample(r1) for _ in range(20)] == [space.sample(r2) for _ in range(20)]


def test_canonical_ignores_unbuilt_choices(space):
    rng = random.Random(1)
    arch = space.sample(rng)
    arch["stages"][1]["depth"] = 1
    other = {"stages": [dict(s, ops=list(s["ops"])) for s in arch["stages"]]}
    other["stages"][1]["ops"][2] = "k7_e6" if arch["stages"][1]["ops"][2] != "k7_e6" else "k3_e1"
    assert space.arch_hash(arch) == space.arch_hash(other)
    # a skip block builds nothing: depth 2 with [op, skip] == depth 1 with [op]
    arch["stages"][2].update(depth=2, ops=["k3_e3", "skip", "k5_e1"])
    twin = {"stages": [dict(s, ops=list(s["ops"])) for s in arch["stages"]]}
    twin["stages"][2].update(depth=1)
    assert space.arch_hash(arch) == space.arch_hash(twin)
    m1 = space.build(arch, (1, 8, 8), 10)
    m2 = space.build(twin, (1, 8, 8), 10)
    assert sum(p.numel() for p in m1.parameters()) == sum(p.numel() for p in m2.parameters())


def test_neighbours_are_distinct_one_step_changes(space):
    arch = space.sample(random.Random(3))
    neigh = space.neighbours(arch)
    hashes = [space.arch_hash(n) for n in neigh]
    assert len(hashes) == len(set(hashes)) > 10
    assert space.arch_hash(arch) not in hashes


def test_encode_is_fixed_length(space):
    rng = random.Random(0)
    lengths = {len(space.encode(space.sample(rng))) for _ in range(50)}
    assert len(lengths) == 1
    assert all(0.0 <= v <= 1.0 for v in space.encode(space.sample(rng)))


def test_build_forward_shapes_and_describe(space):
    rng = random.Random(0)
    for shape in [(1, 8, 8), (3, 32, 32)]:
        arch = space.sample(rng)
        model = space.build(arch, shape, 7).eval()
        out = model(torch.zeros(2, *shape))
        assert out.shape == (2, 7)
    line = space.describe(arch)
    assert "\n" not in line and line.startswith("stem8 ")


def test_skip_rejected_where_shapes_change(space):
    arch = space.sample(random.Random(0))
    arch["stages"][1]["ops"][0] = "skip"  # stride-2 stage
    with pytest.raises(InvalidArch, match="skip not allowed"):
        space.validate(arch)
    with pytest.raises(InvalidArch):
        space.validate({"stages": []})
