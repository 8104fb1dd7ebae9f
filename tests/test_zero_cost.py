"""Zero-cost proxies (estimator: zero_cost): each is a deterministic score that leaves the net
untouched, a net that ignores its input scores below one that computes, and a search can
maximise `zc_<proxy>` beside a cost."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import SHARED, run_cli

from hwnas.data import batches, load_dataset
from hwnas.estimate.proxies import PROXIES
from hwnas.experiment.config import load_config
from hwnas.space import make_space


@pytest.fixture(scope="module")
def batch():
    cfg = load_config(None, [])
    data = load_dataset(cfg.data, 0)
    gen = torch.Generator().manual_seed(0)
    x, y = next(
        iter(
            batches(
                data.train, 64, mean=data.mean, std=data.std, shuffle=True, augment=False,
                generator=gen,
            )
        )
    )  # fmt: skip
    return x, y, data


def _cell(ops: str, data) -> torch.nn.Module:
    space = make_space(load_config(None, ["space=cell"]).space)
    arch = space.from_choices([space.choices()[0].index(ops)] * 6)
    torch.manual_seed(0)
    return space.build(arch, data.input_shape, data.num_classes)


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_a_proxy_is_deterministic_and_leaves_the_net_alone(batch, name):
    x, y, data = batch
    net = _cell("nor_conv_3x3", data)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    score = PROXIES[name](net, x, y)
    assert math.isfinite(score)
    assert PROXIES[name](net, x, y) == pytest.approx(score, rel=1e-9)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_a_net_that_ignores_its_input_scores_below_one_that_computes(batch, name):
    """The all-`none` cell passes nothing on: its features do not depend on the image."""
    x, y, data = batch
    dead, alive = _cell("none", data), _cell("nor_conv_3x3", data)
    assert PROXIES[name](dead, x, y) < PROXIES[name](alive, x, y)


def test_a_search_maximises_a_proxy_beside_a_cost(tmp_path):
    out = tmp_path / "zc"
    items = [
        "space=cell",
        "strategy=random",
        "estimator=zero_cost",
        "estimator.proxy=synflow",
        "target=analytic",
        "objectives={zc_synflow: max, macs: min}",
    ]
    args = [a for item in items for a in ("--set", item)]
    r = run_cli("search", "--out", str(out), "--budget", "6", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "zc_synflow" in r.stdout
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len(trials) == 6
    assert all(t["metrics"]["zc_synflow"] > 0 for t in trials if t["status"] == "complete")
    shown = run_cli("show", str(out), env={"COLUMNS": "250"}).stdout  # its own column
    assert "zc_synflow" in shown.splitlines()[2], shown
    bad = run_cli("search", "--out", str(tmp_path / "bad"), *args, "--set", "estimator.proxy=x")
    assert bad.returncode == 2 and "estimator.proxy" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_prefilter_warm_starts_and_keeps_weak_proposals_from_training(tmp_path):
    out = tmp_path / "pf"
    items = [
        "prefilter.proxy=synflow",
        "prefilter.sample=30",
        "prefilter.keep=3",
        "prefilter.below=0.9",
        "estimator.epochs=1",
        "target=analytic",
        "objectives={accuracy: max, macs: min}",
    ]
    args = [a for item in items for a in ("--set", item)]
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "5", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        meta = study.store.get_meta_json("prefilter")
        space = make_space(study.config.space)
    finally:
        study.close()
    scored = sorted(meta["scored"], key=lambda s: -s["score"])
    assert meta["proxy"] == "synflow" and len(scored) == 30
    scores = sorted(s["score"] for s in scored)
    threshold = scores[int(0.9 * 30)]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    warm = [t for t in trials if t["info"].get("op") == "warm_start"]
    assert [space.arch_hash(t["arch"]) for t in warm] == [
        space.arch_hash(s["arch"]) for s in scored[:3]
    ]  # the best-scored of the sample, trained first
    assert [t["id"] for t in warm] == [0, 1, 2]
    rest = [t for t in trials if t["info"].get("op") != "warm_start"]
    for t in rest:  # below the sample's 90 % quantile: scored, never trained
        low = t["metrics"]["zc_synflow"] < threshold
        assert (t.get("prune_reason") == "prefilter") == low, t
        assert ("accuracy" in t["metrics"]) == (not low)
    trained = [t for t in trials if t.get("prune_reason") != "prefilter"]
    assert len(trained) == 5 and len(trials) > 5  # the budget counts trained nets only
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "6", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len([t for t in again if t["info"].get("op") == "warm_start"]) == 3
    assert len([t for t in again if t.get("prune_reason") != "prefilter"]) == 6


@pytest.mark.skipif(
    not (SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz").exists(),
    reason="the NAS-Bench-201 table is not here",
)
def test_a_prefilter_builds_the_nets_a_table_estimator_would_not(tmp_path):
    """With a table estimator nothing is built; the proxy needs the nets all the same."""
    out = tmp_path / "tab"
    table = SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz"
    items = [
        f"estimator.path={table}",
        "data=digits",
        "prefilter.proxy=synflow",
        "prefilter.sample=10",
        "prefilter.keep=3",
    ]
    args = [a for item in items for a in ("--set", item)]
    r = run_cli(
        "search", "--config", "configs/nb201_accuracy.yaml", "--out", str(out), "--quiet",
        "--budget", "5", *args,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert [t["status"] for t in trials] == ["complete"] * 5, trials
    assert all(t["metrics"]["zc_synflow"] > 0 for t in trials)
    assert [t["info"].get("op") for t in trials[:3]] == ["warm_start"] * 3


def test_meco_scores_copied_channels_below_distinct_ones(batch):
    """MeCo reads how far a feature map's channels are from copies of each other: a conv
    whose 8 filters are one filter repeated has a singular channel correlation (smallest
    eigenvalue 0); 8 independent filters do not."""
    x, y, _ = batch
    distinct = torch.nn.Sequential(
        torch.nn.Conv2d(x.shape[1], 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    torch.manual_seed(0)
    distinct[0].reset_parameters()
    copied = torch.nn.Sequential(
        torch.nn.Conv2d(x.shape[1], 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    with torch.no_grad():
        copied[0].weight.copy_(distinct[0].weight[:1].expand_as(copied[0].weight))
        copied[0].bias.copy_(distinct[0].bias[:1].expand_as(copied[0].bias))
    distinct(x), copied(x)  # materialise the lazy heads
    assert PROXIES["meco"](copied, x, y) == pytest.approx(0.0, abs=1e-6)
    assert PROXIES["meco"](distinct, x, y) > 0.01
