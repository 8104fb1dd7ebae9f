"""The fast-CNN space, the fast training recipe, the final stage and ``hwnas train``.

All on the CPU with the bundled digits upscaled to 16x16 (the fast-CNN nets need 9x9 at
least), so each training takes a second or two; the GPU figures live in
benchmarks/fast_recipe.py and benchmarks/fast_headline.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sqlite3
import time

import pytest
import torch
from conftest import run_cli
from torch.nn import functional as F

from hwnas.data import load_dataset
from hwnas.data.config import DataConfig
from hwnas.estimate.base import Task
from hwnas.estimate.config import FastRecipeConfig, TrainEstimatorConfig
from hwnas.estimate.fast import (
    DeviceData,
    Lookahead,
    evaluate_split,
    logits_tta,
    lr_factor,
    prepare_model,
    train_fast,
)
from hwnas.estimate.train import TrainEstimator
from hwnas.experiment.lock import StudyLock, StudyLocked
from hwnas.hardware.analytic import analytic_costs
from hwnas.space.base import InvalidArch
from hwnas.space.config import FastCnnSpaceConfig, FastGroupConfig, _fast_groups
from hwnas.space.fastcnn import REFERENCE_NETS, FastCnnSpace
from hwnas.space.fbnet import FbnetSpace

SMALL = FastCnnSpaceConfig(
    groups=[
        FastGroupConfig(widths=[8, 16], depths=[1, 2]),
        FastGroupConfig(widths=[16, 32], depths=[1, 2]),
    ]
)
#: a small digits search on the fast-CNN space with the fast recipe, on the CPU
FASTCNN = [
    "data.resolution=16",
    "space=fastcnn",
    "space.groups=[{widths: [8, 16], depths: [1, 2]}, {widths: [16, 32], depths: [1, 2]}]",
    "estimator.recipe=fast",
    "estimator.epochs=2",
    "estimator.fast.batch_size=128",
    "target=analytic",
    "objectives={accuracy: max, macs: min}",
    "strategy.population=3",
    "strategy.sample_size=2",
]


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def digits16():
    return load_dataset(DataConfig(name="digits", resolution=16), seed=0)


# ------------------------------------------------------------------------------ space
def test_reference_nets_have_the_published_size():
    """airbench94: 1.97 M params, 118 M MACs; airbench96: 9.9 M, 452 M (Jordan 2024)."""
    space = FastCnnSpace()
    counts = {}
    for name, arch in REFERENCE_NETS.items():
        space.validate(arch)
        c = analytic_costs(space.build(arch, (3, 32, 32), 10), (3, 32, 32))
        counts[name] = (int(c["params"]), int(c["macs"]))
    assert counts["airbench94"] == (1_972_792, 118_147_360)
    assert counts["airbench96"] == (9_918_776, 451_967_264)


def test_fastcnn_refuses_inputs_too_small_and_foreign_archs():
    space = FastCnnSpace()
    with pytest.raises(InvalidArch, match="at least 9x9"):
        space.build(REFERENCE_NETS["airbench94"], (1, 8, 8), 10)
    bad = json.loads(json.dumps(REFERENCE_NETS["airbench94"]))
    bad["groups"][0]["width"] = 65
    with pytest.raises(InvalidArch, match="width 65"):
        space.validate(bad)
    bad["groups"][0] = {"width": 64, "depth": 2, "kernel": 3, "residual": 1}
    with pytest.raises(InvalidArch, match="residual"):
        space.validate(bad)


def test_canonical_drops_a_residual_that_wraps_nothing():
    space = FastCnnSpace(SMALL)
    a = {"act": "gelu", "groups": [dict(width=8, depth=1, kernel=3, residual=r) for r in (0, 0)]}
    a["groups"] = [
        {"width": 8, "depth": 1, "kernel": 3, "residual": True},
        {"width": 16, "depth": 2, "kernel": 3, "residual": True},
    ]
    b = json.loads(json.dumps(a))
    b["groups"][0]["residual"] = False
    assert space.arch_hash(a) == space.arch_hash(b)
    c = json.loads(json.dumps(a))
    c["groups"][1]["residual"] = False
    assert space.arch_hash(a) != space.arch_hash(c)
    # size counts built networks: per group 2 widths x (depth 1, depth 2 +/- residual)
    assert space.size() == 2 * (2 * 3) ** 2


def _macs_of_each_and_the_last_exports(space, archs):
    """Build each (name, arch): it runs, its MACs; the last one exports to ONNX and ORT
    agrees with torch. Returns (MACs by name, the last model)."""
    import onnxruntime as ort

    from hwnas.hardware.profile import onnx_bytes

    x = torch.randn(2, 3, 32, 32)
    macs = {}
    for name, arch in archs:
        model = space.build(arch, (3, 32, 32), 10).eval()
        assert model(x).shape == (2, 10)
        macs[name] = analytic_costs(model, (3, 32, 32))["macs"]
    sess = ort.InferenceSession(onnx_bytes(model, (3, 32, 32)))
    with torch.no_grad():
        want = model(x[:1]).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x[:1].numpy()})[0]
    assert abs(got - want).max() < 1e-4
    return macs, model


def test_pool_first_is_a_gene_that_cuts_the_first_convs_macs_and_old_archs_keep_their_identity():
    """`pools: [after, before]` lets a group pool before its first conv: that conv then runs at
    the halved resolution (a quarter of its MACs), the output shape is the same. The default
    space does not offer it, so the reference nets, the space's size and every arch written
    before the gene (no `pool` key) keep their hashes; the gene round-trips through the
    parameters and the encoding, and mutations reach it."""
    space = FastCnnSpace()
    assert space.size() == FastCnnSpace(FastCnnSpaceConfig()).size()
    ref = REFERENCE_NETS["airbench94"]
    explicit = {**ref, "groups": [{**g, "pool": "after"} for g in ref["groups"]]}
    assert space.arch_hash(explicit) == space.arch_hash(ref)
    assert "pool" not in json.dumps(space.canonical(explicit))
    before = json.loads(json.dumps(ref))
    before["groups"][1]["pool"] = "before"
    with pytest.raises(InvalidArch, match="pool 'before' not in"):
        space.validate(before)  # the default space offers only airbench's order

    wide = FastCnnSpaceConfig(
        groups=[g.model_copy(update={"pools": ["after", "before"]}) for g in _fast_groups()]
    )
    both = FastCnnSpace(wide)
    assert both.size() == 2**3 * space.size()
    assert both.arch_hash(before) != both.arch_hash(ref)
    assert both.describe(before) == "fastcnn gelu 64x2-p256x2-256x2"
    # the pool-first net exports
    costs, _ = _macs_of_each_and_the_last_exports(both, (("after", ref), ("before", before)))
    first = 64 * 256 * 9  # group 2's first conv, per output pixel: 15x15 after, 7x7 before
    assert costs["after"] - costs["before"] == first * (15 * 15 - 7 * 7)
    assert not any(k.endswith(".pool") for k in space.parameters())  # as before the gene
    legacy = random.Random(5)  # sampling draws what it drew before the gene existed
    drawn = [
        {k: legacy.choice(v) for k, v in g.items()}
        for g in (
            {"width": g.widths, "depth": g.depths, "kernel": g.kernels, "residual": g.residual}
            for g in FastCnnSpaceConfig().groups
        )
    ]
    assert space.sample(random.Random(5)) == {
        "act": legacy.choice(["gelu", "relu"]),
        "groups": drawn,
    }
    params = both.to_parameters(before)
    assert params["g1.pool"] == "before" and params["g0.pool"] == "after"
    assert both.arch_hash(both.from_parameters(params)) == both.arch_hash(before)
    assert len(both.encode(ref)) == len(space.encode(ref)) + 3
    assert both.encode(before) != both.encode(ref)
    assert any(both.arch_hash(n) == both.arch_hash(before) for n in both.neighbours(ref))


def test_grouped_later_convs_are_a_gene_that_splits_their_macs_and_old_archs_keep_identity():
    """`grouped: [1, 2, 4]` splits the convs after a group's first into G channel groups: their
    MACs and weights fall G-fold, the dense first conv stays, the net exports and ORT agrees.
    The default space does not offer it (reference nets, size, hashes, samples unchanged), a
    depth-1 group has nothing to split (canonical drops the gene), and a width that does not
    split is refused by the config and by validation."""
    space = FastCnnSpace()
    ref = REFERENCE_NETS["airbench94"]
    explicit = {**ref, "groups": [{**g, "grouped": 1} for g in ref["groups"]]}
    assert space.arch_hash(explicit) == space.arch_hash(ref)
    split = json.loads(json.dumps(ref))
    split["groups"][1]["grouped"] = 4
    with pytest.raises(InvalidArch, match="grouped 4 not in"):
        space.validate(split)
    wide = FastCnnSpace(
        FastCnnSpaceConfig(
            groups=[g.model_copy(update={"grouped": [1, 2, 4]}) for g in _fast_groups()]
        )
    )
    assert wide.describe(split) == "fastcnn gelu 64x2-256x2g4-256x2"
    assert wide.arch_hash(split) != wide.arch_hash(ref)
    single = json.loads(json.dumps(split))
    single["groups"][1].update(depth=1, grouped=4)
    assert "grouped" not in json.dumps(wide.canonical(single))
    # per group: widths x {depth 1, then depth 2 and 3 each with/without residual x 3 splits}
    per = [len(g.widths) * (1 + 2 * 2 * 3) for g in _fast_groups()]
    assert wide.size() == 2 * per[0] * per[1] * per[2]
    macs, model = _macs_of_each_and_the_last_exports(wide, (("dense", ref), ("split", split)))
    assert macs["dense"] - macs["split"] == 256 * 256 * 9 * 7 * 7 * 3 // 4  # group 2's 2nd conv
    assert any(wide.arch_hash(n) == wide.arch_hash(split) for n in wide.neighbours(ref))
    assert wide.from_parameters(wide.to_parameters(split))["groups"][1]["grouped"] == 4
    # encodings: the default space's keep their length (saved predictors, NASH's features)
    assert len(space.encode(ref)) == 3 * 4 + 2
    assert len(wide.encode(ref)) == len(space.encode(ref)) + 3
    assert wide.encode(split) != wide.encode(ref)
    # a space that only splits (no 1): a depth-1 group still validates, mutates, encodes
    only = FastCnnSpace(
        FastCnnSpaceConfig(
            groups=[FastGroupConfig(widths=[16, 32], depths=[1, 2], grouped=[2, 4])] * 3
        )
    )
    shallow = {"act": "gelu", "groups": [dict(width=16, depth=1, kernel=3, residual=False)] * 3}
    only.validate(only.canonical(shallow))
    assert only.neighbours(shallow) and all(0 <= v <= 1 for v in only.encode(shallow))
    params = only.to_parameters(only.canonical(shallow))
    assert all(params[f"g{i}.grouped"] in (2, 4) for i in range(3))
    assert only.arch_hash(only.from_parameters(params)) == only.arch_hash(shallow)
    assert space.sample(random.Random(5)) == FastCnnSpace(FastCnnSpaceConfig()).sample(
        random.Random(5)
    )
    with pytest.raises(ValueError, match="width 48 does not split into 32 groups"):
        FastGroupConfig(widths=[32, 48], grouped=[1, 32])
    unchecked = FastCnnSpace(  # a config built unchecked: validation still refuses the arch
        FastCnnSpaceConfig.model_construct(
            groups=[g.model_copy(update={"grouped": [1, 5]}) for g in _fast_groups()]
        )
    )
    split["groups"][1]["grouped"] = 5
    with pytest.raises(InvalidArch, match="width 256 does not split into 5 groups"):
        unchecked.validate(split)
    # the fast recipe starts a split conv as the identity too, group by group
    prepare_model(model, FastRecipeConfig(), None)
    conv = model.groups[1].rest[0][0]
    assert conv.groups == 4
    h = torch.randn(1, 256, 5, 5)
    assert torch.allclose(conv(h), h, atol=1e-6)


def test_whitening_stem_decorrelates_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.9, 0.0], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0]])
    x = torch.einsum("ij,njhw->nihw", mix, torch.randn(400, 3, 12, 12))
    model = FastCnnSpace().build(REFERENCE_NETS["airbench94"], (3, 12, 12), 10)
    model.init_from_data(x)
    with torch.no_grad():
        y = F.conv2d(x, model.whiten.weight)  # without the bias
    half = y[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(half.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert not model.whiten.weight.requires_grad  # fixed: part of the data, not the fit


# ------------------------------------------------------------------------- recipe parts
def test_translate_and_flip_match_reflect_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
    data = DeviceData(x, torch.zeros(6, dtype=torch.long), (0.0,) * 3, (1.0,) * 3)
    oy = torch.tensor([0, 1, 2, 3, 4, 2])
    ox = torch.tensor([4, 3, 2, 1, 0, 2])
    mirror = torch.tensor([False, True, False, True, False, True])
    got = data.crop_flip(torch.arange(6), oy, ox, mirror, pad=2)
    padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect")  # shifted, then mirrored
    for i in range(6):
        want = padded[i, :, oy[i] : oy[i] + 8, ox[i] : ox[i] + 8]
        want = want.flip(-1) if mirror[i] else want
        assert torch.equal(got[i].float(), want), i


def test_schedule_rises_then_falls():
    fc = FastRecipeConfig()
    f = [lr_factor(s, 100, fc) for s in range(101)]
    assert f[0] == pytest.approx(fc.lr_start)
    assert max(f) == pytest.approx(1.0, abs=0.02)
    assert f.index(max(f)) in (22, 23, 24)
    assert f[-1] == pytest.approx(fc.lr_end)


def test_lookahead_pulls_back_to_the_slow_weights():
    lin = torch.nn.Linear(2, 1)
    la = Lookahead(lin)
    start = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    la.step(0.75)  # slow moves a quarter of the way; fast follows it
    assert torch.allclose(lin.weight, start + 0.25)
    with torch.no_grad():
        lin.weight.add_(1.0)
    la.step(1.0)  # the end: back to the slow weights
    assert torch.allclose(lin.weight, start + 0.25)


def test_identity_init_and_frozen_bn_scales():
    model = FastCnnSpace(SMALL).build(FastCnnSpace(SMALL).sample(random.Random(3)), (3, 16, 16), 4)
    prepare_model(model, FastRecipeConfig(), None)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert not mod.weight.requires_grad and torch.all(mod.weight == 1)
    conv = next(
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    )
    n = min(conv.in_channels, conv.out_channels)
    x = torch.randn(1, conv.in_channels, 5, 5)
    assert torch.allclose(conv(x)[:, :n], x[:, :n], atol=1e-6)


def test_tta_views_average_mirrored_logits():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(5, 3, 4, 4)
    two = logits_tta(model, x, 2)
    assert torch.allclose(two, 0.5 * (model(x) + model(x.flip(-1))))
    six = logits_tta(model, x, 6)
    assert six.shape == (5, 2) and not torch.allclose(six, two)


# -------------------------------------------------------------------------- training
def test_fast_recipe_learns_and_is_reproducible_on_cpu(digits16):
    space = FastCnnSpace(SMALL)
    arch = {
        "act": "gelu",
        "groups": [
            {"width": 16, "depth": 2, "kernel": 3, "residual": True},
            {"width": 32, "depth": 1, "kernel": 3, "residual": False},
        ],
    }
    cfg = TrainEstimatorConfig(recipe="fast", epochs=4, fast={"batch_size": 128})
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = space.build(arch, digits16.input_shape, digits16.num_classes)
        res = train_fast(model, digits16, cfg, seed=5, flip=False, device="cpu")
        runs.append((res.accuracy, [p["train_loss"] for p in res.curve]))
    assert runs[0] == runs[1]
    assert runs[0][0] > 0.8  # 10 classes: chance is 0.1
    losses = runs[0][1]
    assert losses[-1] < losses[0]
    acc, _ = evaluate_split(model, digits16.test, digits16, torch.device("cpu"), views=6)
    assert acc > 0.8


def test_fast_recipe_pauses_and_resumes_exactly_and_keeps_trained_weights(digits16):
    """2 + 2 epochs on a 4-epoch schedule (rates, lookahead, mirror pattern, momentum and data
    order carried over) end bit for bit where 4 epochs at once end; and a run that goes on
    from trained weights keeps them (no identity init or whitening over what was learnt)."""
    from hwnas.estimate.resume import Schedule

    space = FastCnnSpace(SMALL)
    arch = space.sample(random.Random(4))
    cfg = TrainEstimatorConfig(recipe="fast", epochs=4, fast={"batch_size": 128})

    def net():
        torch.manual_seed(0)
        return space.build(arch, digits16.input_shape, digits16.num_classes)

    whole = net()
    full = train_fast(whole, digits16, cfg, seed=5, device="cpu")
    first = net()
    cut = cfg.model_copy(update={"epochs": 2})
    paused = train_fast(first, digits16, cut, seed=5, device="cpu", schedule=Schedule(0, 4))
    assert paused.resume_state is not None and full.resume_state is None
    second = net()
    second.load_state_dict(first.state_dict())
    on = Schedule(2, 4, paused.resume_state)
    rest = train_fast(second, digits16, cut, seed=9, device="cpu", fresh=False, schedule=on)
    assert rest.accuracy == full.accuracy and rest.resume_state is None
    assert all(
        torch.equal(a, b)
        for a, b in zip(whole.state_dict().values(), second.state_dict().values(), strict=True)
    )
    # a warm start with a restart (no state): the trained convs are not reset to identity
    third = net()
    third.load_state_dict(first.state_dict())
    before = {k: v.clone() for k, v in third.state_dict().items()}
    tiny = cfg.model_copy(
        update={"epochs": 1, "fast": cfg.fast.model_copy(update={"lr": 1e-6, "weight_decay": 0.0})}
    )
    train_fast(third, digits16, tiny, seed=9, device="cpu", fresh=False)
    drift = max(
        float((third.state_dict()[k].float() - v.float()).abs().max())
        for k, v in before.items()
        if v.is_floating_point() and "running" not in k
    )
    assert drift < 1e-3
    fourth = net()
    fourth.load_state_dict(first.state_dict())
    train_fast(fourth, digits16, tiny, seed=9, device="cpu")  # as a fresh net: re-initialised
    reset = max(
        float((fourth.state_dict()[k].float() - v.float()).abs().max())
        for k, v in before.items()
        if v.is_floating_point() and "running" not in k
    )
    assert reset > 0.05


def test_estimator_identity_of_sgdr_is_unchanged_and_auto_resolves(digits16):
    """The keys of sgdr trials are those from before the fast recipe (values computed at
    ee73c9f), so older studies resume; auto is fast only for images on CUDA, and only for
    the nets of a space made for it."""
    assert TrainEstimator(TrainEstimatorConfig()).identity() == "train:fe3c5e4d07"
    old = TrainEstimatorConfig(lr=0.2, label_smoothing=0.1, epochs=8)
    assert TrainEstimator(old).identity() == "train:5b051a6f41"
    assert TrainEstimator(TrainEstimatorConfig(recipe="fast")).identity() != "train:fe3c5e4d07"
    est = TrainEstimator(TrainEstimatorConfig())
    assert est.recipe == "sgdr"  # CPU
    # on CUDA, fast only for nets made for it (the fastcnn space): MBConv nets got 26-52 %
    for fast_nets, expected in ((False, "sgdr"), (True, "fast")):
        task = Task(dataset=digits16, device="cuda", fast_nets=fast_nets)
        assert TrainEstimator(TrainEstimatorConfig(), task).recipe == expected
    assert FastCnnSpace.fast_recipe and not FbnetSpace.fast_recipe


# ---------------------------------------------------------------- final stage, train
def test_search_with_final_stage_and_hwnas_train(tmp_path):
    out = tmp_path / "s"
    res = run_cli(
        "search",
        "--out",
        str(out),
        "--budget",
        "4",
        "-q",
        *sets(*FASTCNN, "final.repeats=2", "final.epochs=2", "final.max_models=1"),
    )
    assert res.returncode == 0, res.stderr
    assert "4 trials and 2 final trainings, Pareto front of" in res.stdout  # budget 4: kept
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    search = [t for t in trials if t["stage"] == "search"]
    final = [t for t in trials if t["stage"] == "final"]
    assert len(search) == 4 and len(final) == 2
    parent = next(t for t in search if t["id"] == final[0]["parent_id"])
    assert {f["info"]["final_of"] for f in final} == {parent["id"]}
    assert {f["info"]["repeat"] for f in final} == {0, 1}
    assert len({f["seed"] for f in final}) == 2  # other seeds than each other
    for f in final:
        assert "accuracy" not in f["metrics"]  # never on the search's front
        assert 0.3 < f["metrics"]["test_accuracy"] <= 1.0
        assert f["metrics"]["macs"] == parent["metrics"]["macs"]
    accs = [f["metrics"]["test_accuracy"] for f in final]
    assert parent["metrics"]["final_runs"] == 2
    assert parent["metrics"]["final_test_accuracy"] == pytest.approx(sum(accs) / 2)
    pareto = json.loads((out / "pareto.json").read_text())
    assert all(p["id"] != f["id"] for p in pareto["pareto"] for f in final)
    assert "fronts_by_stage" not in pareto  # final runs have no front of their own (was [])

    # the same command again repeats nothing
    again = run_cli("search", "--out", str(out), "--budget", "4", "-q", *sets(*FASTCNN))
    assert again.returncode == 0, again.stderr
    assert len(json.loads(run_cli("show", str(out), "--json").stdout)) == 6

    # one run asked of a net trained twice: nothing run, and the summary still of both runs
    # (it was of the one asked for, the other dropped from show, report and pareto.json)
    tr = run_cli("train", str(out), "--trial", str(parent["id"]), "--repeats", "1", "-q")
    assert tr.returncode == 0 and "already trained, nothing run" in tr.stdout, tr.stderr
    assert re.search(r"all its runs at this length: test [\d.]+% ± [\d.]+% \(2 × 2 ep\)", tr.stdout)
    kept = {t["id"]: t for t in json.loads(run_cli("show", str(out), "--json").stdout)}
    assert kept[parent["id"]]["metrics"]["final_runs"] == 2
    assert kept[parent["id"]]["metrics"]["final_test_accuracy"] == pytest.approx(sum(accs) / 2)

    # hwnas train DIR --trial N: one more run of another trial, stored as stage final
    other = next(t for t in search if t["id"] != parent["id"])
    tr = run_cli("train", str(out), "--trial", str(other["id"]), "--repeats", "1", "--json")
    assert tr.returncode == 0, tr.stderr
    (stored,) = json.loads(tr.stdout)
    assert stored["stage"] == "final" and stored["parent_id"] == other["id"]
    assert "test_accuracy" in stored["metrics"] and "run 1/1" in tr.stderr
    # another length is another training (it was once answered with the stored run), kept
    # beside the first; the same length again repeats nothing
    longer = [str(other["id"]), "--repeats", "1", "--epochs", "1", "--json"]
    for _ in range(2):
        tr = run_cli("train", str(out), "--trial", *longer)
        assert tr.returncode == 0, tr.stderr
        (one,) = json.loads(tr.stdout)
        assert one["id"] != stored["id"] and one["fidelity"]["epochs"] == 1
    assert one["id"] == stored["id"] + 1
    # asked again, it says it ran nothing; side-by-side timing without a reference net: a note
    tr = run_cli("train", str(out), "--trial", *longer[:-1], "--timing-rounds", "2", "-q")
    assert tr.returncode == 0, tr.stderr
    assert f"already trained, nothing run: trial(s) #{one['id']} in" in tr.stdout
    assert "note: --timing-rounds: no reference net with final trainings" in tr.stderr
    again = {t["id"]: t for t in json.loads(run_cli("show", str(out), "--json").stdout)}
    assert again[other["id"]]["metrics"]["final_epochs"] == 1
    shown = run_cli("show", str(out), env={"COLUMNS": "250"}).stdout  # which length, said
    row = next(r for r in shown.splitlines() if re.match(rf"\W*{other['id']} ", r))
    assert re.search(r"\d% \(1 × 1 ep\)", row), shown  # one run: no spread claimed
    assert "final_test_accuracy_std" not in again[other["id"]]["metrics"]
    assert again[stored["id"]]["fidelity"]["epochs"] == 2
    export = run_cli(
        "export", str(out), "--trial", str(stored["id"]), "-o", str(tmp_path / "m.onnx")
    )
    assert export.returncode == 0, export.stderr
    assert "note:" not in export.stderr  # a final run itself: nothing to point at
    # the search trial's own weights are not the final-trained net's: the export says which are
    export = run_cli(
        "export", str(out), "--trial", str(parent["id"]), "-o", str(tmp_path / "p.onnx")
    )
    assert export.returncode == 0, export.stderr
    ids = sorted(f["id"] for f in final)
    assert f"its final trainings are #{ids[0]} (test " in export.stderr, export.stderr
    assert f"#{ids[1]} (test " in export.stderr

    # an arch spec file into the study, and the errors that must be one line
    spec = tmp_path / "a.json"
    spec.write_text(json.dumps(other["arch"]))
    tr = run_cli("train", str(out), "--arch", f"@{spec}", "--repeats", "1", "--json")
    assert tr.returncode == 0, tr.stderr
    # run r of every net has the same seed (common random numbers): the same net trained
    # later in the queue, without a parent, gives the same test accuracy to the last digit
    (again_run,) = json.loads(tr.stdout)
    assert again_run["id"] > stored["id"] and again_run["parent_id"] is None
    assert f"note: this arch is trial #{other['id']}'s; its runs here stand apart" in tr.stderr
    run0 = next(f for f in final if f["info"]["repeat"] == 0)
    assert again_run["seed"] == stored["seed"] == run0["seed"]
    assert again_run["metrics"]["test_accuracy"] == stored["metrics"]["test_accuracy"]
    for args, msg in [
        (["train", str(out), "--arch", "@missing.json"], "file not found"),
        (["train", str(out), "--arch", "airbench94"], "not in this study's fastcnn space"),
        (["train", str(out), "--trial", "999"], "no such trial"),
        (["train", "--arch", "airbench94", "--out", str(tmp_path / "d")], "at least 9x9"),
        (["train", str(out), "--trial", "1", "--timing-rounds", "-1"], "from 0 to 50"),
        (["train", str(out), "--arch", "airbench95"], "no reference net of that name (airb"),
        (["train", str(tmp_path / "nodir"), "--trial", "0"], "nodir: no study here"),
    ]:
        bad = run_cli(*args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert msg in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "d").exists()  # a refused start writes nothing
    # the same arch into a new study: its report names no search it never ran
    alone = tmp_path / "alone"
    tr = run_cli("train", "--arch", f"@{spec}", "--out", str(alone), "-q", *sets(*FASTCNN))
    assert tr.returncode == 0, tr.stderr
    assert run_cli("report", str(alone)).returncode == 0
    assert "<title>hwnas train — alone</title>" in (alone / "report.html").read_text()
    assert "<title>hwnas search — " in (out / "report.html").read_text()


def test_final_stage_trains_the_reference_nets_and_their_rivals_first(tmp_path):
    """With ``strategy.start`` (the nets to beat) the final stage trains them too, and picks
    first the front members that dominate one of them on the search's figures."""
    from hwnas.experiment.final import dominates, pick
    from hwnas.experiment.store import Trial

    objectives = [("accuracy", "max"), ("latency_ms", "min")]

    def t(i: int, acc: float, lat: float) -> Trial:
        return Trial(i, {}, f"h{i}", "complete", 0, metrics={"accuracy": acc, "latency_ms": lat})

    ref = t(0, 0.90, 2.0)
    front = [t(1, 0.80, 0.5), t(2, 0.85, 1.0), t(3, 0.91, 1.9), t(4, 0.95, 3.0), t(5, 0.90, 1.5)]
    assert dominates(front[2], ref, objectives) and dominates(front[4], ref, objectives)
    assert not dominates(front[3], ref, objectives)  # more accurate, slower
    assert not dominates(t(6, 0.90, 2.0), ref, objectives)  # equal is not better

    def ids(k: int, refs: list[Trial]) -> tuple[list[int], list[int]]:
        rivals, rest = pick(front, refs, k, objectives, "latency_ms")
        return [x.id for x in rivals], [x.id for x in rest]

    # rivals most accurate first, then the spread (one left: its most accurate end)
    assert ids(3, [ref]) == ([3, 5], [4])
    assert ids(0, [ref]) == ([3, 5], [1, 2, 4])
    assert ids(2, []) == ([], [1, 4])
    # a reference's own net (e.g. promoted to more epochs) is no rival of it
    front[2].arch_hash = ref.arch_hash
    assert ids(0, [ref]) == ([5], [1, 2, 3, 4])

    # a reference is its standing trial: a promotion answers for the start trial
    from hwnas.experiment.experiment import Experiment

    start, promoted = t(0, 0.5, 2.0), t(7, 0.9, 2.0)
    start.info, promoted.info = {"op": "start"}, {"op": "promote", "promoted_from": 0}
    promoted.arch_hash = start.arch_hash
    assert [x.id for x in Experiment._references([start, *front, promoted])] == [7]
    start.status = "pruned"
    assert Experiment._references([start]) == []  # said in the log, not trained

    start = tmp_path / "ref.json"
    one = {"width": 8, "depth": 1, "kernel": 3, "residual": False}
    start.write_text(json.dumps({"act": "relu", "groups": [one, {**one, "width": 16}]}))
    out = tmp_path / "s"
    args = [*FASTCNN, f"strategy.start=['@{start}']", "final.repeats=1", "final.max_models=1"]
    res = run_cli("search", "--out", str(out), "--budget", "4", "-q", *sets(*args))
    assert res.returncode == 0, res.stderr
    # `show` says the final stage's verdict on the reference, whatever it is
    shown = run_cli("show", str(out)).stdout
    assert re.search(
        r"reference #\d+ \(fastcnn relu 8x1-16x1, test [\d.]+%, macs [\d.e+,]+\): ", shown
    ), shown
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    ref_trial = next(x for x in trials if x["info"].get("op") == "start")
    finals = {x["info"]["final_of"] for x in trials if x["stage"] == "final"}
    assert ref_trial["id"] in finals  # the reference got its final training
    assert ref_trial["metrics"]["final_runs"] == 1
    assert len(finals - {ref_trial["id"]}) <= 1  # max_models front members besides
    off = tmp_path / "off"
    res = run_cli(
        "search", "--out", str(off), "--budget", "4", "-q", *sets(*args, "final.references=false")
    )
    assert res.returncode == 0, res.stderr
    trials = json.loads(run_cli("show", str(off), "--json").stdout)
    assert len([x for x in trials if x["stage"] == "final"]) == 1


def test_the_references_verdict_uses_final_test_accuracy_and_the_searched_costs():
    """A reference net is dominated by a searched net with final trainings whose final test
    accuracy is no lower and whose costs are no higher, one of them strictly; validation
    accuracy and nets without final trainings do not count."""
    from hwnas.experiment.final import against_references
    from hwnas.experiment.store import Trial

    objectives = [("accuracy", "max"), ("latency_ms", "min")]

    def t(i: int, val: float, test: float | None, lat: float, op: str = "mutate") -> Trial:
        m = {"accuracy": val, "latency_ms": lat}
        if test is not None:
            m.update(final_runs=3, final_test_accuracy=test)
        return Trial(i, {}, f"h{i}", "complete", 0, metrics=m, info={"op": op}, stage="search")

    ref = t(0, 0.88, 0.912, 9.0, "start")
    nets = [
        ref,
        t(1, 0.85, 0.913, 8.0),  # lower validation, higher test, faster: dominates
        t(2, 0.90, 0.911, 7.0),  # higher validation, lower test: does not
        t(3, 0.89, 0.915, 9.5),  # more accurate, slower: does not
        t(4, 0.90, None, 5.0),  # no final trainings: not judged
        t(5, 0.88, 0.912, 9.0),  # equal is not better
    ]
    [(r, by)] = against_references(nets, objectives)
    assert r.id == 0 and [x.id for x in by] == [1]
    assert against_references(nets[1:], objectives) == []  # no reference was trained
    assert against_references(nets, [("latency_ms", "min")]) == []  # no accuracy objective


def test_the_references_verdict_takes_latencies_timed_side_by_side():
    """Where a reference and a searched net were timed side by side after the final
    trainings (``final_latency_ms``), those readings decide, not the search's kept ones; a net
    without them is judged on the search's figures."""
    from hwnas.experiment.final import against_references, final_figures
    from hwnas.experiment.store import Trial

    objectives = [("accuracy", "max"), ("latency_ms", "min")]

    def t(i: int, lat: float, paired: float | None, op: str = "mutate") -> Trial:
        m = {"accuracy": 0.9, "latency_ms": lat, "final_runs": 3, "final_test_accuracy": 0.92}
        if paired is not None:
            m.update(final_latency_ms=paired, final_latency_ms_readings=[paired])
        return Trial(i, {}, f"h{i}", "complete", 0, metrics=m, info={"op": op}, stage="search")

    ref = t(0, 9.0, 7.0, "start")  # its kept reading was taken on a quiet host
    nets = [
        ref,
        t(1, 6.6, 7.2),  # faster by the kept readings, slower side by side: does not dominate
        t(2, 9.5, 6.5),  # slower by the kept readings, faster side by side: dominates
        t(3, 8.0, None),  # not timed side by side: its kept reading against the reference's
    ]
    [(_, by)] = against_references(nets, objectives)
    assert [x.id for x in by] == [2, 3]
    assert final_figures(nets[2], ref, objectives) == [
        ("final_test_accuracy", "max"),
        ("final_latency_ms", "min"),
    ]
    assert final_figures(nets[3], ref, objectives)[1] == ("latency_ms", "min")


def test_side_by_side_timing_rotates_the_nets_and_keeps_medians():
    """Every net with final trainings is read once per round, in an order that changes from
    round to round; a failed reading costs that reading only; without a reference among them
    nothing is timed."""
    from hwnas.experiment.final import time_side_by_side
    from hwnas.experiment.store import Trial

    def t(i: int, op: str = "mutate", finals: bool = True) -> Trial:
        m: dict = {"accuracy": 0.9, "latency_ms": 1.0}
        if finals:
            m["final_runs"] = 1
        return Trial(
            i, {"n": i}, f"h{i}", "complete", 0, metrics=m, info={"op": op}, stage="search"
        )

    class FakeStore:
        def __init__(self, trials):
            self._trials, self.updated, self.meta = trials, [], {}

        def trials(self):
            return self._trials

        def update_metrics(self, tid, metrics):
            self.updated.append(tid)

        def get_meta_json(self, key):
            return self.meta.get(key)

        def set_meta(self, key, value):
            self.meta[key] = value

    class FakeEvaluator:
        def build(self, arch, seed):
            return arch["n"]

    order: list[int] = []

    def timer(arch, model):
        order.append(model)
        if model == 2 and order.count(2) == 1:
            raise RuntimeError("board went away")
        return {"latency_ms": 10.0 * model + len(order)}

    nets = [t(0, "start"), t(1), t(2), t(3, finals=False)]
    store = FakeStore(nets)
    timed = time_side_by_side(store, FakeEvaluator(), {"latency_ms": timer}, rounds=3)
    assert [x.id for x in timed] == [0, 1, 2] and store.updated == [0, 1, 2]
    assert order == [0, 1, 2, 2, 1, 0, 1, 2, 0]  # reversed every other round, then rotated
    assert nets[1].metrics["final_latency_ms_readings"] == [12.0, 15.0, 17.0]
    assert nets[1].metrics["final_latency_ms"] == 15.0
    # the failed reading is left out
    assert nets[2].metrics["final_latency_ms_readings"] == [24.0, 28.0]
    assert "final_latency_ms" not in nets[3].metrics
    assert time_side_by_side(FakeStore(nets[1:]), FakeEvaluator(), {"latency_ms": timer}, 3) == []
    assert time_side_by_side(store, FakeEvaluator(), {"latency_ms": timer}, 0) == []

    def broken(arch, model):
        raise RuntimeError("board went away")

    # the same nets again: timed already, nothing changes (a finished search run again)
    assert time_side_by_side(store, FakeEvaluator(), {"latency_ms": broken}, rounds=2) == []
    assert nets[1].metrics["final_latency_ms"] == 15.0
    # a batch that reads nothing leaves no figure of an earlier batch beside its own
    store.meta.clear()
    time_side_by_side(store, FakeEvaluator(), {"latency_ms": broken}, rounds=2)
    assert not any("final_latency_ms" in x.metrics for x in nets)


def test_a_search_with_references_times_the_final_nets_side_by_side(tmp_path):
    """On a measured CPU latency, the final stage times the reference and the searched nets
    with final trainings together, ``final.timing_rounds`` readings each, and ``show`` says
    the verdict used them."""
    start = tmp_path / "ref.json"
    one = {"width": 8, "depth": 1, "kernel": 3, "residual": False}
    start.write_text(json.dumps({"act": "relu", "groups": [one, {**one, "width": 16}]}))
    out = tmp_path / "s"
    args = [
        *FASTCNN,
        "target=cpu-torch",
        "objectives={accuracy: max, latency_ms: min}",
        f"strategy.start=['@{start}']",
        "final.repeats=1",
        "final.max_models=2",
        "final.timing_rounds=3",
    ]
    res = run_cli("search", "--out", str(out), "--budget", "4", "-q", *sets(*args))
    assert res.returncode == 0, res.stderr
    assert re.search(r"^reference #\d+ \(fastcnn relu 8x1-16x1, test ", res.stdout, re.M)
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    finals = {x["info"]["final_of"] for x in trials if x["stage"] == "final"}
    timed = [x for x in trials if "final_latency_ms" in x["metrics"]]
    assert {x["id"] for x in timed} == finals and len(finals) >= 2
    for x in timed:
        readings = x["metrics"]["final_latency_ms_readings"]
        assert len(readings) == 3 and all(r > 0 for r in readings)
        assert x["metrics"]["final_latency_ms"] == pytest.approx(sorted(readings)[1])
    shown = run_cli("show", str(out)).stdout
    assert re.search(
        r"reference #\d+ \(fastcnn relu 8x1-16x1, test [\d.]+%, latency_ms [\d.]+\): ", shown
    ), shown
    from hwnas.experiment.study import Study

    with Study(out, readonly=True) as study:
        [verdict] = study.summary(study.store.trials())["references"]
    assert verdict["side_by_side"] == ["latency_ms"]  # the reference's and its dominators'
    assert "latency_ms: medians of readings taken side by side after the final" in shown
    # the line shows the figures it decided on, and pareto.json carries the verdict
    ref = next(x for x in trials if x["id"] == verdict["reference"])
    assert f"latency_ms {ref['metrics']['final_latency_ms']:.3f})" in shown
    assert json.loads((out / "pareto.json").read_text())["references"] == [verdict]
    log = (out / "hwnas.log").read_text()
    assert f"timed {len(finals)} nets with final trainings side by side, 3 rounds" in log
    # the same command on the finished search changes nothing: no re-timing of the front
    # (which could reshape it and the final stage's choice), no second side-by-side batch
    before = run_cli("show", str(out), "--json").stdout
    res = run_cli("search", "--out", str(out), "--budget", "4", "-q", *sets(*args))
    assert res.returncode == 0, res.stderr
    assert run_cli("show", str(out), "--json").stdout == before
    again = (out / "hwnas.log").read_text()[len(log) :]
    assert "re-tim" not in again and "side by side" not in again, again
    # a searched net trained afterwards is timed with them all again, in the rounds asked for
    other = next(x for x in trials if x["stage"] == "search" and x["id"] not in finals)
    tr = run_cli("train", str(out), "--trial", str(other["id"]), "--repeats", "1", "-q",
                 "--timing-rounds", "2")  # fmt: skip
    assert tr.returncode == 0, tr.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    timed = [x for x in trials if "final_latency_ms" in x["metrics"]]
    assert {x["id"] for x in timed} == finals | {other["id"]}
    assert all(len(x["metrics"]["final_latency_ms_readings"]) == 2 for x in timed)
    # its summary line gives the new side-by-side median, not the search's reading
    mine = next(x for x in timed if x["id"] == other["id"])["metrics"]
    assert f"latency_ms {mine['final_latency_ms']:.4g} (side by side)" in tr.stdout, tr.stdout
    assert re.search(r"^reference #\d+ \(fastcnn relu 8x1-16x1, test ", tr.stdout, re.M)


def test_a_second_writer_is_refused(tmp_path):
    with StudyLock(tmp_path) as lock:
        lock.announce()
        with pytest.raises(StudyLocked, match="in use by another hwnas process"):
            StudyLock(tmp_path).acquire()
        res = run_cli("search", "--out", str(tmp_path), "--budget", "1", "-q")
        assert res.returncode == 2 and "in use" in res.stderr, res.stderr
        assert f"pid {os.getpid()} on {socket.gethostname()}" in res.stderr
        assert not (tmp_path / "study.db").exists()
        tr = run_cli("train", str(tmp_path), "--arch", "airbench94")
        assert tr.returncode == 2
    StudyLock(tmp_path).acquire()  # released: free again


def test_interrupted_final_run_is_rerun_under_its_id(tmp_path):
    out = tmp_path / "s"
    args = ["--out", str(out), "--budget", "3", "-q"]
    finals = sets(*FASTCNN, "final.repeats=1", "final.epochs=1", "final.max_models=1")
    assert run_cli("search", *args, *finals).returncode == 0
    db = sqlite3.connect(out / "study.db")
    (fid,) = db.execute("SELECT id FROM trials WHERE stage='final'").fetchone()
    db.execute("UPDATE trials SET status='running', metrics='{}' WHERE id=?", (fid,))
    db.commit()
    db.close()
    assert run_cli("search", *args, *finals).returncode == 0
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    final = [t for t in trials if t["stage"] == "final"]
    assert [t["id"] for t in final] == [fid] and final[0]["status"] == "complete"
    # a run that failed: resumed, the search trains it again only if memory ran out
    # (a CPU allocation failure reads "can't allocate memory"; a net that ran out of memory
    # twice already is taken to be too large, not unlucky)
    for error, retries, again in (
        ("loss is NaN at epoch 1", 0, False),
        ("CUDA out of memory", 2, False),
        ("CUDA out of memory", 0, True),
        ("RuntimeError: DefaultCPUAllocator: can't allocate memory", 1, True),
    ):
        db = sqlite3.connect(out / "study.db")
        (info,) = db.execute("SELECT info FROM trials WHERE id=?", (fid,)).fetchone()
        info = {**json.loads(info), "oom_retries": retries}
        db.execute(
            "UPDATE trials SET status='failed', error=?, info=? WHERE id=?",
            (error, json.dumps(info), fid),
        )
        db.commit()
        db.close()
        resumed_at = time.time()
        assert run_cli("search", *args, *finals).returncode == 0
        (final,) = [
            t for t in json.loads(run_cli("show", str(out), "--json").stdout) if t["id"] == fid
        ]
        assert final["status"] == ("complete" if again else "failed"), (error, final)
        # a run again is timed from its new start to its new end, and its retries counted
        assert (final["started_at"] >= resumed_at) == again
        assert final["finished_at"] > final["started_at"]
        assert final["info"]["oom_retries"] == retries + again


def test_a_resumed_final_stage_trains_no_more_than_max_models_nets(tmp_path):
    """Re-timing on resume can reshape the front, so a fresh pick may name other nets than the
    first run trained: the nets begun count against ``final.max_models`` and are kept (a
    resumed run trained one more net per reshaping). A search extended with more trials has
    a final stage of its own."""
    from hwnas.experiment.final import within_budget
    from hwnas.experiment.store import Trial

    def t(i: int) -> Trial:
        return Trial(i, {}, f"h{i}", "complete", 0)

    a, b, c, d = t(1), t(2), t(3), t(4)
    ids = lambda xs: [x.id for x in xs]  # noqa: E731
    # nothing begun, or no limit: pick's choice as it is
    assert within_budget([a], [b], [], 0, 2) == ([a], [b])
    assert within_budget([a], [b], [c], 1, 0) == ([a], [b])
    # c begun and still on the front, not picked now: finished, one new net besides
    r, rest = within_budget([a], [b, d], [c], 1, 2)
    assert ids(r) == [1] and ids(rest) == [3]
    # b begun and picked again: kept where pick put it, the new ones fill the room left
    r, rest = within_budget([a], [b, d], [b], 1, 2)
    assert ids(r) == [1] and ids(rest) == [2]
    # a net begun that left the front still counts: no room for a new one
    assert within_budget([a], [b], [], 1, 1) == ([], [])

    out = tmp_path / "s"
    args = ["--out", str(out), "--budget", "4", "-q"]
    finals = sets(*FASTCNN, "final.repeats=1", "final.epochs=1", "final.max_models=1")
    assert run_cli("search", *args, *finals).returncode == 0
    db = sqlite3.connect(out / "study.db")
    rows = db.execute("SELECT info FROM trials WHERE stage='final'").fetchall()
    searched = db.execute("SELECT COUNT(*) FROM trials WHERE stage!='final'").fetchone()[0]
    assert len(rows) == 1 and json.loads(rows[0][0])["after_trials"] == searched
    first = json.loads(rows[0][0])["final_of"]
    # as if re-timing had pushed the trained net off the front
    (metrics,) = db.execute("SELECT metrics FROM trials WHERE id=?", (first,)).fetchone()
    m = json.loads(metrics)
    m["accuracy"] = 0.0
    db.execute("UPDATE trials SET metrics=? WHERE id=?", (json.dumps(m), first))
    db.commit()
    db.close()
    res = run_cli("search", *args, *finals)
    assert res.returncode == 0, res.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert [x["info"]["final_of"] for x in trials if x["stage"] == "final"] == [first]
    assert "left the front on re-timing" in (out / "hwnas.log").read_text()
    # a search extended with more trials has a final stage of its own
    more = ["--out", str(out), "--budget", "6", "-q"]
    assert run_cli("search", *more, *finals).returncode == 0
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    stages = [x["info"]["after_trials"] for x in trials if x["stage"] == "final"]
    assert len(stages) == 2 and stages[0] < stages[1]


def test_search_endings_are_honest(tmp_path):
    """Without a terminal: a line per trial; at the end the counts and the reasons; exit 1
    when no trial completed, 0 (and the same summary) when one did."""
    from conftest import fast_args

    res = run_cli(
        "search",
        "--out",
        str(tmp_path / "none"),
        "--budget",
        "2",
        *fast_args("constraints=['params <= 10']"),
    )
    assert res.returncode == 1, res.stderr
    assert "2 pruned" in res.stderr and "no trial completed" in res.stderr
    assert "x params" in res.stderr  # the reason, counted
    assert "trial 0 pruned" in res.stderr and "trial 1 pruned" in res.stderr
    ok = run_cli("search", "--out", str(tmp_path / "ok"), "--budget", "2", *fast_args())
    assert ok.returncode == 0, ok.stderr
    assert "trial 1 complete accuracy" in ok.stderr and "2 complete" in ok.stderr


def test_hwnas_train_asked_again_retries_a_failed_run_under_its_id(tmp_path, monkeypatch):
    """A final training that failed (out of memory, a NaN) is run again when `hwnas train`
    is asked again, under the same trial id; one that completed is kept, not repeated."""
    import random

    from conftest import FAST

    from hwnas.api import train_net
    from hwnas.estimate.train import TrainEstimator
    from hwnas.experiment.config import load_config
    from hwnas.space import make_space

    cfg = load_config(None, [*FAST, "estimator.epochs=1"])
    arch = json.dumps(make_space(cfg.space).sample(random.Random(0)))
    real = TrainEstimator.estimate

    def broken(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(TrainEstimator, "estimate", broken)
    first = train_net(tmp_path / "t", arch, config=cfg, repeats=2)
    assert [t.status for t in first.trials] == ["failed", "failed"]
    assert "out of memory" in (first.trials[0].error or "")
    monkeypatch.setattr(TrainEstimator, "estimate", real)
    again = train_net(tmp_path / "t", arch, config=cfg, repeats=2)
    assert [t.id for t in again.trials] == [t.id for t in first.trials]
    assert [t.status for t in again.trials] == ["complete", "complete"]
    assert all(t.error is None and "test_accuracy" in t.metrics for t in again.trials)
    stamp = [t.finished_at for t in again.trials]
    kept = train_net(tmp_path / "t", arch, config=cfg, repeats=2)
    assert [t.finished_at for t in kept.trials] == stamp  # completed runs are not repeated


def test_a_batch_too_large_for_the_data_is_warned_of_before_the_search(tmp_path):
    """The fast recipe's 1024 on digits' training split is two steps an epoch: the nets learn
    nothing in any budget. The search says so at its start, naming the key and a size that
    works; a batch that leaves enough steps draws no warning."""
    base = ["data.resolution=16", "space=fastcnn", "estimator.recipe=fast", "estimator.epochs=1"]
    res = run_cli("search", "--out", str(tmp_path / "big"), "--budget", "1", "-q", *sets(*base))
    assert res.returncode == 0, res.stderr
    warning = res.stderr.splitlines()[0]
    assert re.fullmatch(
        r"warning: estimator.fast.batch_size 1024 gives 2 training step\(s\) per epoch on \d+ "
        r"training images, too few to learn from; set estimator.fast.batch_size to \d+ or less",
        warning,
    ), res.stderr
    ok = [*base, "estimator.fast.batch_size=128"]
    res = run_cli("search", "--out", str(tmp_path / "ok"), "--budget", "1", "-q", *sets(*ok))
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
