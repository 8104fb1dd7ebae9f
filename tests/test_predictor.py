"""Learned latency predictor, kernel-level features and the FBNet space, on real tables."""

from __future__ import annotations

import collections
import csv
import gzip
import json
import random

import numpy as np
import pytest
import torch
from conftest import SHARED, run_cli

from hwnas.cli import main
from hwnas.experiment.config import load_config
from hwnas.hardware import predictor as P
from hwnas.hardware.features import kernel_ops, trace_ops
from hwnas.space.base import InvalidArch
from hwnas.space.cell import CellSpace
from hwnas.space.chain import ChainSpace
from hwnas.space.config import FbnetSpaceConfig
from hwnas.space.fbnet import BLOCKS, FbnetSpace

#: every stage may be dropped (depth 0): shapes then skip its stride and width
OPTIONAL_STAGES = (
    "space.stages=[{depths: [0, 1], widths: [4, 8], stride: 1}, "
    "{depths: [0, 1, 2], widths: [8, 16], stride: 2}, {depths: [0, 2], widths: [16], stride: 2}]"
)

FBNET = SHARED / "benchmarks" / "fbnet_latency_5000.csv.gz"
NB201 = SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz"
needs_fbnet = pytest.mark.skipif(not FBNET.exists(), reason=f"{FBNET} not present")
needs_nb201 = pytest.mark.skipif(not NB201.exists(), reason=f"{NB201} not present")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small forwards on a shared 2-core host: one thread is ~10x faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fbnet_rows(n: int) -> list[dict[str, str]]:
    with gzip.open(FBNET, "rt") as fh:
        return [r for _, r in zip(range(n), csv.DictReader(fh), strict=False)]


# --------------------------------------------------------------------- FBNet space
@needs_fbnet
def test_fbnet_keys_round_trip_the_table():
    space = FbnetSpace()
    for row in fbnet_rows(200):
        arch = space.from_key(row["layer_choices"])
        assert space.key(arch) == row["layer_choices"]
        assert len(arch["blocks"]) == 22
    for bad in ("", "0 1 2", " ".join(["9"] * 22), " ".join(["x"] * 22)):
        with pytest.raises(InvalidArch):
            space.from_key(bad)


def test_fbnet_space_operations():
    space = FbnetSpace()
    rng = random.Random(0)
    arch = space.sample(rng)
    enc = space.encode(arch)
    assert len(enc) == 22 * 9 and sum(enc) == 22 and set(enc) == {0.0, 1.0}
    neigh = space.neighbours(arch)
    assert len(neigh) == 22 * 8 and len({space.arch_hash(a) for a in neigh}) == 176
    for _ in range(50):
        child = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(child["blocks"], arch["blocks"], strict=True)) == 1
    child = space.crossover(arch, space.sample(rng), rng)
    space.validate(child)
    assert space.from_parameters({k: v[0] for k, v in space.parameters().items()}) == {
        "blocks": ["k3_e1"] * 22
    }
    assert space.canonical(arch) == arch and space.size() == 9**22
    assert space.describe(arch).startswith("fbnet 16[")
    # skip is an identity only where shapes agree: layers 1, 5, 9, 13, 17, 21 stride or widen
    assert [i for i in range(22) if not space.identity_possible(i)] == [1, 5, 9, 13, 17, 21]
    for bad in ({"blocks": ["k3_e1"] * 21}, {"blocks": ["k9_e1"] * 22}, {"ops": []}):
        with pytest.raises(InvalidArch):
            space.validate(bad)


def test_fbnet_builds_every_block_and_config_selects_it():
    cfg = load_config(None, ["space=fbnet", "space.width_multiplier=0.25", "space.stem_stride=1"])
    assert isinstance(cfg.space, FbnetSpaceConfig)
    from hwnas.space import make_space

    space = make_space(cfg.space)
    assert isinstance(space, FbnetSpace) and space.layers[-1][1] == 88  # 352 * 0.25
    for b in BLOCKS:  # every block, in every position, including the shape-changing skips
        model = space.build({"blocks": [b] * 22}, (3, 16, 16), 10).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


# ----------------------------------------------------------------- kernel features
def op_summary(ops, skip=("act", "bn")):
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    for o in ops:
        if o.kind not in skip:
            v = out[o.key]
            for i, x in enumerate((1, o.macs, o.in_bytes, o.out_bytes, o.weight_bytes)):
                v[i] += x
    return dict(out)


@pytest.mark.parametrize(
    ("space", "shape"),
    [
        (ChainSpace(), (1, 8, 8)),
        (ChainSpace(load_config(None, [OPTIONAL_STAGES]).space), (1, 8, 8)),
        (CellSpace(load_config(None, ["space=cell", "space.channels=4"]).space), (3, 16, 16)),
        (FbnetSpace(FbnetSpaceConfig(width_multiplier=0.25)), (3, 32, 32)),
    ],
    ids=["chain", "chain-optional-stages", "cell", "fbnet"],
)
def test_analytic_kernels_match_the_traced_network(space, shape):
    """The fast op lists describe exactly what the torch module runs (convs, pools, adds...)."""
    rng = random.Random(3)
    for _ in range(8):
        arch = space.sample(rng)
        analytic = kernel_ops(space, arch, shape, 10)
        traced = trace_ops(space.build(arch, shape, 10), shape)
        assert op_summary(analytic) == op_summary(traced)
        assert sum(o.macs for o in analytic) > 0


# ------------------------------------------------------------------------ predictor
def test_trees_evaluate_like_sklearn():
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    gbr = GradientBoostingRegressor(n_estimators=40, max_depth=3, init="zero").fit(X, y)
    trees = P.TreesPart.from_sklearn(gbr)
    Xt = rng.normal(size=(50, 6))
    np.testing.assert_allclose(trees.predict(Xt), gbr.predict(Xt), rtol=1e-10, atol=1e-10)
    for i in range(3):  # one row at a time: the search's path
        assert trees.predict(Xt[i : i + 1])[0] == pytest.approx(gbr.predict(Xt[i : i + 1])[0])
    # trees fitted on some columns read them from the full vector
    cols = np.array([4, 0, 2])
    sub = GradientBoostingRegressor(n_estimators=20, max_depth=2, init="zero").fit(X[:, cols], y)
    np.testing.assert_allclose(
        P.TreesPart.from_sklearn(sub, cols).predict(Xt), sub.predict(Xt[:, cols]), atol=1e-10
    )


@needs_fbnet
def test_predictor_on_the_fbnet_table(tmp_path):
    """150 Xeon rows: held-out accuracy near the table's ceiling (~0.95), far above additive."""
    space = FbnetSpace()
    rows = P.load_rows(space, FBNET, "layer_choices", "gold_6226_ms")
    tr, te = P.split_rows(len(rows.archs), 150, 0)
    model = P.train(space, [rows.archs[i] for i in tr], rows.latency[tr], (3, 224, 224), 1000)
    test = [rows.archs[i] for i in te]
    m = P.evaluate(model, test, rows.latency[te])
    assert m["n"] == 4850
    assert m["within_10pct"] >= 0.92 and m["kendall_tau"] >= 0.85 and m["mape"] < 0.05
    # the additive per-layer fit cannot even be determined well from 150 rows
    E = np.array([space.encode(a) for a in rows.archs])
    A = np.hstack([E, np.ones((len(E), 1))])
    w = np.linalg.lstsq(A[tr], rows.latency[tr], rcond=None)[0]
    additive = np.mean(np.abs(A[te] @ w - rows.latency[te]) <= 0.1 * rows.latency[te])
    assert m["within_10pct"] > additive + 0.2

    path = model.save(tmp_path / "xeon.npz")
    again = P.LatencyPredictor.load(path)
    np.testing.assert_allclose(again.predict(test[:200]), model.predict(test[:200]))
    assert again.meta["training"]["n"] == 150 and len(again.training_keys) == 150
    one = again.predict_one(test[0])
    assert one == pytest.approx(float(model.predict(test[:1])[0]))


def test_traced_fallback_for_a_space_without_analytic_ops():
    """A space hwnas has no op list for is traced from its module, and still learnable."""

    class MyChain(ChainSpace):
        name = "chain"

    space = MyChain(load_config(None, ["space.stages=[{depths: [1, 2], widths: [8, 16]}]"]).space)
    rng = random.Random(0)
    archs = []
    while len(archs) < 32:
        a = space.sample(rng)
        if space.arch_hash(a) not in {space.arch_hash(b) for b in archs}:
            archs.append(a)
    ops = [kernel_ops(space, a, (1, 8, 8), 10) for a in archs]
    # synthetic device: 2 ns per MAC and 1 us per kernel launch
    y = np.array([1e-6 * (2e-3 * sum(o.macs for o in op) + len(op)) for op in ops]) * 1e3
    model = P.train(space, archs[:24], y[:24], (1, 8, 8), 10)
    assert model.featurizer.needs_model
    pred = model.predict(archs[24:])
    assert np.all(np.abs(pred - y[24:]) <= 0.1 * y[24:])


# ------------------------------------------------------------------------------ CLI
@needs_fbnet
def test_cli_train_then_eval_on_held_out_rows(tmp_path):
    out = tmp_path / "p.npz"
    res = run_cli(
        "predictor", "train", "--data", str(FBNET), "--arch-column", "layer_choices",
        "--target-column", "gold_6226_ms", "--train-size", "120", "--output", str(out),
        "--seed", "1", "--trees", "off",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    trained = json.loads(res.stdout)
    assert {"within_10pct", "kendall_tau", "rmse_ms", "mape", "n"} <= set(trained)
    assert trained["n"] == 4880 and trained["train_size"] == 120
    assert trained["within_10pct"] >= 0.9 and "trees" not in trained["features"]
    res = run_cli("predictor", "eval", "--model", str(out))
    assert res.returncode == 0, res.stderr
    judged = json.loads(res.stdout)
    for k in ("n", "within_10pct", "kendall_tau", "rmse_ms", "mape"):
        assert judged[k] == pytest.approx(trained[k])


TABLE_ARGS = f"--data {FBNET} --arch-column layer_choices --target-column pixel2_ms"


@needs_fbnet
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ("--data nope.csv --arch-column a --target-column b", "does not exist"),
        (f"--data {FBNET} --arch-column arch --target-column pixel2_ms", "'arch'"),
        (f"--data {FBNET} --arch-column layer_choices --target-column x_ms", "--target-column"),
        (f"{TABLE_ARGS} --train-size 5000", "--train-size"),
        (f"{TABLE_ARGS} --train-size 3", "--train-size"),
        ("--config x.yaml", "--n"),
        (f"{TABLE_ARGS} --space cell", "row 1"),
        (f"{TABLE_ARGS} --input-shape 3,x,4", "--input-shape"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    code = main(["predictor", "train", *args.split(), "--output", str(tmp_path / "p.npz")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_cli_eval_bad_model_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for path in (tmp_path / "missing.npz", bad):
        assert main(["predictor", "eval", "--model", str(path)]) == 2
        err = capsys.readouterr().err
        assert "predictor" in err and len(err.strip().splitlines()) == 1


def test_collect_on_cpu_ort_then_train(tmp_path):
    """--config --n: measures random archs of the config's space on its target, then trains."""
    out = tmp_path / "chain.npz"
    res = run_cli(
        "predictor", "train", "--n", "18", "--train-size", "12", "--output", str(out), "-q",
        "--config", "configs/digits.yaml",
        "--set", "space.stages=[{depths: [1, 2], widths: [8, 16]}, {depths: [1], widths: [16, 24], stride: 2}]",
        "--set", "target.runs=12", "--set", "target.blocks=3", "--set", "target.warmup=2",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["n"] == 6 and report["train_size"] == 12
    # the 6 held-out archs were measured twice: the measurement's own agreement is reported
    assert report["noise_floor_n"] == 6 and 0.0 <= report["noise_floor_within_10pct"] <= 1.0
    again = run_cli(
        "predictor", "eval", "-m", str(out), "-q", "--config", "configs/digits.yaml",
        "--set", "target.runs=12", "--set", "target.blocks=3", "--set", "target.warmup=2",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    judged = json.loads(again.stdout)
    assert judged["n"] == 6 and judged["noise_floor_n"] == 6
    assert judged["within_10pct"] == report["within_10pct"]  # judged on the table's readings
    other = run_cli("predictor", "eval", "-m", str(out), "--set", "space=cell")
    assert other.returncode == 2 and "the predictor's chain" in other.stderr
    bigger = run_cli("predictor", "eval", "-m", str(out), "--set", "data.resolution=16")
    assert bigger.returncode == 2 and "inputs of 1x16x16" in bigger.stderr
    data = out.with_suffix(".csv")
    with data.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and all(float(r["latency_ms"]) > 0 for r in rows)
    model = P.LatencyPredictor.load(out)
    assert model.space.name == "chain" and model.meta["training"]["n"] == 12
    pred = model.predict([json.loads(r["arch"]) for r in rows])
    assert np.all(pred > 0) and np.all(np.isfinite(pred))


# --------------------------------------------------------------------------- search
@needs_nb201
def test_search_minimises_predicted_latency(tmp_path):
    """target: predictor -- a search on NB201 accuracies with latency from a trained model."""
    import hwnas

    space = CellSpace()
    rows = P.load_rows(space, NB201, "arch_str", "pixel3_ms")
    tr, _ = P.split_rows(len(rows.archs), 200, 0)
    model = P.train(space, [rows.archs[i] for i in tr], rows.latency[tr], (3, 32, 32), 10)
    path = model.save(tmp_path / "pixel3.npz")
    cfg = hwnas.load_config(
        "configs/nb201_pixel3.yaml",
        [f"estimator.path={NB201}", "target=predictor", f"target.path={path}"],
        budget=40,
    )
    result = hwnas.run_search(cfg, tmp_path / "run")
    assert len(result.trials) == 40 and result.pareto
    for t in result.trials:
        assert t.status == "complete", t.error
        assert t.metrics["latency_ms"] == pytest.approx(model.predict_one(t.arch))
        assert "macs" not in t.metrics  # no torch module was built for any trial
    bad = hwnas.load_config(
        "configs/nb201_pixel3.yaml",
        [f"estimator.path={NB201}", "target=predictor", f"target.path={tmp_path / 'no.npz'}"],
        budget=2,
    )
    with pytest.raises(P.PredictorError, match="not found"):
        hwnas.run_search(bad, tmp_path / "bad")
