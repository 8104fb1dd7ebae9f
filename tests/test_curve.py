"""Learning-curve extrapolation: it predicts saturating curves' final value better than the
last observed one, and as a pruner it stops trials whose optimistic extrapolation stays below
their peers' best, never before its minimum epochs or without peers; from the command line it
prunes real training and the study resumes."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

from conftest import run_cli, stop_rule_args

from hwnas.core.fidelity import Fidelity
from hwnas.experiment.config import load_config
from hwnas.pruning.config import CurvePrunerConfig
from hwnas.pruning.curve import CurvePruner, extrapolate

TWO = [("accuracy", "max"), ("latency_ms", "min")]


def _curve(top: float, rate: float, epochs: int, noise: float, rng: random.Random) -> list[float]:
    return [top - (top - 0.1) * math.exp(-rate * t) + rng.gauss(0, noise) for t in range(epochs)]


def test_extrapolation_beats_the_last_observed_value():
    rng = random.Random(0)
    err_curve, err_last = [], []
    for _ in range(30):
        c = _curve(rng.uniform(0.6, 0.95), rng.uniform(0.15, 0.5), 16, 0.005, rng)
        e = extrapolate(c[:5], 16)
        assert 0.0 <= e.mean <= 1.0 and e.sd >= 0.0 and e.families
        err_curve.append(abs(e.mean - c[-1]))
        err_last.append(abs(c[4] - c[-1]))
    assert sum(err_curve) < 0.5 * sum(err_last)
    assert extrapolate([0.5, 0.6], 16).mean == 0.6  # too few points: the last value stands


def trial(i, acc_curve, latency):
    return SimpleNamespace(
        id=i,
        status="complete",
        curve=[{"epoch": e + 1, "val_accuracy": a} for e, a in enumerate(acc_curve)],
        metrics={"accuracy": acc_curve[-1], "latency_ms": latency},
        fidelity={"epochs": len(acc_curve)},
    )


def test_curve_rule_stops_only_trials_predicted_dominated():
    rng = random.Random(1)
    pruner = CurvePruner(CurvePrunerConfig(min_trials=3), TWO)
    for i in range(3):
        pruner.observe(trial(i, _curve(0.9, 0.3, 12, 0.002, rng), latency=10.0))
    for i in range(3, 6):  # fast nets reach less
        pruner.observe(trial(i, _curve(0.6, 0.3, 12, 0.002, rng), latency=1.0))
    poor = _curve(0.62, 0.3, 12, 0.0, rng)
    slow = pruner.rule(Fidelity(epochs=12))
    slow.start({"latency_ms": 10.0})
    stops = [slow.report(e + 1, {"accuracy": a}) for e, a in enumerate(poor[:6])]
    assert stops[:2] == [False, False]  # never before min_epochs (3)
    assert any(stops)  # below what its slow peers reached
    fast = pruner.rule(Fidelity(epochs=12))
    fast.start({"latency_ms": 1.0})  # against fast peers the same curve is fine
    assert not any(fast.report(e + 1, {"accuracy": a}) for e, a in enumerate(poor[:11]))
    alone = pruner.rule(Fidelity(epochs=6))  # no peers at this fidelity
    alone.start({"latency_ms": 10.0})
    assert not any(alone.report(e + 1, {"accuracy": 0.1}) for e in range(5))
    # a slower net that cannot beat the cheaper, accurate ones is dominated: stopped; the old
    # cost band (`peers: similar`) found no peer within 1.5x of 20 ms and let it run
    banded = CurvePruner(CurvePrunerConfig(min_trials=3, peers="similar"), TWO)
    banded.peers = {k: list(v) for k, v in pruner.peers.items()}  # the same finished trials
    for p, stopped in ((pruner, True), (banded, False)):
        rule = p.rule(Fidelity(epochs=12))
        rule.start({"latency_ms": 20.0})
        assert any(rule.report(e + 1, {"accuracy": a}) for e, a in enumerate(poor[:6])) is stopped


def test_curve_pruner_is_a_config_choice_and_guards_the_front():
    assert load_config(None, ["pruner=curve"]).pruner.name == "curve"
    r = run_cli(
        "search",
        "--out",
        "/tmp/never",
        "-q",
        "--set",
        "pruner=curve",
        "--set",
        "objectives={accuracy: max, train_seconds: min}",
    )
    assert r.returncode == 2 and "could cut the front" in r.stderr


def test_curve_pruner_stops_real_training_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = stop_rule_args(6, "curve")  # 2 of 14 stop here
    r = run_cli("search", "--out", str(out), "--budget", "14", "-q", *args)
    assert r.returncode == 0, r.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    stopped = [t for t in trials if t.get("prune_reason") == "pruner"]
    assert stopped, "the curve rule stopped nothing"
    for t in stopped:
        assert t["status"] == "pruned" and 3 <= t["stopped_at_epoch"] < 6
    r = run_cli("search", "--out", str(out), "--budget", "15", "-q", *args)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(run_cli("show", str(out), "--json").stdout)) == 15
