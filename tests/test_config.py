from __future__ import annotations

import re
from pathlib import Path

import pytest

from hwnas.core.constraints import Constraint
from hwnas.core.errors import ConfigError
from hwnas.experiment.config import load_config


def test_default_is_the_embedded_task():
    cfg = load_config()
    assert cfg.data.name == "digits"
    assert cfg.space.name == "chain"
    assert cfg.target.name == "cpu-ort" and cfg.target.threads == 1
    assert cfg.strategy.name == "evolution"
    assert [(o.metric, o.direction) for o in cfg.objectives] == [
        ("accuracy", "max"),
        ("latency_ms", "min"),
    ]


def test_a_kind_name_alone_names_a_nested_section_too():
    """`section=kind` works for the kind sections inside others (SPOS's inner strategy, the
    final stage's estimator) as for the top-level ones."""
    cfg = load_config(None, ["space=cell", "strategy=spos", "strategy.search=random"])
    assert cfg.strategy.search == {"name": "random"}
    # a later --set into it keeps the kind (it became a nameless section: evolution)
    items = ["space=cell", "strategy=spos", "strategy.search=bo", "strategy.search.init=3"]
    assert load_config(None, items).strategy.search == {"name": "bo", "init": 3}
    assert load_config(None, ["final.estimator=train"]).final.estimator == {"name": "train"}
    with pytest.raises(ConfigError, match="final.estimator: supernet trains no nets"):
        load_config(None, ["final.estimator={name: supernet, weights: x.pt}"])


def test_set_overrides_and_name_shorthand():
    cfg = load_config(
        None, ["strategy=random", "estimator.epochs=3", "target.threads=2"], budget=7, seed=5
    )
    assert cfg.strategy.name == "random"
    assert cfg.estimator.epochs == 3
    assert cfg.target.threads == 2
    assert cfg.budget.trials == 7 and cfg.seed == 5


def test_set_of_one_objective_adds_to_the_others_whatever_their_form(tmp_path):
    """`--set objectives.params=min` with no config file searched on params alone (the
    built-in default's accuracy and latency gone), beside a file it added to them."""

    def objectives(path, items, base=None):
        cfg = load_config(path, items, base=base)
        return [(o.metric, o.direction) for o in cfg.objectives]

    both = [("accuracy", "max"), ("latency_ms", "min"), ("params", "min")]
    assert objectives(None, ["objectives.params=min"]) == both
    listed = tmp_path / "l.yaml"
    listed.write_text("objectives: [{metric: accuracy, direction: max}, latency_ms]\n")
    assert objectives(listed, ["objectives.params=min"]) == both
    stored = load_config(None, []).to_json_dict()  # a study's stored config: a list of dicts
    assert objectives(None, ["objectives.params=min"], base=stored) == both
    assert objectives(None, ["objectives.latency_ms=null"]) == [("accuracy", "max")]
    # a metric's own sense: `latency_ms: max` searched for the slowest nets, silently
    with pytest.raises(ConfigError, match="latency_ms is minimised: `max` would search for the"):
        load_config(None, ["objectives.latency_ms=max"])
    with pytest.raises(ConfigError, match="accuracy is maximised"):
        load_config(None, ["objectives={accuracy: min}"])
    with pytest.raises(ConfigError, match="--set objectives.params: the objectives it adds to"):
        load_config(None, ["objectives=5", "objectives.params=min"])
    with pytest.raises(ConfigError, match="'objectives.params=minimize'.*max or min"):
        load_config(None, ["objectives.params=minimize"])
    # a list item by its index, as before; a label with dots is one metric
    assert objectives(listed, ["objectives.1=params"]) == [("accuracy", "max"), ("params", "min")]
    dotted = objectives(
        None,
        [
            "objectives.latency_ms@jetson.nano=min",
            "costs=[{name: cpu-torch, label: jetson.nano}]",
        ],
    )
    assert dotted[-1] == ("latency_ms@jetson.nano", "min")


def test_set_into_a_list_the_config_does_not_hold_names_the_list():
    """`--set costs.0.label=x` with no costs in the config (or the default's chain stages)
    blamed the list's type (`costs: Input should be a valid list`); an index into a list the
    file does hold works."""
    for item, where in (
        ("costs.0.label=x", "costs"),
        ("space.stages.0.depths=[9]", "space.stages"),
    ):
        with pytest.raises(
            ConfigError,
            match=rf"{where} is no list in this config to index into; set it whole \(--set {where}=\[...\]\)",
        ):
            load_config(None, [item])
    fast = Path(__file__).parents[1] / "configs" / "cifar10_fast.yaml"
    cfg = load_config(
        fast,
        [
            "space.groups.1.widths=[64]",
            "costs.0.label=gpu",
            "objectives={accuracy: max, latency_ms@gpu: min}",
        ],
    )
    assert cfg.space.groups[1].widths == [64] and cfg.costs[0].label == "gpu"


def test_switching_kind_drops_keys_of_the_old_kind(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("strategy:\n  name: evolution\n  population: 5\n")
    cfg = load_config(f, ["strategy=random"])
    assert cfg.strategy.name == "random"
    # the command line's own keys for the section are kept, in either order: the file's go
    for order in (
        ["pruner.percentile=25", "pruner=median"],
        ["pruner=median", "pruner.percentile=25"],
    ):
        assert load_config(f, order).pruner.percentile == 25
    with pytest.raises(ConfigError, match="pruner.percentile"):  # refused, not dropped
        load_config(f, ["pruner.percentile=150", "pruner=median"])
    # flags for one kind, then a switch: the new kind keeps those it has, as before
    assert load_config(f, ["strategy.population=9", "strategy=random"]).strategy.name == "random"
    # a key the new kind has is kept, under an alias too; a misspelt kind corrected later
    # is no error
    cfg = load_config(f, ["strategy.latency_target=5", "strategy=reinforce"])
    assert cfg.strategy.latency_target == 5
    assert load_config(f, ["strategy=nosuch", "strategy=random"]).strategy.name == "random"
    # a section given whole replaces the file's, and later keys go on top of it
    cfg = load_config(f, ["strategy={name: bo, init: 3}", "strategy.candidates=50"])
    assert (cfg.strategy.name, cfg.strategy.init, cfg.strategy.candidates) == ("bo", 3, 50)
    with pytest.raises(ConfigError, match="population"):  # not a key of bo: refused
        load_config(f, ["strategy={name: bo, population: 3}"])
    # of a nested mapping only the keys the command line set survive the switch
    g = tmp_path / "z.yaml"
    g.write_text("estimator:\n  name: zero_cost\n  fast: {lr: 9.0, cutout: 12}\n")
    fast = load_config(g, ["estimator.fast.cutout=4", "estimator=train"]).estimator.fast
    assert (fast.cutout, fast.lr) == (4, 1.5)


def test_a_score_only_the_estimator_gives_is_named_with_what_it_gives():
    """A zero-cost run asked for accuracy, or for another proxy than its own, is told what
    its estimator gives, not to add a target."""
    for overrides, wanted in (
        (["estimator=zero_cost", "estimator.proxy=naswot"], "not accuracy"),
        (["estimator=zero_cost", "objectives={zc_snip: max, latency_ms: min}"], "not zc_snip"),
    ):
        with pytest.raises(ConfigError) as err:
            load_config(None, overrides)
        assert wanted in str(err.value) and "gives zc_" in str(err.value)
        assert "target or costs" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["estimator.epoch=3"], "estimator.epoch: unknown key"),
        (["estimator.epochs=three"], "estimator.epochs"),
        (["strategy=annealing"], "strategy"),
        (["bogus=1"], "bogus: unknown key"),
        (["objectives=[{metric: speed, direction: min}]"], "unknown metric 'speed'"),
        (["constraints=['latency_ms <= -1']"], "can never hold"),
        (["constraints=['accuracy >= 1.5']"], "can never hold"),
        # a device model says what it gives: a label's typo or a metric it lacks is refused
        # (without a cpu-ort target beside it, both went unchecked and unpruned)
        (
            [
                "target=device",
                "costs=[{name: device, label: m7}]",
                "constraints=['peak_sram_bytes@M7 <= 1000']",
            ],
            "gives peak_sram_bytes@M7 (this run has peak_sram_bytes, peak_sram_bytes@m7)",
        ),  # fmt: skip
        (["target=device", "constraints=['latency_ms@board <= 5']"], "latency_ms@board"),
        (
            ["costs=[{name: device, label: m7}]", "objectives.peak_sram_bytes=min"],
            "no source of this run gives peak_sram_bytes",
        ),
        # a misspelt required key is the unknown key, with the one it meant
        (
            ["estimator=supernet", "estimator.weigths=/x/warmup.pt"],
            "estimator.weigths: unknown key (did you mean weights?)",
        ),
        # what the chosen strategy would ignore, or could not use
        (["supernet.weights=/x/warmup.pt"], "supernet.weights: read by the one-shot"),
        (["strategy=spos", "space=cell", "supernet.precision=fp16"], "supernet.precision"),
        (
            ["strategy=spos", "estimator=supernet", "estimator.weights=/x/warmup.pt"],
            "strategy spos trains and scores with its own: drop estimator=supernet",
        ),
        # a percentage for a fraction is named as such
        (["constraints=['accuracy >= 90']"], "(accuracy is 0-1; did you mean 0.9?)"),
        (["constraints=['latency_ms ~ 3']"], "cannot parse constraint"),
        # a count or a size under 1 (meant as millions) pruned every candidate
        (["constraints=['params <= 0.5']"], "params is at least 1; for 0.5 million write 0.5M"),
        # a byte size that reads two ways, a multiplier on a unit it does not fit
        (
            ["target=device", "constraints=['peak_sram_bytes <= 256kB']"],
            "256kB reads two ways: write 256KiB (262,144 bytes) or 256k (256,000)",
        ),
        (["constraints=['latency_ms <= 2k']"], "latency_ms is in ms: write the bound in ms ('k'"),
        (["constraints=['latency_ms <= 2s']"], "latency_ms is in ms: write the bound in ms ('s'"),
        (["constraints=['params <= 2KiB']"], "unknown multiplier 'KiB'; one of k, K, M, G"),
        (["target=analytic"], "measures no latency_ms"),
        (["space.kernels=[2]"], "space.kernels"),
        # a list or mapping that is not YAML is said to be so, with the quoting hint where
        # an item starts with an indicator (it read as the plain string before)
        (["strategy.start=[@ref.json]"], "not valid YAML (line 1: found character '@'"),
        (["strategy.start=[@ref.json]"], "quote an item that starts with @"),
        (["objectives={accuracy: max"], "'objectives={accuracy: max': not valid YAML"),
        (["objectives={accuracy: max, accuracy: min}"], "duplicate key 'accuracy'"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(bad)
    assert "(line 2: " in str(err.value) and "\n" not in str(err.value)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)
    # a section written twice: PyYAML kept the last, and a search ran on digits, not the
    # dataset the first `data:` named
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "data: {name: cifar10, path: x}\nestimator: {epochs: 1}\ndata:\n  batch_size: 8\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(twice)
    assert str(err.value) == (
        f"config {twice}: not valid YAML (line 3: duplicate key 'data' (first on line 1): "
        "merge the two)"
    )
    merged = tmp_path / "merged.yaml"  # a merge key's values may be overridden, as YAML means
    merged.write_text("x: &e {epochs: 2, lr: 0.1}\nestimator:\n  <<: *e\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="x: unknown key"):
        load_config(merged)


def test_objective_and_constraint_shorthands(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(
        "objectives: {accuracy: max, macs: min}\n"
        "constraints: ['latency_ms <= 2.0', 'params < 5e5']\n"
        "target: {name: cpu-torch}\n"
    )
    cfg = load_config(f)
    assert [(o.metric, o.direction) for o in cfg.objectives] == [
        ("accuracy", "max"),
        ("macs", "min"),
    ]
    assert [str(c) for c in cfg.constraints] == ["latency_ms <= 2", "params < 500000"]
    # counts and sizes take multipliers, as data sheets and papers write them
    assert Constraint.parse("params <= 1.5M").value == 1_500_000
    assert Constraint.parse("macs < 300 M").value == 300_000_000
    assert Constraint.parse("flash_bytes@m7 <= 512KiB").value == 512 * 1024
    assert Constraint.parse("peak_sram_bytes <= 1MiB").value == 1024**2
    assert Constraint.parse("params <= 2e5").value == 200_000
    # the metric's own unit written out is the plain number
    assert Constraint.parse("latency_ms <= 2ms").value == 2.0
    assert Constraint.parse("peak_sram_bytes <= 256B").value == 256
    c = Constraint.parse("latency_ms <= 2.0")
    assert c.holds(2.0) and not c.holds(2.01)


def test_identity_ignores_budget_only():
    a, b = load_config(None, [], budget=5), load_config(None, [], budget=50)
    assert a.identity() == b.identity()
    assert a.identity() != load_config(None, [], seed=1).identity()


def test_reference_doc_is_generated_from_schema():
    from pathlib import Path

    from hwnas.experiment.reference import render_reference

    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text() == render_reference(plugins=False) + "\n", (
        "docs/configuration.md is stale: run `hwnas config --reference --builtin-only > docs/configuration.md`"
    )
    for key in (
        "estimator.restart_epochs",
        "target.threads",
        "data.augment",
        "strategy.sample_size",
    ):
        assert f"`{key}`" in doc.read_text()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("costs=[{name: analytic}]", "costs.0: kind analytic cannot"),
        ("costs=[{name: device, provides: [sram]}]", "costs.0.provides: unknown metric 'sram'"),
        ("target.provides=[macs]", "target.provides: not supported for cpu-ort"),
    ],
)
def test_cost_source_mistakes_are_named(override, needle):
    from hwnas.core.errors import ConfigError
    from hwnas.experiment.config import load_config

    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_config(None, [override])


def test_every_shipped_config_validates():
    """Each file in configs/ loads (validation only: no data, no GPU needed); a GPU target
    moves training to its device."""
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        cfg = load_config(f, [])
        if cfg.target.name == "cuda-torch":
            assert cfg.device == "cuda", f.name
    assert load_config(None, ["target=cuda-torch"]).device == "cuda"


def test_data_path_switches_only_an_unnamed_dataset_and_digits_refuses_a_path(tmp_path):
    """--data turns the default digits into cifar10, but a digits the user named is a
    contradiction (it once trained CIFAR-10 silently), and so is a path beside digits."""
    c10 = str(tmp_path / "c10.tar.gz")
    assert load_config(None, [], data_path=c10).data.name == "cifar10"
    assert load_config(None, ["data=imagefolder"], data_path=c10).data.name == "imagefolder"
    with pytest.raises(ConfigError, match=r"--data: data.name is digits"):
        load_config(None, ["data=digits"], data_path=c10)
    with pytest.raises(ConfigError, match=r"data.path: digits is bundled and reads no path"):
        load_config(None, ["data.path=" + c10])
    assert load_config(None, []).data.path is None


def test_a_flag_and_a_set_of_the_same_key_must_agree(tmp_path, monkeypatch):
    """``--data A --set data.path=B`` (and --budget, --seed, --device likewise) is refused in
    one line: the flag won without a word. A --set that agrees, and a flag that overrides the
    config file's own value, are fine."""
    a, b = str(tmp_path / "a.tar.gz"), str(tmp_path / "b.tar.gz")
    for overrides, top, needle in (
        ([f"data.path={b}", "data=cifar10"], {"data_path": a}, f"--data {a} and --set data.path="),
        (["budget.trials=5"], {"budget": 3}, "--budget 3 and --set budget.trials=5 disagree"),
        (["budget=5"], {"budget": 3}, "--budget 3 and --set budget=5 disagree"),
        (["seed=2"], {"seed": 1}, "--seed 1 and --set seed=2 disagree"),
        (["device=cuda"], {"device": "cpu"}, "--device cpu and --set device=cuda disagree"),
    ):
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_config(None, overrides, **top)
    assert load_config(None, ["budget.trials=3"], budget=3).budget.trials == 3
    assert load_config(None, ["budget.trials=3.0"], budget=3).budget.trials == 3
    monkeypatch.chdir(tmp_path)  # one path, spelled two ways
    assert load_config(None, ["data=cifar10", "data.path=./a.tar.gz"], data_path=a).data.path
    assert load_config(None, ["data=cifar10", f"data.path={a}"], data_path=a).data.path == a
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{name: cifar10, path: {b}}}\nbudget: {{trials: 9}}\n")
    assert load_config(cfg, [], data_path=a, budget=4).data.path == a  # the flag overrides the file
    assert load_config(cfg, [], budget=4).budget.trials == 4
    # a --set that repeats the file's value still disagrees with the flag
    with pytest.raises(ConfigError, match=r"--budget 4 and --set budget.trials=9 disagree"):
        load_config(cfg, ["budget.trials=9"], budget=4)
    with pytest.raises(ConfigError, match=r"--data .* and --set data.path=.* disagree"):
        load_config(cfg, [f"data.path={b}"], data_path=a)
    with pytest.raises(ConfigError, match=r"--seed 1 and --set seed=True disagree"):
        load_config(None, ["seed=true"], seed=1)  # a boolean is no number
