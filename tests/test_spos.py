"""Single-path one-shot (strategy: spos) and inherited-weight estimates (estimator: supernet):
the score of a path is the stand-alone net's accuracy with the supernet's weights and
recalibrated BatchNorm, spos derives the best-scored nets of its inner search as trials of
stage ``derived``, and any strategy can search a trained supernet as trials of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli

from hwnas.data import batches, load_dataset
from hwnas.experiment.config import load_config
from hwnas.experiment.study import Study
from hwnas.oneshot.inherit import InheritedScorer
from hwnas.space import make_space

SPOS = [
    "space=cell",
    "strategy=spos",
    "strategy.evaluations=24",
    "strategy.search={name: evolution, population: 8, sample_size: 3}",
    "strategy.derive=2",
    "strategy.eval_images=200",
    "supernet.epochs=2",
    "estimator.epochs=1",
    "target=analytic",
    "objectives={accuracy: max, macs: min}",
]


def _args(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _meta(out: Path) -> dict:
    study = Study(out, readonly=True)
    try:
        return study.store.get_meta_json("oneshot")
    finally:
        study.close()


def test_a_score_is_the_stand_alone_nets_accuracy_after_recalibration():
    cfg = load_config(None, ["space=cell"])
    data = load_dataset(cfg.data, 0)
    space = make_space(cfg.space)
    torch.manual_seed(0)
    net = space.supernet(data.input_shape, data.num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for x, y in batches(
        data.train, 64, mean=data.mean, std=data.std, shuffle=True, augment=False, generator=gen
    ):  # one epoch along random paths: weights and BatchNorm statistics of every op move
        path = [(int(torch.randint(len(c), (1,), generator=gen)), None) for c in space.choices()]
        loss = F.cross_entropy(net(x, path), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = {
        k: v.clone()
        for k, v in net.state_dict().items()
        if "running" not in k and "tracked" not in k
    }
    scorer = InheritedScorer(net, data, "cpu", batch_size=64, bn_batches=4, eval_images=0, seed=3)
    picks = [3, 2, 3, 1, 3, 2]
    score = scorer.score(picks)
    assert scorer.score(picks) == score  # the same batches for every call and every arch
    assert scorer.score([3, 3, 3, 3, 3, 3]) != score
    after = {k: v for k, v in net.state_dict().items() if "running" not in k and "tracked" not in k}
    assert all(torch.equal(before[k], after[k]) for k in before)  # no weight changed
    scorer.score(picks)  # the path's statistics, recalibrated, are now in the supernet
    alone = space.build(space.from_choices(picks), data.input_shape, data.num_classes)
    alone.load_state_dict(net.state_for(picks))
    alone.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(
            data.val, 64, mean=data.mean, std=data.std, shuffle=False, augment=False, generator=None
        ):
            correct += int((alone(x).argmax(1) == y).sum())
    assert abs(correct / len(data.val) - score["accuracy"]) < 1e-9
    assert 0.0 < score["accuracy"] <= 1.0 and score["val_loss"] > 0

    # `finetune_steps`: the path trains from its inherited weights before it is scored, on
    # the same batches for every arch, and the supernet is left as it was
    tuned = InheritedScorer(
        net, data, "cpu", batch_size=64, bn_batches=4, eval_images=0, seed=3, finetune_steps=30
    )
    assert len(tuned.tune) == 30  # more steps than one epoch's batches: epochs drawn again
    got = tuned.score(picks)
    assert tuned.score(picks) == got
    after = {k: v for k, v in net.state_dict().items() if "running" not in k and "tracked" not in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    # thirty steps on one path fit it better than sharing did: a lower validation loss
    assert got["val_loss"] < score["val_loss"], (got, score)
    assert scorer.score(picks) == score  # the untuned scorer still reads the supernet's


def test_spos_derives_the_best_scored_nets_and_resumes_without_retraining(tmp_path):
    out = tmp_path / "spos"
    items = [*SPOS[:-1], "objectives={accuracy: max}"]
    r = run_cli("search", "--out", str(out), "--budget", "2", *_args(items))
    assert r.returncode == 0, r.stderr[-2000:]
    for line in ("supernet warm-up: 2/2", "spos: scoring archs: 24/24"):  # phases, then trials
        assert line in r.stderr, r.stderr[-2000:]
    assert r.stderr.index("spos: scoring archs: 24/24") < r.stderr.index("trial 0 ")
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len(trials) == 2 and {t["stage"] for t in trials} == {"derived"}
    meta = _meta(out)
    evals = meta["evaluations"]
    assert meta["strategy"] == "spos" and meta["search"] == "evolution"
    assert len(evals) == 24 and len({json.dumps(e["arch"]) for e in evals}) == 24
    best = sorted(evals, key=lambda e: -e["metrics"]["accuracy"])[:2]
    assert [t["info"]["inherited_accuracy"] for t in trials] == [
        e["metrics"]["accuracy"] for e in best
    ]
    assert [t["arch"] for t in trials] == [e["arch"] for e in best]
    assert all(t["status"] == "complete" and t["metrics"]["accuracy"] > 0 for t in trials)
    assert all("macs" in e["metrics"] for e in evals)  # priced by the run's cost sources
    # SPOS's supernet training is its warm-up: what it cost is kept and shown
    assert meta["warmup"]["epochs"] == meta["warmup"]["epochs_timed"] == 2
    assert meta["warmup"]["seconds"] > 0
    assert "supernet search: 2 warm-up epochs, " in run_cli("show", str(out)).stdout
    stamp = (out / "supernet" / "warmup.pt").stat().st_mtime_ns
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "3", *_args(items))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "supernet" / "warmup.pt").stat().st_mtime_ns == stamp  # not retrained
    assert len(json.loads(run_cli("show", str(out), "--json").stdout)) == 2  # no repeats


def test_spos_spreads_its_derived_nets_along_the_cost_front(tmp_path):
    out = tmp_path / "spos2"
    items = [*SPOS, "strategy.derive=3"]
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "3", *_args(items))
    assert r.returncode == 0, r.stderr[-2000:]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    evals = _meta(out)["evaluations"]
    n = [t["info"]["evaluation"] for t in trials]
    picked = [evals[i]["metrics"] for i in n]
    for m in picked:  # every derived net is on the inherited-weight front
        assert not any(
            e["metrics"]["accuracy"] >= m["accuracy"]
            and e["metrics"]["macs"] <= m["macs"]
            and (e["metrics"]["accuracy"], e["metrics"]["macs"]) != (m["accuracy"], m["macs"])
            for e in evals
        )
    assert [m["accuracy"] for m in picked] == sorted((m["accuracy"] for m in picked), reverse=True)


def test_any_strategy_searches_a_trained_supernet_and_bad_weights_are_refused(
    tmp_path, monkeypatch
):
    spos = tmp_path / "spos"
    r = run_cli(
        "search", "--out", str(spos), "--quiet", "--budget", "1",
        *_args([*SPOS, "strategy.evaluations=4", "strategy.derive=1"]),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    weights = spos / "supernet" / "warmup.pt"
    # the checkpoint says the arithmetic it was trained in, and the estimator scores in it
    # (it scored in bf16 on CUDA whatever the supernet was trained in)
    import hwnas.oneshot.inherit as inherit
    from hwnas.api import run_search

    state = torch.load(weights, map_location="cpu")
    assert state["precision"] == "fp32"  # the CPU's
    state["precision"] = "bf16"
    torch.save(state, tmp_path / "bf16.pt")
    asked: list[str] = []
    real_init = inherit.InheritedScorer.__init__

    def spy(self: Any, *a: Any, **kw: Any) -> None:
        asked.append(kw["precision"])
        real_init(self, *a, **kw)

    monkeypatch.setattr(inherit.InheritedScorer, "__init__", spy)
    for ckpt in (weights, tmp_path / "bf16.pt"):
        sets = ["space=cell", "data=digits", "strategy=random", "estimator=supernet"]
        sets += [f"estimator.weights={ckpt}", "estimator.eval_images=100"]
        run_search(load_config(None, sets, budget=1), tmp_path / f"p-{ckpt.stem}")
    # spos reusing a supernet (`supernet.weights`) scores in the checkpoint's arithmetic too
    sets = [*SPOS, "strategy.evaluations=2", "strategy.derive=1", "estimator.epochs=1"]
    sets += [f"supernet.weights={tmp_path / 'bf16.pt'}"]
    run_search(load_config(None, sets, budget=1), tmp_path / "spos-again")
    assert asked == ["fp32", "bf16", "bf16"]
    out = tmp_path / "random"
    items = [
        "space=cell",
        "strategy=random",
        "estimator=supernet",
        f"estimator.weights={weights}",
        "estimator.eval_images=200",
        "target=analytic",
        "objectives={accuracy: max, macs: min}",
    ]
    final = ["final.repeats=1", "final.epochs=1", "final.max_models=1"]
    r = run_cli(
        "search", "--out", str(out), "--quiet", "--budget", "6", *_args([*items, *final])
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    search = [t for t in trials if t["stage"] == "search"]
    assert len(search) == 6 and {t["stage"] for t in trials} == {"search", "final"}
    assert all(0.0 < t["metrics"]["accuracy"] <= 1.0 for t in search)
    assert len({t["metrics"]["accuracy"] for t in search}) > 1
    # the final stage trains the net stand-alone (the supernet's score trains nothing): a
    # test accuracy and weights of its own, exportable; so does `hwnas train`
    (run,) = [t for t in trials if t["stage"] == "final"]
    assert 0.0 < run["metrics"]["test_accuracy"] <= 1.0 and run["metrics"]["epochs"] == 1
    assert run["metrics"]["train_seconds"] > 0
    r = run_cli("export", str(out), "--trial", str(run["id"]), "-o", str(tmp_path / "f.onnx"))
    assert r.returncode == 0, r.stderr
    r = run_cli("train", str(out), "--trial", str(search[0]["id"]), "--repeats", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert 0.0 < json.loads(r.stdout)[0]["metrics"]["test_accuracy"] <= 1.0
    r = run_cli(
        "search", "--out", str(tmp_path / "zc"), "--quiet",
        *_args([*items, "final.estimator=zero_cost"]),
    )  # fmt: skip
    assert r.returncode == 2 and "final.estimator: zero_cost trains no nets" in r.stderr, r.stderr
    cases = {
        "does not exist": [f"estimator.weights={tmp_path / 'none.pt'}"],
        "another space": [f"estimator.weights={weights}", "space.channels=8"],
        "has none": ["space=graph", f"estimator.weights={weights}"],
    }
    for what, extra in cases.items():
        bad = tmp_path / what.replace(" ", "-")
        r = run_cli("search", "--out", str(bad), "--quiet", *_args([*items, *extra]))
        assert r.returncode == 2 and what in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not bad.exists()
    r = run_cli(
        "search", "--out", str(tmp_path / "x"), "--quiet",
        *_args([*SPOS, "strategy.search={name: darts}"]),
    )  # fmt: skip
    assert r.returncode == 2 and "one-shot itself" in r.stderr, r.stderr


def test_a_strategy_on_a_chain_supernet_proposes_only_its_paths(tmp_path):
    """The chain supernet covers one width per stage: a strategy searching it with
    ``estimator: supernet`` proposes only archs it has weights for, none wasted as failed."""
    from hwnas.space.chain import ChainSpace

    chain = ["space=chain", "target=analytic", "objectives={accuracy: max, macs: min}"]
    spos = tmp_path / "spos"
    items = [*chain, "strategy=spos", "strategy.evaluations=3", "strategy.derive=1"]
    items += ["strategy.eval_images=100", "supernet.epochs=1", "estimator.epochs=1"]
    r = run_cli("search", "--out", str(spos), "--quiet", "--budget", "1", *_args(items))
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "random"
    items = [*chain, "strategy=random", "estimator=supernet", "estimator.eval_images=100"]
    items.append(f"estimator.weights={spos / 'supernet' / 'warmup.pt'}")
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "8", *_args(items))
    assert r.returncode == 0, r.stderr[-2000:]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len(trials) == 8 and all(t["status"] == "complete" for t in trials)
    widths = ChainSpace().sub_widths
    assert all([s["width"] for s in t["arch"]["stages"]] == widths for t in trials)
    assert len({json.dumps(t["arch"]) for t in trials}) == 8


def test_the_supernet_phase_counts_as_a_training_on_the_host(tmp_path, monkeypatch, own_markers):
    """Other processes' latency readings must know a supernet trains beside them, as they
    know of a trial's training: the one-shot phase holds a training marker throughout."""
    from hwnas.api import run_search
    from hwnas.hardware import host_load
    from hwnas.oneshot.spos import SposSearch

    held: list[int] = []
    original = SposSearch.prepare

    def watched(self, kit):
        held.append(len(host_load._MINE))
        original(self, kit)
        held.append(len(host_load._MINE))

    monkeypatch.setattr(SposSearch, "prepare", watched)
    items = [
        *SPOS[:-1],
        "objectives={accuracy: max}",
        "strategy.evaluations=4",
        "strategy.derive=1",
    ]
    run_search(load_config(None, items, budget=1), tmp_path / "marked")
    assert held == [1, 1] and not host_load._MINE  # held while it trained, released after


def test_an_interrupted_inner_search_resumes_from_its_kept_scores(tmp_path):
    """Ctrl-C while SPOS scores archs: the scores so far are kept, and the resumed search
    asks the same archs (seeded strategy, deterministic scores), answered from them."""
    from types import SimpleNamespace

    from hwnas.oneshot.spos import SCORED, SposSearch
    from hwnas.space.cell import CellSpace

    class Scorer:
        def __init__(self, stop_at: int = 0) -> None:
            self.calls, self.stop_at = 0, stop_at

        def score(self, choices: list[int]) -> dict[str, float]:
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
            return {"accuracy": (sum((i + 1) * c for i, c in enumerate(choices)) % 17) / 17}

    def search(where: Path, scorer: Scorer) -> list[dict]:
        space = CellSpace()
        s = SposSearch(
            space, [("accuracy", "max")], 0, evaluations=30,
            search={"name": "evolution", "population": 8, "sample_size": 3},
        )  # fmt: skip
        kit = SimpleNamespace(
            space=space, price=lambda arch: {}, constraints=[], report=None,
            directory=where, cfg=SimpleNamespace(weights=None), seed=0,
        )  # fmt: skip
        return s._search(kit, scorer)

    whole = search(tmp_path / "a", Scorer())
    assert len(whole) == 30
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "b", Scorer(stop_at=13))
    assert len(json.loads((tmp_path / "b" / SCORED).read_text())["scores"]) == 12
    again = Scorer()
    resumed = search(tmp_path / "b", again)
    assert again.calls == 18  # the 12 kept are not scored again
    assert [(e["arch"], e["metrics"]) for e in resumed] == [
        (e["arch"], e["metrics"]) for e in whole
    ]


def test_fine_tuning_is_part_of_a_supernet_score_s_identity_only_when_on():
    """Studies scored before `finetune_steps` existed keep their trial keys (the keys at
    their defaults are left out); fine-tuned scores are other evaluations."""
    import hashlib

    from hwnas.oneshot.estimator import SupernetEstimator

    base = ["estimator=supernet", "estimator.weights=/x/warmup.pt"]
    plain = load_config(None, base).estimator
    before = plain.model_dump(mode="json", exclude={"finetune_steps", "finetune_lr"})
    for k in ("epochs", "data_fraction", "resolution"):
        before.pop(k, None)
    old = hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:10]
    assert SupernetEstimator(plain).identity().split(":")[1] == old
    tuned = load_config(None, [*base, "estimator.finetune_steps=40"]).estimator
    assert SupernetEstimator(tuned).identity() != SupernetEstimator(plain).identity()
