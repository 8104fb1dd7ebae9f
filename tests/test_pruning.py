"""Stop rules (median) and fidelity schedules (asynchronous successive halving)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from types import SimpleNamespace

import pytest
from conftest import (
    REPO,
    RESUMED_HALVING,
    fast_args,
    run_cli,
    same_as_one_run,
    show_trials,
    stop_rule_args,
)

from hwnas.core.errors import ConfigError
from hwnas.core.fidelity import Fidelity, trial_key
from hwnas.experiment.config import load_config
from hwnas.pruning.config import HalvingSchedulerConfig, MedianPrunerConfig
from hwnas.pruning.halving import AsyncHalving
from hwnas.pruning.median import MedianPruner

TWO = [("accuracy", "max"), ("latency_ms", "min")]


def trial(i, acc_curve, latency, epochs=4, status="complete", **info):
    return SimpleNamespace(
        id=i,
        arch={"i": i},
        status=status,
        curve=[{"epoch": e + 1, "val_accuracy": a} for e, a in enumerate(acc_curve)],
        metrics={"accuracy": acc_curve[-1], "latency_ms": latency},
        fidelity={"epochs": epochs},
        info=info,
    )


def test_median_rule_compares_only_with_peers_of_similar_cost():
    pruner = MedianPruner(MedianPrunerConfig(min_trials=3, peers="similar", cost_band=0.5), TWO)
    for i in range(3):  # slow, accurate nets
        pruner.observe(trial(i, [0.8, 0.9, 0.95, 0.97], latency=10.0))
    for i in range(3, 6):  # fast, less accurate nets
        pruner.observe(trial(i, [0.5, 0.6, 0.65, 0.7], latency=1.0))
    fid = Fidelity(epochs=4)
    fast = pruner.rule(fid)
    fast.start({"latency_ms": 1.1})
    assert not fast.report(1, {"accuracy": 0.55})  # above its fast peers' median: goes on
    slow = pruner.rule(fid)
    slow.start({"latency_ms": 9.0})
    assert slow.report(1, {"accuracy": 0.55})  # below the slow peers' median: stopped
    other = pruner.rule(Fidelity(epochs=8))  # other fidelity: no peers, never stopped
    other.start({"latency_ms": 9.0})
    assert not other.report(1, {"accuracy": 0.1})
    warm = MedianPruner(MedianPrunerConfig(min_trials=3, warmup_epochs=2), TWO)
    for i in range(3):
        warm.observe(trial(i, [0.8, 0.9, 0.95, 0.97], latency=10.0))
    rule = warm.rule(fid)
    rule.start({"latency_ms": 10.0})
    assert not rule.report(1, {"accuracy": 0.1}) and rule.report(2, {"accuracy": 0.1})


def test_median_rule_with_cheaper_peers_never_stops_the_cheapest_net():
    """Where every net costs about the same (one band holds them all), `peers: similar` stops
    the cheap, weak end of the front; `cheaper` compares a trial only with nets that cost no
    more, the ones it must beat to reach the front."""
    curves = {0.030: [0.2, 0.3], 0.031: [0.5, 0.6], 0.033: [0.8, 0.9], 0.034: [0.85, 0.9]}
    rules = {}
    for mode in ("similar", "cheaper"):
        pruner = MedianPruner(MedianPrunerConfig(min_trials=2, peers=mode), TWO)
        for i, (lat, curve) in enumerate(curves.items()):
            pruner.observe(trial(i, curve, latency=lat, epochs=2))
        rules[mode] = pruner
    fid = Fidelity(epochs=2)

    def stops(mode, latency, acc):
        rule = rules[mode].rule(fid)
        rule.start({"latency_ms": latency})
        return rule.report(1, {"accuracy": acc})

    assert stops("similar", 0.0295, 0.25)  # the fastest net, below the band's median: stopped
    assert not stops("cheaper", 0.0295, 0.25)  # nothing is cheaper: it is the front's end
    assert not stops("cheaper", 0.0312, 0.45)  # cheaper peers 0.2 and 0.5: median 0.35
    assert stops("cheaper", 0.035, 0.6)  # all four are cheaper, median 0.65: dominated
    assert not stops("cheaper", 0.035, 0.7)


def test_a_stop_rule_that_could_cut_the_front_is_refused():
    with pytest.raises(ConfigError, match="train_seconds is known only after training"):
        load_config(None, ["pruner=median", "objectives={accuracy: max, train_seconds: min}"])
    with pytest.raises(ConfigError, match="needs accuracy among the objectives"):
        load_config(None, ["scheduler=halving", "objectives={macs: min, params: min}"])
    assert load_config(None, ["pruner=median"]).pruner.name == "median"  # acc + latency: fine


def test_halving_rungs_and_promotions_within_the_cost_band():
    cfg = HalvingSchedulerConfig(min_epochs=2, eta=3, warm_start=False, promote="similar")
    s = AsyncHalving(cfg, TWO, default_epochs=18)
    assert s.rungs == [2, 6, 18]
    assert s.fidelity(None) == Fidelity(epochs=2)
    assert s.fidelity(Fidelity(epochs=7)) == Fidelity(epochs=7)  # asked for by the strategy
    for i, acc in enumerate([0.5, 0.9, 0.7]):
        s.observe(trial(i, [acc], latency=5.0, epochs=2))
    promo = s.promotion()
    assert promo is not None and promo.trial_id == 1 and promo.fidelity == Fidelity(epochs=6)
    s.launched(SimpleNamespace(id=9, info={"promoted_from": 1, "rung": 1}, fidelity={"epochs": 6}))
    assert s.promotion() is None  # 3 results in rung 0: only the best third goes up
    s.observe(trial(3, [0.2], latency=0.5, epochs=2))  # a fast net has no fast rung-mates yet
    s.observe(trial(4, [0.1], latency=0.5, epochs=2))
    s.observe(trial(5, [0.15], latency=0.5, epochs=2))
    promo = s.promotion()
    assert promo is not None and promo.trial_id == 3  # best of its own cost band


def test_halving_promotes_the_rungs_front_first_so_its_fast_end_goes_on():
    """`promote: front` (the default) takes the top 1/eta of a rung in NSGA-II's order: where
    one cost band holds every net (digits on a fast CPU), `similar` promotes only the most
    accurate, and the fastest net of the rung's front never reaches full fidelity."""
    rung = [(0.9, 0.034), (0.85, 0.033), (0.8, 0.032), (0.3, 0.030), (0.5, 0.031), (0.2, 0.0335)]

    def promoted(promote: str) -> list[int]:
        cfg = HalvingSchedulerConfig(min_epochs=2, eta=3, warm_start=False, promote=promote)
        s = AsyncHalving(cfg, TWO, default_epochs=6)
        for i, (acc, ms) in enumerate(rung):
            s.observe(trial(i, [acc], latency=ms, epochs=2))
        out = []
        while (p := s.promotion()) is not None:
            out.append(p.trial_id)
            s.launched(
                SimpleNamespace(
                    id=100 + p.trial_id, info={"promoted_from": p.trial_id, "rung": 1}, fidelity={}
                )
            )
        return out

    assert HalvingSchedulerConfig().promote == "front"
    assert promoted("front") == [0, 3]  # the front's two ends (6 // 3 = 2 promotions)
    assert promoted("similar") == [0, 1]  # the two most accurate
    one = AsyncHalving(HalvingSchedulerConfig(min_epochs=2, eta=3), [("accuracy", "max")], 6)
    for i, (acc, _) in enumerate(rung):
        one.observe(trial(i, [acc], latency=1.0, epochs=2))
    assert one.promotion().trial_id == 0  # one objective: by accuracy, as ever


def test_halving_warm_start_promotes_to_the_extra_epochs_and_resumes():
    """A warm promotion trains only rung[k+1] - rung[k] epochs from the rung's weights; the
    stored trial (fidelity = the extra epochs, info = rung and total) counts in its rung, also
    for a scheduler rebuilt from the store."""
    cfg = HalvingSchedulerConfig(min_epochs=2, eta=3, warm_start=True)
    s = AsyncHalving(cfg, TWO, default_epochs=18)
    rung0 = [trial(i, [acc], latency=5.0, epochs=2) for i, acc in enumerate([0.5, 0.9, 0.7])]
    for t in rung0:
        s.observe(t)
    promo = s.promotion()
    assert promo is not None and (promo.trial_id, promo.rung) == (1, 1)
    assert promo.warm_start and promo.fidelity == Fidelity(epochs=4) and promo.epochs_total == 6
    warm = [
        trial(3 + j, [acc] * 4, latency=5.0, epochs=4, rung=1, promoted_from=src, epochs_total=6)
        for j, (src, acc) in enumerate([(1, 0.95), (2, 0.8), (0, 0.6)])
    ]
    resumed = AsyncHalving(cfg, TWO, default_epochs=18)
    for t in [*rung0, *warm]:  # as on resume: every stored trial, in trial order
        resumed.observe(t)
    assert resumed.promoted == {0, 1, 2}
    assert [t.id for t in resumed.results[0][1]] == [3, 4, 5]  # rung 1, not rung 0 (4 epochs)
    top = resumed.promotion()  # the best of rung 1 goes on from 6 to 18 epochs: 12 more
    assert top is not None and (top.trial_id, top.rung) == (3, 2)
    assert top.fidelity == Fidelity(epochs=12) and top.epochs_total == 18
    cold = AsyncHalving(HalvingSchedulerConfig(min_epochs=2, eta=3, warm_start=False), TWO, 18)
    for t in rung0:
        cold.observe(t)
    promo = cold.promotion()
    assert promo is not None and not promo.warm_start and promo.fidelity == Fidelity(epochs=6)


def test_a_warm_start_loads_the_same_arch_in_any_space(fast_config, tmp_path):
    """The parent's state dict is loaded as it is when the arch is the same and no morphism
    applies, also in a space without morphisms (chain)."""
    import random

    import torch

    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.space.capabilities import Morphable, supports

    evaluator = build_evaluator(
        fast_config("target=analytic", "objectives={accuracy: max, macs: min}")
    )
    space = evaluator.space
    assert not supports(space, Morphable)
    arch = space.sample(random.Random(0))
    parent = evaluator.build(arch, seed=1)
    path = tmp_path / "parent.pt"
    torch.save(parent.state_dict(), path)
    child = evaluator.build(arch, seed=2)
    evaluator._inherit(child, arch, {"arch": arch, "weights": path, "morphs": []})
    for k, v in parent.state_dict().items():
        assert torch.equal(v, child.state_dict()[k]), k
    others = (space.sample(random.Random(i)) for i in range(1, 100))
    other = next(a for a in others if space.arch_hash(a) != space.arch_hash(arch))
    with pytest.raises(ValueError, match="cannot carry weights across changes"):
        evaluator._inherit(child, arch, {"arch": other, "weights": path, "morphs": []})


def test_trial_key_includes_estimator_and_fidelity():
    a = trial_key("h", "train:abc", Fidelity(epochs=3))
    assert a != trial_key("h", "train:abc", Fidelity(epochs=27))
    assert a != trial_key("h", "train:xyz", Fidelity(epochs=3))
    assert a == trial_key("h", "train:abc", Fidelity(epochs=3))
    # a net that goes on from trained weights is another evaluation than one from scratch
    assert a != trial_key("h", "train:abc", Fidelity(epochs=3), start="parent-key")


def test_median_pruner_stops_trials_records_why_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = stop_rule_args(3, "median")
    r = run_cli("search", "--out", str(out), "--budget", "12", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    assert all(t["fidelity"] == {"epochs": 3} and t["stage"] == "search" for t in trials)
    stopped = [t for t in trials if t.get("prune_reason") == "pruner"]
    assert stopped, "the median rule stopped nothing"
    for t in stopped:
        assert t["status"] == "pruned" and 1 <= t["stopped_at_epoch"] < 3
        assert len(t["curve"]) == t["stopped_at_epoch"]
    done = [t for t in trials if t["status"] == "complete"]
    assert done and all(len(t["curve"]) == 3 for t in done)
    r = run_cli("search", "--out", str(out), "--budget", "14", "-q", *args)
    assert r.returncode == 0, r.stderr
    again = show_trials(out)
    assert len(again) == 14

    def kept(t):  # the front is re-timed at the end of every run: latency may change
        return {k: t.get(k) for k in ("id", "arch", "status", "curve", "stopped_at_epoch")}

    assert [kept(t) for t in again[:12]] == [kept(t) for t in trials]  # resumed, not redone


def test_halving_promotes_the_same_arch_to_more_epochs(tmp_path):
    out = tmp_path / "run"
    args = fast_args(
        "estimator.epochs=3",
        "scheduler=halving",
        "scheduler.min_epochs=1",
        "scheduler.warm_start=false",
        "strategy=random",
    )
    r = run_cli("search", "--out", str(out), "--budget", "8", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    promoted = [t for t in trials if t["info"].get("promoted_from") is not None]
    assert promoted
    for p in promoted:
        src = trials[p["info"]["promoted_from"]]
        # the same network, evaluated again: a 1-epoch result never answers a 3-epoch request
        assert src["arch"] == p["arch"] and src["fidelity"] == {"epochs": 1}
        assert p["fidelity"] == {"epochs": 3} and len(p["curve"]) == 3
        assert "inherit" not in p["info"]  # from scratch
    assert sum(t["fidelity"]["epochs"] for t in trials) < 3 * len(trials)
    assert len([t for t in trials if t["info"].get("promoted_from") is None]) == 8


def test_resumed_schedule_promotes_an_arch_exactly_as_one_uninterrupted_training(tmp_path):
    """`schedule: resume`: a rung pauses one training on the top rung's schedule and a
    promotion goes on from there (rates, momentum, data order), so a promoted arch ends
    exactly where one 4-epoch run of its root trial (same seed) ends -- curve and weights."""
    overrides = [*RESUMED_HALVING, "target=analytic"]
    out = tmp_path / "run"
    r = run_cli("search", "--out", str(out), "--budget", "6", "-q", *fast_args(*overrides))
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    roots = [t for t in trials if t["info"].get("promoted_from") is None]
    assert all(t["info"]["train"] == {"schedule_epochs": 4} for t in roots)
    promoted = [t for t in trials if t["info"].get("promoted_from") is not None]
    assert promoted
    # a paused run's state lies beside its weights until its promotion has gone on from it
    sources = {p["info"]["promoted_from"] for p in promoted}
    left = {f"trial_{t['id']}.resume.pt" for t in roots if t["id"] not in sources}
    assert left and {p.name for p in (out / "weights").glob("*.resume.pt")} == left
    for p in promoted[:2]:
        src = trials[p["info"]["promoted_from"]]
        assert p["info"]["train"] == {"schedule_epochs": 4, "start_epoch": 2}
        whole = same_as_one_run(out, p, src, overrides)
        strip = [{k: v for k, v in c.items() if k != "epoch"} for c in whole.curve]
        paused = [{k: v for k, v in c.items() if k != "epoch"} for c in src["curve"] + p["curve"]]
        assert paused == strip
    # a rung's key is not a short training's: the same arch at 2 epochs of its own is new
    cfg = HalvingSchedulerConfig(min_epochs=2, eta=2, warm_start=True, schedule="resume")
    assert AsyncHalving(cfg, TWO, 4).train(Fidelity(epochs=2)) == {"schedule_epochs": 4}
    assert AsyncHalving(cfg, TWO, 4).train(Fidelity(epochs=4)) is None
    with pytest.raises(ValueError, match="schedule: resume needs warm_start"):
        HalvingSchedulerConfig(schedule="resume", warm_start=False)


def test_halving_warm_start_trains_only_the_extra_epochs_and_resumes(tmp_path):
    """A warm promotion goes on from its rung's weights: its curve holds the extra epochs
    only and starts near the parent's accuracy; on resume no trial is promoted twice."""
    out = tmp_path / "run"
    args = fast_args(
        "estimator.epochs=4",
        "scheduler=halving",
        "scheduler.min_epochs=2",
        "scheduler.eta=2",
        "scheduler.warm_start=true",
        "strategy=random",
        "target=analytic",  # costs known exactly: the same promotions on every run
        "objectives={accuracy: max, macs: min}",
    )
    r = run_cli("search", "--out", str(out), "--budget", "8", "-q", *args)
    assert r.returncode == 0, r.stderr
    first = show_trials(out)
    r = run_cli("search", "--out", str(out), "--budget", "12", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    assert [t["curve"] for t in trials[: len(first)]] == [t["curve"] for t in first]  # resumed
    # the budget counts distinct networks; promotions of them come on top
    for run, budget in ((first, 8), (trials, 12)):
        new = [t for t in run if t["info"].get("promoted_from") is None]
        assert len(new) == budget and len({json.dumps(t["arch"]) for t in new}) == budget
    promoted = [t for t in trials if t["info"].get("promoted_from") is not None]
    assert promoted
    sources = [p["info"]["promoted_from"] for p in promoted]
    assert len(sources) == len(set(sources))  # none promoted twice, across the resumption
    for p in promoted:
        src = trials[p["info"]["promoted_from"]]
        assert src["arch"] == p["arch"] and src["fidelity"] == {"epochs": 2}
        assert p["info"]["inherit"] == {"trial": src["id"], "morphs": []}
        assert (p["info"]["rung"], p["info"]["epochs_total"]) == (1, 4)
        assert p["fidelity"] == {"epochs": 2} and len(p["curve"]) == 2  # the extra epochs only
        assert p["metrics"]["epochs"] == 2
        # it goes on from where its parent stood (the restart's high LR may cost a little at
        # first), well past where a net from scratch stands after one epoch
        first = p["curve"][0]["val_accuracy"]
        assert first >= src["metrics"]["accuracy"] - 0.2 and first > src["curve"][0]["val_accuracy"]
    trained = sum(len(t.get("curve", [])) for t in trials)
    assert trained == sum(t["fidelity"]["epochs"] for t in trials if t["status"] == "complete")


V1 = REPO / "tests" / "data" / "study_v1.db"
V1_ARGS = [
    "--seed",
    "0",
    "--set",
    "estimator.epochs=1",
    "--set",
    "target=analytic",
    "--set",
    "objectives={accuracy: max, macs: min}",
]


def test_a_study_from_the_previous_release_is_shown_and_resumed(tmp_path):
    """schema 1 (no fidelity, stage or key): `show` reads it as is, a search upgrades it and
    continues; a study from a newer hwnas is refused in one line that says what to do."""
    out = tmp_path / "old"
    out.mkdir()
    shutil.copy(V1, out / "study.db")
    before = show_trials(out)
    assert len(before) == 4 and all(t["status"] == "complete" for t in before)
    assert before[0]["fidelity"] == {} and before[0]["stage"] == "search"
    r = run_cli("search", "--out", str(out), "--budget", "6", "-q", *V1_ARGS)
    assert r.returncode == 0, r.stderr
    after = show_trials(out)
    assert len(after) == 6
    for old, new in zip(before, after, strict=False):
        assert (old["arch"], old["metrics"]) == (new["arch"], new["metrics"])
    assert all(t["fidelity"] == {"epochs": 1} for t in after)
    db = sqlite3.connect(out / "study.db")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    r = run_cli("search", "--out", str(out), "--budget", "7", "-q", *V1_ARGS)
    assert r.returncode == 2
    assert "newer hwnas (schema 99" in r.stderr and "upgrade hwnas" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_hyperband_deals_brackets_in_proportion_and_halves_within_each():
    """Bracket b starts its archs at rung b, in Hyperband's shares (9:5:3 for rungs 1, 3, 9
    and eta 3); a bracket's trials are ranked only among themselves; a scheduler rebuilt
    from the stored trials deals and promotes as the first did."""
    from hwnas.pruning.config import HyperbandSchedulerConfig
    from hwnas.pruning.halving import AsyncHyperband

    cfg = HyperbandSchedulerConfig(min_epochs=1, eta=3)
    s = AsyncHyperband(cfg, [("accuracy", "max")], default_epochs=9)
    assert s.rungs == [1, 3, 9] and s.shares == [9, 5, 3]
    stored, dealt = [], []
    for i in range(17):  # one round
        fid = s.fidelity(None)
        t = trial(i, [0.1 + 0.01 * i], latency=1.0, epochs=fid.epochs)
        s.launched(t)
        stored.append(t)
        dealt.append(fid.epochs)
    assert [dealt.count(e) for e in (1, 3, 9)] == [9, 5, 3]
    assert dealt[:4] == [1, 3, 1, 1]  # interleaved, not bracket after bracket
    assert s.fidelity(Fidelity(epochs=5)) == Fidelity(epochs=5)  # a strategy's own request
    for t in stored:
        s.observe(t)
    promo = s.promotion()
    # the most accurate of bracket 1 (at 3 epochs) goes to 9 before anything of rung 0
    best3 = max((t for t in stored if t.fidelity["epochs"] == 3), key=lambda t: t.id)
    assert promo is not None and (promo.trial_id, promo.rung) == (best3.id, 2)
    p = trial(17, [0.99], latency=1.0, epochs=9, rung=2, promoted_from=best3.id)
    s.launched(p)
    assert s.bracket_of[17] == 1  # a promotion stays in its source's bracket
    promo = s.promotion()  # then bracket 0's best third at 1 epoch, to 3
    best1 = [t for t in stored if t.fidelity["epochs"] == 1][-1]
    assert promo is not None and (promo.trial_id, promo.rung) == (best1.id, 1)
    s.observe(p)
    again = AsyncHyperband(cfg, [("accuracy", "max")], default_epochs=9)
    for t in [*stored, p]:
        again.observe(t)
    assert again.roots == s.roots and again.promoted == s.promoted
    assert again.fidelity(None) == s.fidelity(None)
    assert again.promotion() == s.promotion()
    with pytest.raises(ValueError, match="warm_start needs resource: epochs"):
        HyperbandSchedulerConfig(resource="data_fraction", warm_start=True)


def test_hyperband_over_the_share_of_the_data():
    from hwnas.pruning.config import HyperbandSchedulerConfig
    from hwnas.pruning.halving import AsyncHyperband

    cfg = HyperbandSchedulerConfig(resource="data_fraction", min_fraction=0.25, eta=2, brackets=2)
    s = AsyncHyperband(cfg, TWO, default_epochs=4)
    assert s.rungs == [0.25, 0.5, 1.0] and s.brackets == 2
    first = s.fidelity(None)
    assert first == Fidelity(data_fraction=0.25)
    s.observe(SimpleNamespace(**{**vars(trial(0, [0.5], 1.0)), "fidelity": {"epochs": 4}}))
    assert s.roots[1] == set()  # all of the data is the top rung: no bracket starts there
    assert s._rung_of({"epochs": 4}) == 2  # the estimator drops a share of 1.0


def test_bohb_deals_brackets_promotes_and_resumes(tmp_path):
    """`strategy: bo` with `scheduler: hyperband` (BOHB) on real training: new archs start at
    1 and at 3 epochs, the best of the 1-epoch bracket go on to 3, the model proposes after
    its samples, and a resumed search keeps every trial it had."""
    out = tmp_path / "run"
    args = fast_args(
        "estimator.epochs=3",
        "scheduler=hyperband",
        "scheduler.min_epochs=1",
        "strategy=bo",
        "strategy.init=3",
        "target=analytic",
        "objectives={accuracy: max, macs: min}",
    )
    r = run_cli("search", "--out", str(out), "--budget", "8", "-q", *args)
    assert r.returncode == 0, r.stderr
    first = show_trials(out)
    r = run_cli("search", "--out", str(out), "--budget", "10", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = show_trials(out)
    assert [(t["arch"], t["curve"]) for t in trials[: len(first)]] == [
        (t["arch"], t["curve"]) for t in first
    ]
    roots = [t for t in trials if t["info"].get("promoted_from") is None]
    assert len(roots) == 10
    starts = [t["fidelity"]["epochs"] for t in roots]
    assert starts.count(1) > starts.count(3) > 0  # Hyperband's shares: 3 to 2 per round
    promoted = [t for t in trials if t["info"].get("promoted_from") is not None]
    assert promoted
    for p in promoted:
        src = trials[p["info"]["promoted_from"]]
        assert src["fidelity"] == {"epochs": 1} and p["fidelity"] == {"epochs": 3}
        assert src["arch"] == p["arch"]
    assert any(t["info"].get("op", "").startswith("bo") for t in roots)
    # `show` tells each trial's budget and bracket: roots at 1 epoch are b0, at 3 epochs b1,
    # a promotion names its source and stays in the source's bracket
    shown = run_cli("show", str(out), "--all", env={"COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    rows = {
        int(line.split("│")[1]): line
        for line in shown.stdout.splitlines()
        if "│" in line and line.split("│")[1].strip().isdigit()
    }
    for t in trials:
        src = t["info"].get("promoted_from")
        cell = f"3 ep <-{src} b0" if src is not None else f"{t['fidelity']['epochs']} ep b"
        assert cell in rows[t["id"]], (cell, rows[t["id"]])
        if src is None:
            assert f"ep b{0 if t['fidelity']['epochs'] == 1 else 1}" in rows[t["id"]]


def test_percentile_keeps_only_the_top_share_of_peers_and_50_is_the_median():
    """`percentile: 25` stops a trial unless it is in the top quarter of its cheaper peers at
    that epoch; the default 50 is the median rule (a trial above the median goes on)."""
    peers = [[a, a] for a in (0.2, 0.4, 0.6, 0.8, 1.0)]  # epoch-1 accuracies, all cheaper

    def stops(percentile, acc):
        pruner = MedianPruner(MedianPrunerConfig(min_trials=5, percentile=percentile), TWO)
        for i, curve in enumerate(peers):
            pruner.observe(trial(i, curve, latency=1.0, epochs=2))
        rule = pruner.rule(Fidelity(epochs=2))
        rule.start({"latency_ms": 2.0})
        return rule.report(1, {"accuracy": acc})

    assert MedianPrunerConfig().percentile == 50
    assert stops(50, 0.59) and not stops(50, 0.61)  # median 0.6
    assert stops(25, 0.79) and not stops(25, 0.81)  # 75th percentile 0.8
    assert not stops(100, 0.21)  # keep everyone above the worst peer
    with pytest.raises(ValueError):
        MedianPrunerConfig(percentile=0)


def test_median_rule_counts_peers_stopped_earlier_so_it_does_not_halve_every_epoch():
    """Peers stopped at epoch 1 count at epoch 3 with their best accuracy: the median is of
    every peer, not of the survivors (whose median would stop half of the rest again)."""
    pruner = MedianPruner(MedianPrunerConfig(min_trials=3), TWO)
    for i in range(3):  # finished
        pruner.observe(trial(i, [0.5, 0.7, 0.9, 0.95], latency=1.0))
    for i in range(3, 7):  # stopped after one epoch
        pruner.observe(trial(i, [0.1], latency=1.0, status="pruned"))
    rule = pruner.rule(Fidelity(epochs=4))
    rule.start({"latency_ms": 1.0})
    assert not rule.report(1, {"accuracy": 0.3})  # median at epoch 1 of all 7: 0.1
    assert not rule.report(3, {"accuracy": 0.6})  # all 7 at epoch 3: 0.1 x4, 0.9 x3 -> 0.1
    survivors = MedianPruner(MedianPrunerConfig(min_trials=3), TWO)
    for i in range(3):
        survivors.observe(trial(i, [0.5, 0.7, 0.9, 0.95], latency=1.0))
    alone = survivors.rule(Fidelity(epochs=4))
    alone.start({"latency_ms": 1.0})
    assert alone.report(3, {"accuracy": 0.6})  # below the finished peers' 0.9: stopped


def test_similar_cost_promotions_in_arrays_are_the_pairwise_rule():
    """`promote: similar` decides a rung with one array operation per cost; who earns a
    promotion, and in which order, is the pairwise rule's (ties, missing costs included)."""
    import random

    def similar_cost(a, b, keys, band):  # the rule, one pair at a time
        for k in keys:
            x, y = a.get(k), b.get(k)
            if not isinstance(x, int | float) or not isinstance(y, int | float):
                return False
            lo, hi = sorted((abs(float(x)), abs(float(y))))
            if hi > lo * (1 + band) and hi - lo > 1e-12:
                return False
        return True

    def pairwise(done, keys, band, eta):
        out = []
        for t in sorted(done, key=lambda t: -t.metrics["accuracy"]):
            mates = [m for m in done if similar_cost(t.metrics, m.metrics, keys, band)]
            better = sum(m.metrics["accuracy"] > t.metrics["accuracy"] for m in mates)
            if better < len(mates) // eta:
                out.append(t)
        return out

    rng = random.Random(0)
    for eta in (2, 3, 4):
        cfg = HalvingSchedulerConfig(min_epochs=2, eta=eta, promote="similar", cost_band=0.5)
        s = AsyncHalving(cfg, TWO, default_epochs=6)
        for _ in range(100):
            done = [
                trial(i, [rng.choice([0.5, 0.6, 0.7])], latency=rng.choice([1.0, 1.4, 2.0, 3.5]))
                for i in range(rng.randint(1, 30))
            ]
            if rng.random() < 0.3:
                done[0].metrics["latency_ms"] = None  # a cost that was not measured
            want = [t.id for t in pairwise(done, s.cost_keys, s.band, eta)]
            assert [t.id for t in s._candidates(done)] == want


def test_a_completed_promotion_supersedes_its_source_on_the_front():
    """The same net at 1 and at 3 epochs: two latency readings differ a little, so both could
    stand on the front; the promotion answers for the net, the 1-epoch reading leaves it --
    until the promotion has completed."""
    from hwnas.experiment.store import Trial
    from hwnas.experiment.study import pareto_front

    def trial(i, acc, ms, status="complete", **info):
        metrics = {"accuracy": acc, "latency_ms": ms}
        return Trial(i, {"a": i}, f"h{i}", status, 0, metrics=metrics, info=info)

    low = trial(0, 0.21, 0.0298)
    other = trial(1, 0.90, 0.040)
    running = trial(2, 0.0, 0.0, status="running", promoted_from=0)
    assert sorted(t.id for t in pareto_front([low, other, running], TWO)) == [0, 1]
    done = trial(2, 0.63, 0.0304, promoted_from=0)
    assert sorted(t.id for t in pareto_front([low, other, done], TWO)) == [1, 2]
    broke = trial(2, 0.63, 0.0304, promoted_from=0)  # completed, but broke a bound after training
    broke.error = "accuracy >= 0.7 (was 0.63)"
    assert sorted(t.id for t in pareto_front([low, other, broke], TWO)) == [0, 1]


def test_an_arch_trained_longer_answers_a_shorter_rung():
    """BO + Hyperband dealt BO's proposal of a net already trained 3 epochs to a 1-epoch rung:
    a new trial, and a budget slot, for the lesser figure. The longer reading answers it."""
    from hwnas.core.fidelity import Fidelity
    from hwnas.experiment.experiment import _judged_longer
    from hwnas.experiment.store import Trial

    def trial(i, epochs, status="complete", **kw):
        return Trial(i, {}, "a" if i < 4 else "b", status, 0, fidelity={"epochs": epochs}, **kw)

    trials = [
        trial(0, 1),
        trial(1, 3),
        trial(2, 9, status="pruned"),
        trial(3, 9, info={"inherit": {"trial": 0, "morphs": []}}),  # warm: not a fresh figure
        trial(4, 1),
    ]
    a = [t for t in trials if t.arch_hash == "a"]  # one net's trials, as the loop keeps them
    b = [t for t in trials if t.arch_hash == "b"]
    assert _judged_longer(a, Fidelity(epochs=1)).id == 1  # the longest complete
    assert _judged_longer(a, Fidelity(epochs=3)).id == 1
    assert _judged_longer(a, Fidelity(epochs=4)) is None
    assert _judged_longer(b, Fidelity(epochs=3)) is None
    assert _judged_longer(a, Fidelity(epochs=1, data_fraction=0.5)).id == 1
    assert _judged_longer(a, Fidelity(epochs=1, resolution=16)) is None


def test_bohb_trains_each_net_once_before_promotions(tmp_path):
    out = tmp_path / "run"
    args = fast_args(
        "estimator.epochs=3",
        "strategy=bo",
        "strategy.init=3",
        "scheduler=hyperband",
        "objectives={accuracy: max, macs: min}",
    )
    assert run_cli("search", "--out", str(out), "--budget", "8", "-q", *args).returncode == 0
    trials = show_trials(out)
    fresh = [t for t in trials if t["info"].get("op") != "promote"]
    assert len(fresh) == 8 and len({json.dumps(t["arch"], sort_keys=True) for t in fresh}) == 8
