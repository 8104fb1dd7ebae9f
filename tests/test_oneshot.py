"""One-shot and differentiable search (strategy: fbnet): per-choice costs add up to the
arch's, theta moves with the resource loss, targets are met, the supernet resumes exactly and
is reused by another study, and the derived nets are ordinary trials of stage ``derived``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import SHARED, run_cli

from hwnas.core.errors import UserError
from hwnas.data import load_dataset
from hwnas.estimate.base import Task
from hwnas.experiment.config import load_config
from hwnas.hardware.analytic import count_macs
from hwnas.oneshot.config import SupernetConfig
from hwnas.oneshot.costs import NO_COST, ChoiceCosts, choice_costs
from hwnas.oneshot.derive import derive, fix_up, most_likely
from hwnas.oneshot.graphs import GraphedSteps
from hwnas.oneshot.kit import SupernetKit
from hwnas.oneshot.losses import Setting, beta_decay_term, settings_of, total_loss
from hwnas.oneshot.search import SupernetSearch
from hwnas.space import make_space
from hwnas.strategy.config import FbnetStrategyConfig

SPACE = [
    "space=fbnet",
    "space.width_multiplier=0.25",
    "space.head_channels=32",
    "space.stem_stride=1",
]
TINY = [
    *SPACE,
    "strategy=fbnet",
    "strategy.cost_metric=macs",
    "supernet.epochs=2",
    "supernet.search_epochs=2",
    "supernet.theta_lr=0.2",
    "supernet.mixture=hard",  # a single path per step: the CLI tests stay quick
    "estimator.epochs=1",
    "target=analytic",
    "objectives={accuracy: max, macs: min}",
]


def _args(*extra: str) -> list[str]:
    out: list[str] = []
    for item in [*TINY, *extra]:
        out += ["--set", item]
    return out


def _kit(
    tmp_path: Path, space: list[str] = SPACE, *, device: str = "cpu", **supernet
) -> SupernetKit:
    cfg = load_config(None, space)
    data = load_dataset(cfg.data, 0)
    return SupernetKit(
        task=Task(data, device, 64, False, True),
        space=make_space(cfg.space),
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        cfg=SupernetConfig(**supernet),
        directory=tmp_path / "supernet",
        seed=0,
    )


def test_choice_costs_add_up_to_the_nets_macs_and_params(tmp_path):
    kit = _kit(tmp_path)
    space = kit.space
    for metric in ("macs", "params"):
        costs = choice_costs(space, metric, kit.input_shape, kit.num_classes)
        for picks in ([0] * 22, [8] * 22, [i % 9 for i in range(22)]):
            net = space.build(space.from_choices(picks), kit.input_shape, kit.num_classes)
            real = (
                count_macs(net, kit.input_shape)
                if metric == "macs"
                else sum(p.numel() for p in net.parameters())
            )
            assert costs.of(picks) == pytest.approx(real)
        assert costs.cheapest() < costs.uniform() < costs.dearest()
    with pytest.raises(UserError, match="not additive"):
        choice_costs(space, "peak_memory_bytes", kit.input_shape, kit.num_classes)


def test_a_device_model_prices_each_choice_and_the_costs_add_up_to_its_latency(tmp_path):
    """A datasheet model as fbnet's latency source: its roofline is a sum over layers, so the
    per-choice costs (per-inference overhead once) add up to its latency of the whole net."""
    from hwnas.hardware.config import DeviceTarget
    from hwnas.hardware.device import DeviceCostModel, estimate

    kit = _kit(tmp_path)
    space, device = kit.space, DeviceTarget(spec="cortex-m7")
    model = DeviceCostModel(device)
    for metric in ("latency_ms", "energy_mj"):
        costs = choice_costs(
            space, f"{metric}@mcu", kit.input_shape, kit.num_classes, device=device
        )
        for picks in (
            [0] * 22,
            [8] * 22,
            [i % 9 for i in range(22)],
            [(3 * i) % 9 for i in range(22)],
        ):
            net = space.build(space.from_choices(picks), kit.input_shape, kit.num_classes)
            real = estimate(net, kit.input_shape, model.spec, model.precision).metrics()[metric]
            assert costs.of(picks) == pytest.approx(real, rel=1e-9)
        assert costs.cheapest() < costs.uniform() < costs.dearest()
    with pytest.raises(UserError, match="energy_mj needs a device model"):
        choice_costs(space, "energy_mj", kit.input_shape, kit.num_classes)


def test_fbnet_learns_against_a_device_model_s_latency(tmp_path):
    """`costs: [{name: device, label: mcu}]` and `cost_metric: latency_ms@mcu`: theta weighs
    the datasheet's latency (no runtime to time blocks on was the answer); a large alpha
    derives a net the model puts faster, and each derived net's latency is the predicted."""
    out = tmp_path / "mcu"
    res = run_cli(
        "search",
        "--out",
        str(out),
        "-q",
        *_args(
            "strategy.cost_metric=latency_ms@mcu",
            "strategy.alphas=[0, 5]",
            "costs=[{name: device, spec: cortex-m7, label: mcu}]",
            "objectives={accuracy: max, latency_ms@mcu: min}",
            "budget.trials=2",
        ),
    )
    assert res.returncode == 0, res.stderr
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    by_alpha = {t["info"]["alpha"]: t for t in trials}
    assert set(by_alpha) == {0.0, 5.0}
    for t in trials:
        assert t["info"]["cost_metric"] == "latency_ms@mcu"
        assert t["info"]["predicted_cost"] == pytest.approx(t["metrics"]["latency_ms@mcu"])
    assert by_alpha[5.0]["metrics"]["latency_ms@mcu"] < by_alpha[0.0]["metrics"]["latency_ms@mcu"]


def test_losses_and_settings():
    ce, cost = torch.tensor(1.0), torch.tensor(4.0)
    assert float(total_loss(ce, cost, Setting("additive", 0.5), 2.0, 1.0)) == pytest.approx(2.0)
    mult = total_loss(ce, cost, Setting("multiplicative", 0.2, 0.6), 2.0, 1.0)
    assert float(mult) == pytest.approx(0.2 * math.log(5.0) ** 0.6)
    target = total_loss(ce, cost, Setting("target", 1.0, target=2.0), 2.0, 1.0)
    assert float(target) == pytest.approx(2.0)
    cfg = FbnetStrategyConfig(alphas=[0, 1])
    assert [s.alpha for s in settings_of(cfg, None)] == [0, 1]
    # a `<=` constraint's bound is the default target, kept as a bound (derived at or below)
    assert settings_of(FbnetStrategyConfig(), 3.0) == [Setting("target", 1.0, 0.6, 3.0, True)]
    assert settings_of(FbnetStrategyConfig(cost_target=3.0), 9.0)[0].bound is False
    assert settings_of(FbnetStrategyConfig(loss="multiplicative"), 3.0)[0].loss == "multiplicative"
    assert settings_of(FbnetStrategyConfig(alpha=0.3), 3.0) == [Setting("additive", 0.3)]
    betas = settings_of(FbnetStrategyConfig(loss="multiplicative", betas=[0.3, 0.9]), None)
    assert [(s.loss, s.beta) for s in betas] == [("multiplicative", 0.3), ("multiplicative", 0.9)]
    with pytest.raises(ValueError, match="not two"):
        FbnetStrategyConfig(alphas=[1.0], cost_targets=[2.0])
    # a key the chosen form would ignore is refused when a search starts, not dropped; the
    # section itself stays valid, so a study an older version made with one still opens
    for bad, why in [
        ({"alpha": 0.3, "alphas": [0.1]}, "not both"),
        ({"betas": [0.3, 0.6]}, "betas sweep loss: multiplicative"),
        ({"loss": "multiplicative", "cost_target": 0.05}, "its own penalty"),
        ({"cost_targets": [0.05], "cost_target": 0.06}, "cost_target or a sweep"),
        ({"loss": "multiplicative", "alphas": [0.1, 1]}, "sweeps betas"),
    ]:
        with pytest.raises(ValueError, match=why):
            settings_of(FbnetStrategyConfig(**bad), None)


def test_derive_and_fix_up_reach_a_target():
    costs = ChoiceCosts("macs", 10.0, [[1.0, 5.0, 0.0]] * 6)
    probs = [[0.2, 0.7, 0.1]] * 6
    assert most_likely(probs, 3)[0] == [1] * 6
    assert len({tuple(p) for p in most_likely(probs, 3)}) == 3
    assert costs.of([1] * 6) == 40.0
    picks, moves = fix_up([1] * 6, probs, costs, 20.0, 0.1)
    assert abs(costs.of(picks) / 20.0 - 1) <= 0.1 and moves > 0
    (only,) = derive(probs, costs, 1, 20.0, 0.1)
    assert only[1]["fixed_up"]["cost_before"] == 40.0
    assert abs(only[1]["predicted_cost"] / 20.0 - 1) <= 0.1
    far, _ = fix_up([1] * 6, probs, costs, 1.0, 0.1)  # below the cheapest net: as near as it goes
    assert costs.of(far) == costs.cheapest()


def test_a_derived_net_is_fixed_up_against_its_measurement():
    """A table that reads cheap picks 30-50 % slow: the net it fixes up for a target measures
    far under it; measured and asked again, it lands within tolerance."""
    costs = ChoiceCosts("latency_ms", 0.5, [[1.0, 5.0, 0.2]] * 8)
    probs = [[0.2, 0.7, 0.1]] * 8

    def measure(picks):  # the truth: cheap picks cost less than the table says
        return 0.5 + sum({0: 0.7, 1: 4.5, 2: 0.1}[i] for i in picks)

    target = 8.0
    (trusted,) = derive(probs, costs, 1, target, 0.05)
    assert abs(measure(trusted[0]) / target - 1) > 0.05  # the table alone misses
    (checked,) = derive(probs, costs, 1, target, 0.05, measure, readings=3)
    picks, info = checked
    assert abs(measure(picks) / target - 1) <= 0.05
    readings = info["fixed_up"]["measured"]
    assert len(readings) >= 2 and readings[0] == measure(trusted[0])
    assert readings[-1] == measure(picks)

    # a constraint's bound as the target (target = bound x (1 - tol)): a reading above the
    # target is not accepted, though within tol of it (the trial's own reading, noisier,
    # pruned such a net at 0.99 x the bound)
    def slow(picks):  # the table reads every net 4 % fast
        return 1.04 * costs.of(picks)

    (loose,) = derive(probs, costs, 1, 12.0, 0.05, slow, readings=3)
    assert 12.0 < slow(loose[0]) <= 12.6
    (tight,) = derive(probs, costs, 1, 12.0, 0.05, slow, readings=3, bound=True)
    assert 12.0 * 0.9 <= slow(tight[0]) <= 12.0 and len(tight[1]["fixed_up"]["measured"]) == 2
    # nothing to measure it with (a cost no source gives): the table is trusted
    (plain,) = derive(probs, costs, 1, target, 0.05, lambda p: None, readings=3)
    assert plain[0] == trusted[0] and "measured" not in plain[1]["fixed_up"]

    # readings taken under load (2x the table's, as an H100 box's CPU gave right after the
    # supernet trained) are not acted on: the table's net is kept, and said to be
    def loaded(picks):
        return 2.0 * costs.of(picks)

    (kept,) = derive(probs, costs, 1, target, 0.05, loaded, readings=3)
    assert kept[0] == trusted[0] and kept[1]["fixed_up"]["disturbed"] is True
    assert kept[1]["fixed_up"]["measured"] == [2.0 * costs.of(trusted[0])] * 2
    # one burst passes: read again, the refit goes on from the quiet reading
    burst = iter([True])

    def once(picks):
        return (3.0 if next(burst, False) else 1.0) * measure(picks)

    # (the re-reading counts: one reading more gives the refit the three it had)
    (went_on,) = derive(probs, costs, 1, target, 0.05, once, readings=4)
    assert went_on[0] == checked[0] and "disturbed" not in went_on[1]["fixed_up"]
    first = measure(trusted[0])
    assert went_on[1]["fixed_up"]["measured"][:2] == [3.0 * first, first]
    assert len(went_on[1]["fixed_up"]["measured"]) <= 4
    (single,) = derive(probs, costs, 1, target, 0.05, loaded, readings=1)  # the last reading
    assert single[0] == trusted[0] and single[1]["fixed_up"]["disturbed"] is True
    # where the table itself errs that much, a higher strategy.load_factor lets the readings
    # act: 2x the table is then its error, and the refit follows it
    (acted,) = derive(probs, costs, 1, target, 0.05, loaded, readings=3, load_factor=2.5)
    assert "disturbed" not in acted[1]["fixed_up"] and acted[0] != trusted[0]
    assert abs(loaded(acted[0]) / target - 1) < abs(loaded(trusted[0]) / target - 1)


def test_a_derived_net_is_read_only_by_the_sources_that_give_its_cost(monkeypatch):
    """fbnet's fix-up asks for one metric: only the sources that may give it are read (one
    reading on a remote board, not one per source); a metric none gives reads them all."""
    from conftest import FAST

    from hwnas.experiment.config import load_config
    from hwnas.experiment.evaluate import Source, build_evaluator

    cfg = load_config(
        None,
        [
            *FAST,
            "target=analytic",
            "costs=[{name: cpu-ort, label: ort, runs: 20, blocks: 4, warmup: 3}]",
            "objectives={accuracy: max, latency_ms@ort: min}",
        ],
    )
    evaluator = build_evaluator(cfg)
    read: list[str | None] = []
    costs = Source.costs
    monkeypatch.setattr(
        Source, "costs", lambda self, cand: read.append(self.label) or costs(self, cand)
    )
    arch = evaluator.space.sample(__import__("random").Random(0))
    assert "latency_ms@ort" in evaluator.measure(arch, 0, only="latency_ms@ort")
    assert read == ["ort"]
    read.clear()
    assert "macs" in evaluator.measure(arch, 0, only="macs") and read == [None]
    read.clear()
    evaluator.measure(arch, 0, only="latency_ms@board")
    assert read == [None, "ort"]
    evaluator.close()


def test_a_lut_target_s_figure_is_not_measured_against_itself(tmp_path):
    """With `target: lut` the study's latency is the table's prediction: the measured fix-up
    would read the table again and call it measured (a walkthrough's board net read +15 %
    over what its `info.fixed_up.measured` said). Such a metric has no measurer; a runtime's
    (cpu-ort) or a labelled table beside it keeps its own."""
    from conftest import FAST

    from hwnas.experiment.evaluate import build_evaluator
    from hwnas.experiment.experiment import Experiment
    from hwnas.oneshot.strategy import OneShotSearch

    lut = "{name: lut, runs: 20, blocks: 4, warmup: 3}"
    for sets, tabled in (
        ([f"target={lut}"], {"latency_ms"}),
        (["target=cpu-ort"], set()),
        (["target=cpu-ort", f"costs=[{lut[:-1]}, label: t}}]"], {"latency_ms@t"}),
    ):
        cfg = load_config(None, [*FAST, "strategy=fbnet", *sets])
        evaluator = build_evaluator(cfg)
        kit = Experiment(cfg, tmp_path / "x")._supernet_kit(evaluator)
        assert kit.tabled == tabled, sets
        for metric in ("latency_ms", "latency_ms@t"):
            costs = ChoiceCosts(metric, 0.1, [[1.0, 2.0]])
            measurer = OneShotSearch._measurer(kit, costs)
            assert (measurer is None) == (metric in tabled), (sets, metric)
        evaluator.close()


@pytest.mark.parametrize("warm_epochs, rate", [(0, 0.04), (1, 0.008)])
def test_w_trains_at_full_rate_without_a_warm_up(tmp_path, monkeypatch, warm_epochs, rate):
    """GDAS and DARTS train w from scratch during the search: at a fifth of w_lr (the gentle
    rate that fine-tunes a warmed-up supernet) GDAS's CE stayed near chance on CIFAR-10."""
    kit = _kit(tmp_path, epochs=warm_epochs, search_epochs=1, w_lr=0.04, mixture="hard")
    costs = choice_costs(kit.space, "macs", kit.input_shape, kit.num_classes)
    trainer = SupernetSearch(kit, costs)
    trainer.warm_up()
    rates: list[float] = []
    make = trainer._w_optimiser
    monkeypatch.setattr(trainer, "_w_optimiser", lambda lr: rates.append(lr) or make(lr))
    trainer.search(0, Setting("additive", 0.0))
    assert rates == [pytest.approx(rate)]


def _interrupt_after_first_epoch(label, epoch, epochs):
    """A progress report that stops the run as an interruption would, after epoch 1."""
    if epoch == 1:
        raise KeyboardInterrupt


def test_theta_moves_with_the_resource_loss_and_resumes_exactly(tmp_path):
    kit = _kit(tmp_path, epochs=1, search_epochs=2, alternate=False, theta_lr=0.2)
    costs = choice_costs(kit.space, "macs", kit.input_shape, kit.num_classes)
    trainer = SupernetSearch(kit, costs)
    trainer.warm_up()
    free = trainer.search(0, Setting("additive", 0.0))
    cheap = trainer.search(1, Setting("additive", 5.0))
    e_free, e_cheap = free.history[-1]["expected_cost"], cheap.history[-1]["expected_cost"]
    assert e_cheap < 0.9 * e_free  # the resource loss pulls theta to cheap picks
    for row in cheap.probs:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)

    # an interruption after the first epoch: the same call goes on to the same theta
    again = SupernetSearch(
        _kit(tmp_path / "b", epochs=1, search_epochs=2, alternate=False, theta_lr=0.2), costs
    )
    again.warm_up()

    with pytest.raises(KeyboardInterrupt):
        again.search(1, Setting("additive", 5.0), report=_interrupt_after_first_epoch)
    resumed = again.search(1, Setting("additive", 5.0))
    flat = lambda probs: [p for row in probs for p in row]  # noqa: E731
    assert flat(resumed.probs) == pytest.approx(flat(cheap.probs), abs=1e-6)
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_the_warm_up_cost_adds_up_over_an_interruption(tmp_path):
    """The warm-up's wall time survives an interruption; a checkpoint from before times were
    kept counts its epochs as untimed; none is claimed without a warm-up or for weights
    another study trained."""
    make = lambda **kw: _kit(tmp_path, search_epochs=1, mixture="hard", **kw)  # noqa: E731
    kit = make(epochs=2)
    costs = choice_costs(kit.space, "macs", kit.input_shape, kit.num_classes)
    first = SupernetSearch(kit, costs)
    with pytest.raises(KeyboardInterrupt):
        first.warm_up(report=_interrupt_after_first_epoch)
    one = first.warmup_cost()
    assert one["epochs_timed"] == 1 and one["seconds"] > 0
    again = SupernetSearch(make(epochs=2), costs)
    again.warm_up()
    both = again.warmup_cost()
    assert both["epochs"] == 2 and both["epochs_timed"] == 2 and both["seconds"] > one["seconds"]
    # an older checkpoint (no times) stopped after epoch 1: only the epoch run now is timed
    path = kit.directory / "warmup.pt"
    state = torch.load(path, map_location="cpu")
    state.update(epoch=1, seconds=None, timed=None)
    torch.save({k: v for k, v in state.items() if v is not None}, path)
    late = SupernetSearch(make(epochs=2), costs)
    late.warm_up()
    assert late.warmup_cost()["epochs_timed"] == 1
    assert SupernetSearch(make(weights=str(path)), costs).warmup_cost() == {"reused": str(path)}
    assert SupernetSearch(make(epochs=0), costs).warmup_cost()["epochs"] == 0


def test_a_warm_up_resumes_only_on_its_own_schedule_and_skips_dead_paths(tmp_path):
    """A checkpoint's cosine was planned over its epochs: resumed with others, the learning
    rate leapt from near 0 back up (refused now); and the single paths a warm-up trains are
    never cells whose `none` edges cut them off (2 % of uniform draws, trained for nothing)."""
    make = lambda **kw: _kit(tmp_path, search_epochs=1, mixture="hard", **kw)  # noqa: E731
    kit = make(epochs=2)
    costs = choice_costs(kit.space, "macs", kit.input_shape, kit.num_classes)
    with pytest.raises(KeyboardInterrupt):
        SupernetSearch(kit, costs).warm_up(report=_interrupt_after_first_epoch)
    with pytest.raises(ValueError, match=r"planned for \d+ warm-up steps .* this run for \d+"):
        SupernetSearch(make(epochs=3), costs).warm_up()
    SupernetSearch(make(epochs=2), costs).warm_up()  # its own schedule: goes on

    cell = _kit(tmp_path / "cell", ["space=cell"], mixture="hard")
    none = ChoiceCosts(NO_COST, 0.0, [[0.0] * len(c) for c in cell.space.choices()])
    trainer = SupernetSearch(cell, none)
    uniform = [torch.zeros(len(c)) for c in cell.space.choices()]
    torch.manual_seed(0)
    drawn = [[i for i, _ in trainer._live_route(uniform, 1.0)] for _ in range(600)]
    assert not any(cell.space.degenerate(cell.space.from_choices(p)) for p in drawn)
    plain = [[i for i, _ in trainer._route(uniform, 1.0)] for _ in range(600)]
    assert any(cell.space.degenerate(cell.space.from_choices(p)) for p in plain)  # they occur


def test_a_search_without_warm_up_resumes(tmp_path):
    """GDAS/DARTS (``supernet.epochs: 0``) save only the initial weights before the search;
    a resumed study read that file as a full warm-up checkpoint and stopped on a KeyError."""
    make = lambda: _kit(tmp_path, epochs=0, search_epochs=2, mixture="hard")  # noqa: E731
    costs = choice_costs(make().space, "macs", make().input_shape, make().num_classes)
    first = SupernetSearch(make(), costs)
    first.warm_up()

    with pytest.raises(KeyboardInterrupt):
        first.search(0, Setting("additive", 0.0), report=_interrupt_after_first_epoch)
    again = SupernetSearch(make(), costs)
    again.warm_up()  # the same initial weights, from the file
    for k, v in first.warm.items():
        assert torch.equal(v, again.warm[k]), k
    resumed = again.search(0, Setting("additive", 0.0))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    # each epoch's wall time survives the resumption: what the search cost over both calls
    assert all(h["seconds"] > 0 for h in resumed.history)


def test_a_large_alpha_derives_fewer_macs_and_the_study_keeps_theta(tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "search", "--out", str(out), "--quiet", *_args("strategy.alphas=[0, 5]", "budget.trials=4")
    )
    assert r.returncode == 0, r.stderr[-2000:]
    shown = json.loads(run_cli("show", str(out), "--json").stdout)
    derived = [t for t in shown if t["stage"] == "derived"]
    assert len(derived) == 2 and all(t["info"]["op"] == "derive" for t in derived)
    by_alpha = {t["info"]["alpha"]: t for t in derived}
    assert by_alpha[5]["metrics"]["macs"] < by_alpha[0]["metrics"]["macs"]
    for t in derived:  # the table predicts the measured MACs of the derived net exactly
        assert t["info"]["predicted_cost"] == pytest.approx(t["metrics"]["macs"])
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        oneshot = study.store.get_meta_json("oneshot")
    finally:
        study.close()
    assert [s["label"] for s in oneshot["settings"]] == ["alpha=0", "alpha=5"]
    hist = oneshot["settings"][1]["history"]
    assert len(hist) == 2 and len(hist[0]["probs"]) == 22
    assert hist[-1]["expected_cost"] < oneshot["settings"][0]["history"][-1]["expected_cost"]
    # what theta's epochs cost, in the summary and in `hwnas show`
    spent = sum(h["seconds"] for st in oneshot["settings"] for h in st["history"])
    study = Study(out, readonly=True)
    try:
        summary = study.summary()["supernet_search"]
    finally:
        study.close()
    warm = torch.load(out / "supernet" / "warmup.pt", map_location="cpu")["seconds"]
    whole = summary.pop("oneshot_seconds")
    assert summary == {
        "settings": 2, "epochs": 4, "epochs_timed": 4, "seconds": pytest.approx(spent, abs=0.1),
        "warmup_epochs": 2, "warmup_epochs_timed": 2, "warmup_seconds": pytest.approx(warm, abs=0.1),
    }  # fmt: skip
    assert spent > 0 and warm > 0 and whole >= spent + warm - 0.2  # the phase holds them both
    shown = run_cli("show", str(out)).stdout
    assert "supernet search: 2 warm-up epochs, " in shown
    assert "; 4 theta epochs over 2 setting(s)" in shown
    # a phase of seconds in seconds (it read "0.0 min"), a longer one in minutes
    said = f"{whole:.0f} s" if whole < 60 else f"{whole / 60:.1f} min"
    assert f"; {said} in all before the derived nets" in shown, shown
    assert "0.0 min" not in shown, shown
    # each derived net says what it was derived for, and its blocks keep their brackets
    # (Rich read `16[skip]` as markup: three nets showed the same widths alone)
    flat = " ".join(shown.replace("│", " ").split())
    for t in derived:
        head = f"alpha {t['info']['alpha']:g} on macs: fbnet 16["
        assert head + t["describe"].split("16[", 1)[1].split("]")[0] + "]" in flat, shown

    # the same command again: nothing retrained, nothing proposed twice
    stamp = (out / "supernet" / "warmup.pt").stat().st_mtime_ns
    r = run_cli(
        "search", "--out", str(out), "--quiet", *_args("strategy.alphas=[0, 5]", "budget.trials=4")
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "supernet" / "warmup.pt").stat().st_mtime_ns == stamp
    assert len(json.loads(run_cli("show", str(out), "--json").stdout)) == 2

    # another study reuses the trained supernet for a target: theta alone is trained
    other = tmp_path / "target"
    r = run_cli(
        "search",
        "--out",
        str(other),
        "--quiet",
        *_args(
            f"supernet.weights={out / 'supernet' / 'warmup.pt'}",
            "strategy.cost_target=60000",
            "budget.trials=2",
        ),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (other / "supernet" / "warmup.pt").exists()
    (t,) = json.loads(run_cli("show", str(other), "--json").stdout)
    assert abs(t["metrics"]["macs"] / 60000 - 1) <= 0.1
    # hwnas.log says what the fix-up did, so a miss is read without opening the study
    fix = t["info"].get("fixed_up", {})
    n = fix.get("changes", 0)
    said = (
        f"fbnet: target=60000 net 0: macs {t['metrics']['macs']:.4g} by the table "
        f"({fix.get('cost_before', t['metrics']['macs']):.4g} before "
        f"{n} fix-up change{'' if n == 1 else 's'}), measured none"
    )
    assert said in (other / "hwnas.log").read_text(), said
    # a `<=` constraint's bound as the target: the derived net is fixed up to at most the
    # bound (it once came out 2 % over, inside the tolerance, and the constraint pruned it)
    for bound in (60000, 61000):
        capped = tmp_path / f"capped{bound}"
        r = run_cli(
            "search", "--out", str(capped), "--quiet",
            *_args(
                f"supernet.weights={out / 'supernet' / 'warmup.pt'}",
                f"constraints=['macs <= {bound}']", "budget.trials=1",
            ),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        (t,) = json.loads(run_cli("show", str(capped), "--json").stdout)
        assert t["status"] == "complete" and t["info"]["cost_bound"] is True
        assert 0.9 * bound <= t["metrics"]["macs"] <= bound, t["metrics"]["macs"]
    # a target outside the space's range is said at the start, before theta trains (it
    # once came after the whole one-shot phase), and once
    r = run_cli(
        "search", "--out", str(tmp_path / "far"), "--budget", "1",
        *_args(f"supernet.weights={out / 'supernet' / 'warmup.pt'}", "strategy.cost_target=10"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    said = "warning: cost target 10 is below the cheapest net of the space (macs "
    assert r.stderr.count(said) == 1 and r.stderr.index(said) < r.stderr.index("theta target=10")
    # and the net derived for it, missing it, is said on the console too (only hwnas.log
    # had it), once
    miss = re.findall(r"warning: fbnet: target=10 net 0: macs (\S+) \(by the table\) misses "
                      r"its target 10 by \+\d+% \(tolerance 5%\); the net is kept", r.stderr)  # fmt: skip
    assert len(miss) == 1 and float(miss[0]) > 10, r.stderr
    study = Study(other, readonly=True)
    try:  # the reused warm-up was paid for by the first study: none of it counts here
        assert study.supernet_time()["warmup_reused"] == str(out / "supernet" / "warmup.pt")  # type: ignore[index]
    finally:
        study.close()


def test_one_line_errors(tmp_path):
    study = tmp_path / "old"  # a study's folder, and a search setting's checkpoint in it
    (study / "supernet").mkdir(parents=True)
    torch.save({"theta": [torch.zeros(3)], "net": {}}, study / "supernet" / "setting-0.pt")
    torch.save({"net": {}, "fingerprint": {}}, study / "supernet" / "warmup.pt")
    cases = [
        (["strategy.cost_metric=peak_memory_bytes"], "not additive"),
        (["strategy.cost_metric=latency_ms@nowhere"], "no runtime to time blocks on"),
        (["strategy.cost_metric=energy_mj"], "energy_mj needs a device model to price blocks"),
        (  # a device model kept for its SRAM alone does not price latency
            [
                "strategy.cost_metric=latency_ms@mcu",
                "costs=[{name: device, spec: cortex-m7, label: mcu, provides: [peak_sram_bytes]}]",
            ],
            "latency_ms@mcu has no runtime to time blocks on",
        ),
        (["supernet.weights=/nonexistent/warmup.pt"], "does not exist"),
        ([f"supernet.weights={study}"], f"is a directory: name {study}/supernet/warmup.pt"),
        (
            [f"supernet.weights={study}/supernet/setting-0.pt"],
            f"is a search setting's checkpoint (theta), not the warm-up: name {study}/supernet/",
        ),
        (["supernet.tau_end=9"], "tau_end"),
        (["strategy.betas=[0.3, 0.6]"], "strategy: fbnet: betas sweep loss: multiplicative"),
    ]
    for extra, message in cases:
        r = run_cli("search", "--out", str(tmp_path / "x"), "--quiet", *_args(*extra))
        assert r.returncode == 2, (extra, r.stderr[-1500:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, r.stderr)
        assert not (tmp_path / "x").exists()  # refused before anything was written
    r = run_cli(
        "search", "--out", str(tmp_path / "x"), "--set", "space=graph", "--set", "strategy=fbnet"
    )
    assert r.returncode == 2 and "needs a one-shot space (spaces chain, fbnet are)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


CELL = [
    "space=cell",
    "space.channels=8",
    "space.cells_per_stage=1",
    "strategy=darts",
    "supernet.epochs=2",
    "supernet.search_epochs=2",
    "supernet.theta_fraction=0.5",
    "supernet.theta_lr=0.1",
    "estimator.epochs=1",
    "target=analytic",
    "objectives={accuracy: max}",
]


@pytest.mark.parametrize("variant", ["darts", "gdas", "beta"])
def test_darts_and_gdas_derive_cells_trained_stand_alone(tmp_path, variant):
    out = tmp_path / variant
    args = [
        a
        for item in [*CELL, f"strategy.variant={variant}", "strategy.per_setting=2"]
        for a in ("--set", item)
    ]
    r = run_cli("search", "--out", str(out), "--quiet", "--budget", "2", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len(trials) == 2 and {t["stage"] for t in trials} == {"derived"}
    assert [t["info"]["rank"] for t in trials] == [0, 1]
    assert all(t["status"] == "complete" and t["metrics"]["accuracy"] > 0 for t in trials)
    assert all("cost_metric" not in t["info"] for t in trials)  # no resource loss here
    # accuracy alone asked: nothing to say of costs it does not search for
    assert "searches for accuracy alone" not in (out / "hwnas.log").read_text()
    from hwnas.oneshot.strategy import DartsSearch
    from hwnas.space.cell import CellSpace

    costs = DartsSearch(CellSpace(), [("accuracy", "max"), ("macs", "min")], 0)._unweighed()
    assert costs == [
        "strategy darts searches for accuracy alone: macs is measured on the derived net, not "
        "searched for (strategy fbnet weighs a cost)"
    ]
    from hwnas.oneshot.strategy import FbnetSearch
    from hwnas.space.fbnet import FbnetSpace

    objectives = [("accuracy", "max"), ("latency_ms", "min"), ("macs", "min")]
    fbnet = FbnetSearch(FbnetSpace(), objectives, 0, cost_metric="macs")
    assert fbnet._unweighed() == [
        "strategy fbnet weighs macs: latency_ms is measured on the derived nets, not searched "
        "for (strategy.cost_metric names the cost theta learns towards)"
    ]
    assert FbnetSearch(FbnetSpace(), objectives[::2], 0, cost_metric="macs")._unweighed() == []
    from hwnas.experiment.study import Study

    study = Study(out, readonly=True)
    try:
        oneshot = study.store.get_meta_json("oneshot")
    finally:
        study.close()
    (setting,) = oneshot["settings"]
    assert len(setting["history"]) == 2 and len(setting["history"][0]["probs"]) == 6
    log = (out / "hwnas.log").read_text()  # no alpha where no cost is weighed
    assert "supernet search epoch 2/2: CE" in log and "alpha=0" not in log


@pytest.mark.skipif(
    not (SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz").exists(),
    reason="the NAS-Bench-201 table is not here",
)
def test_darts_with_the_table_estimator_trains_the_supernet_on_the_data(tmp_path):
    """The derived cell is looked up in NAS-Bench-201 (as NASLib scores DARTS), while the
    supernet itself trains on the run's data."""
    out = tmp_path / "tab"
    table = SHARED / "benchmarks" / "nb201_cifar10_hw.csv.gz"
    args = [
        a
        for item in [*CELL[:-3], "strategy.variant=gdas", f"estimator.path={table}"]
        for a in ("--set", item)
    ]
    r = run_cli(
        "search",
        "--config",
        "configs/nb201_accuracy.yaml",
        "--set",
        "data=digits",
        "--out",
        str(out),
        "--quiet",
        "--budget",
        "1",
        *args,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (t,) = json.loads(run_cli("show", str(out), "--json").stdout)
    assert t["stage"] == "derived" and 0.1 < t["metrics"]["accuracy"] < 1.0
    assert (out / "supernet" / "warmup.pt").exists()


def test_the_chain_supernet_covers_a_sub_space_with_depth_by_skips():
    """Stage widths are fixed (the widest, or space.supernet_widths); a shallower arch maps to
    its skips-last picks; an arch of another width is refused; MACs add up per pick."""
    from hwnas.space.base import InvalidArch
    from hwnas.space.chain import ChainSpace
    from hwnas.space.config import ChainSpaceConfig

    space = ChainSpace()
    assert space.sub_widths == [24, 32, 64]
    assert [len(c) for c in space.choices()] == [9, 10, 9, 10, 10, 9, 10, 10]  # skip: not where
    full = space.from_choices([0, 1, 2, 3, 4, 5, 6, 7])  # a stage widens or strides first
    shallow = {"stages": [{**s, "ops": list(s["ops"])} for s in full["stages"]]}
    shallow["stages"][1]["depth"] = 2
    picks = space.to_choices(shallow)
    assert picks[2:5] == [2, 3, space.choices()[4].index("skip")]
    assert space.arch_hash(space.from_choices(picks)) == space.arch_hash(shallow)
    narrow = {"stages": [{**s, "ops": list(s["ops"])} for s in full["stages"]]}
    narrow["stages"][0]["width"] = 16
    with pytest.raises(InvalidArch, match="sub-space"):
        space.to_choices(narrow)
    sub = ChainSpace(ChainSpaceConfig(supernet_widths=[16, 32, 48]))
    assert sub.from_choices([0] * 8)["stages"][2]["width"] == 48
    with pytest.raises(ValueError, match="supernet_widths"):
        ChainSpaceConfig(supernet_widths=[16, 32])
    costs = choice_costs(space, "macs", (3, 16, 16), 10)
    for p in ([0] * 8, [8, 9, 8, 9, 9, 8, 9, 9], [3, 9, 1, 9, 2, 4, 9, 0]):
        net = space.build(space.from_choices(p), (3, 16, 16), 10)
        assert costs.of(p) == count_macs(net, (3, 16, 16))


def _cell_kit(tmp_path: Path, device: str = "cpu", **supernet) -> SupernetKit:
    space = ["space=cell", "space.channels=8", "space.cells_per_stage=1"]
    return _kit(tmp_path, space, device=device, **supernet)


def _no_costs(kit: SupernetKit) -> ChoiceCosts:
    return ChoiceCosts("none", 0.0, [[0.0] * len(c) for c in kit.space.choices()])


def test_plain_op_batchnorm_touches_the_candidate_ops_only(tmp_path):
    """DARTS's and GDAS's search setting: the BatchNorms inside the candidate ops normalise by
    the batch alone (no scale or shift to win theta's favour); stem, reductions and the last
    BN keep theirs."""
    kit = _cell_kit(tmp_path, op_batchnorm="plain", epochs=0, mixture="hard")
    net = SupernetSearch(kit, _no_costs(kit)).net
    norms = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    inside = [m for n, m in norms if ".edges." in n]
    outside = [m for n, m in norms if ".edges." not in n]
    # 3 cells x 6 edges x 2 convs (1x1 and 3x3), each with its BN
    assert len(inside) == 36 and not any(m.affine or m.track_running_stats for m in inside)
    assert outside and all(m.affine and m.track_running_stats for m in outside)
    affine = SupernetSearch(_cell_kit(tmp_path / "a", epochs=0), _no_costs(kit)).net
    assert all(
        m.affine for m in affine.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )  # the default is the stand-alone nets' BN


def test_gdas_schedule_linear_tau_per_epoch_and_interleaved_steps(tmp_path, monkeypatch):
    """``tau_schedule: linear`` sets tau once per epoch, tau_start at the first and tau_end
    at the last (GDAS); ``interleave`` takes a w step before every theta step."""
    kit = _cell_kit(
        tmp_path,
        epochs=0,
        search_epochs=3,
        mixture="hard",
        theta_fraction=0.5,
        tau_start=10.0,
        tau_end=0.1,
        tau_schedule="linear",
        interleave=True,
        op_batchnorm="plain",
        w_grad_clip=5.0,
        theta_beta1=0.5,
        w_lr=0.025,
    )
    trainer = SupernetSearch(kit, _no_costs(kit))
    trainer.warm_up()
    order: list[str] = []
    w_step = trainer._w_step
    monkeypatch.setattr(trainer, "_w_step", lambda *a: order.append("w") or w_step(*a))
    route = trainer._route
    monkeypatch.setattr(
        trainer, "_route", lambda th, tau: order.append(f"{tau:.2f}") or route(th, tau)
    )
    result = trainer.search(0, Setting("additive", 0.0))
    assert [h["tau"] for h in result.history] == pytest.approx([10.0, 5.05, 0.1])
    # per pair of batches: a route for w, w's step, a route for theta
    assert order[:6] == ["10.00", "w", "10.00", "10.00", "w", "10.00"]
    assert order.count("w") == trainer._steps(trainer.theta_split) * 3
    assert all(math.isfinite(h["ce"]) for h in result.history)


def _entropy(probs: list[list[float]]) -> float:
    return sum(-sum(p * math.log(p) for p in row if p > 0) for row in probs) / len(probs)


def test_beta_decay_keeps_theta_from_running_away_and_a_changed_weight_starts_afresh(tmp_path):
    """beta-DARTS: the regulariser's gradient is softmax(theta) per edge (over the edges'
    mean), so theta's favoured ops are pulled back hardest; the same search from the same
    seed ends nearer uniform with it than without. A checkpoint of another weight is not
    resumed."""
    theta = [torch.tensor([2.0, 0.0, -1.0], requires_grad=True), torch.zeros(3, requires_grad=True)]
    beta_decay_term(theta).backward()
    for t in theta:
        assert t.grad is not None
        assert torch.allclose(t.grad, t.detach().softmax(0) / 2)

    base = dict(epochs=0, search_epochs=3, mixture="softmax", theta_fraction=0.5)
    base |= dict(interleave=True, theta_lr=0.3, w_lr=0.025)
    ends = {}
    for beta in (0.0, 300.0):
        kit = _cell_kit(tmp_path / str(beta), beta_decay=beta, **base)
        trainer = SupernetSearch(kit, _no_costs(kit))
        trainer.warm_up()
        ends[beta] = trainer.search(0, Setting("additive", 0.0))
    assert _entropy(ends[300.0].probs) > _entropy(ends[0.0].probs) + 0.05
    # the first epoch has weight 0: both searches agree on it exactly
    assert ends[300.0].history[0]["probs"] == ends[0.0].history[0]["probs"]

    # the beta run's checkpoint, met by a run without the regulariser: trained afresh
    kit = _cell_kit(tmp_path / "300.0", beta_decay=0.0, **base)
    trainer = SupernetSearch(kit, _no_costs(kit))
    trainer.warm_up()
    again = trainer.search(0, Setting("additive", 0.0))
    flat = [p for row in again.probs for p in row]
    assert flat == pytest.approx([p for row in ends[0.0].probs for p in row])


def test_the_beta_variant_sets_softmax_mixing_and_its_weight_unless_given():
    from dataclasses import replace

    from hwnas.oneshot.strategy import BETA_DECAY, DartsSearch
    from hwnas.space.cell import CellSpace

    kit = SupernetKit(
        task=None,  # type: ignore[arg-type]
        space=CellSpace(),
        input_shape=(3, 8, 8),
        num_classes=10,
        cfg=SupernetConfig(),
        directory=Path("unused"),
        seed=0,
    )

    def cfg(variant: str, **supernet):
        search = DartsSearch(CellSpace(), [("accuracy", "max")], 0, variant=variant)
        return search._supernet(replace(kit, cfg=SupernetConfig(**supernet))).cfg

    assert (cfg("beta").mixture, cfg("beta").beta_decay) == ("softmax", BETA_DECAY)
    assert cfg("beta", beta_decay=3.0).beta_decay == 3.0
    assert cfg("beta", beta_decay=0.0).beta_decay == 0.0
    assert (cfg("darts").mixture, cfg("darts").beta_decay) == ("softmax", 0.0)
    assert (cfg("gdas").mixture, cfg("gdas").beta_decay) == ("hard", 0.0)


def test_a_mixed_op_is_the_weighted_sum_of_its_ops_and_skips_zero_ops():
    """The one-stack combine gives what the plain sum gives, value and gradients; a zero op
    is not run (the gradients match the plain sum's, where its term is zero)."""
    from hwnas.space.blocks import mixed
    from hwnas.space.cell_modules import Zero, make_op

    runs = [0]  # forward passes of zero ops

    def ran(*_: object) -> None:
        runs[0] += 1

    torch.manual_seed(0)
    for names in (
        ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
        ["skip_connect", "none", "nor_conv_3x3"],  # a zero op inside: indexed, not sliced
        ["nor_conv_1x1", "avg_pool_3x3"],
    ):
        ops = torch.nn.ModuleList(make_op(n, 4) for n in names)
        x = torch.randn(2, 4, 6, 6, requires_grad=True)
        theta = torch.randn(len(names), requires_grad=True)
        got = mixed(ops, theta.softmax(0), x)
        (gx, gt, *gp) = torch.autograd.grad(got.square().sum(), [x, theta, *ops.parameters()])
        w = theta.softmax(0)
        ref = sum(w[i] * op(x) for i, op in enumerate(ops))
        rx, rt, *rp = torch.autograd.grad(ref.square().sum(), [x, theta, *ops.parameters()])
        assert torch.allclose(got, ref, atol=1e-6)
        for a, b in zip([gx, gt, *gp], [rx, rt, *rp], strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        zeros = [op for op in ops if isinstance(op, Zero)]
        for op in zeros:
            op.register_forward_hook(ran)
        mixed(ops, theta.softmax(0), x)
        assert runs == [0]

        # as the trainer runs on a GPU: bf16 autocast, channels-last, fp32 weights. The sum
        # stays bf16 and channels-last (else every next conv pays a cast and a layout copy)
        ops = ops.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        fast = x.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = mixed(ops, theta.detach().softmax(0), fast)
        assert low.dtype == torch.bfloat16
        assert low.is_contiguous(memory_format=torch.channels_last) and not low.is_contiguous()
        assert torch.allclose(low.float(), ref.detach(), atol=0.1, rtol=0.05)


class _NeverCaptured(GraphedSteps):
    """GraphedSteps on the CPU: nothing is captured (no CUDA here), so every step takes its
    eager branch, which shares the replayed path's bookkeeping: grads zeroed in place, the CE's
    gradient with respect to the mixture weights carried back to theta on the CPU."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net, self.dtype, self._w, self._t = net, None, None, None
        self._eager = {"w": 0, "theta": 0}
        self.failed = True

    def _on_side(self, fn, inputs):
        return fn(*inputs)


@pytest.mark.parametrize("mixture", ["softmax", "soft"])
def test_the_graph_steps_chain_rule_gives_the_eager_steps_theta(tmp_path, mixture):
    """``supernet.cuda_graphs``: a theta step takes the CE's gradient with respect to the
    mixture weights from the (replayed) GPU step and applies the chain rule to theta on the
    CPU, with the cost and regulariser terms; w's grads are written in place. Same seed, same
    search: the same theta and w as the plain eager steps (up to float order)."""
    base = dict(epochs=1, search_epochs=2, mixture=mixture, theta_fraction=0.5)
    base |= dict(interleave=True, theta_lr=0.3, w_lr=0.025, beta_decay=5.0)
    ends, nets = {}, {}
    for graphed in (False, True):
        kit = _cell_kit(tmp_path / str(graphed), **base)
        trainer = SupernetSearch(kit, _no_costs(kit))
        if graphed:
            trainer.graphs = _NeverCaptured(trainer.net)
        trainer.warm_up()
        ends[graphed] = trainer.search(0, Setting("additive", 0.0))
        nets[graphed] = trainer.net.state_dict()
    got = [p for row in ends[True].probs for p in row]
    assert got == pytest.approx([p for row in ends[False].probs for p in row], abs=1e-4)
    assert max(abs(p - 1 / 5) for p in got) > 0.01  # theta moved: the comparison says something
    for k, v in nets[False].items():
        if v.is_floating_point():
            assert torch.allclose(nets[True][k], v, atol=1e-4), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("interleave", [True, False])
def test_cuda_graph_steps_are_captured_and_agree_with_eager_steps(tmp_path, interleave):
    """On a GPU both soft-mixture steps are captured after their eager warm-up and replayed,
    in one shared memory pool, whether w and theta take turns batch by batch (DARTS) or epoch
    by epoch (FBNet); the search ends where the eager one does, up to bf16 and float order."""
    base = dict(epochs=1, search_epochs=1, mixture="softmax", theta_fraction=0.5)
    base |= dict(interleave=interleave, theta_lr=0.3, w_lr=0.025)
    ends = {}
    for graphed in (False, True):
        kit = _cell_kit(tmp_path / str(graphed), device="cuda", cuda_graphs=graphed, **base)
        trainer = SupernetSearch(kit, _no_costs(kit))
        trainer.warm_up()
        ends[graphed] = trainer.search(0, Setting("additive", 0.0))
        if graphed:
            g = trainer.graphs
            assert g is not None and not g.failed and g._w is not None and g._t is not None
            assert g._w.graph.pool() == g._t.graph.pool()  # one pool for both graphs
    got = [p for row in ends[True].probs for p in row]
    assert got == pytest.approx([p for row in ends[False].probs for p in row], abs=0.02)
