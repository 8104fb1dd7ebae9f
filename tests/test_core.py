"""The ground floor: registries, the metric vocabulary, config defects, torch-free imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import pytest
from conftest import REPO

from hwnas.core import registry as R
from hwnas.core.config import KindConfig
from hwnas.core.errors import ConfigError, PluginError
from hwnas.core.metrics import check_metric, direction, register_metric
from hwnas.experiment.config import load_config


def test_set_data_name_keeps_the_yaml_data_subset(tmp_path):
    """Defect: a second, shorter default-kinds table made `--set data.name=digits` look like a
    change of kind, which dropped every other key of the YAML `data` section."""
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  subset: 0.5\n  batch_size: 32\n")
    cfg = load_config(f, ["data.name=digits"])
    assert cfg.data.name == "digits"
    assert cfg.data.subset == 0.5 and cfg.data.batch_size == 32
    # a real change of kind still drops the old kind's keys
    g = tmp_path / "g.yaml"
    g.write_text("strategy:\n  population: 5\n")
    assert load_config(g, ["strategy.name=random"]).strategy.name == "random"


def test_every_family_is_a_registry_with_its_builtins():
    expected = {
        "space": {"chain", "cell", "graph", "fbnet", "fastcnn", "user"},
        "strategy": {
            "random",
            "evolution",
            "optuna",
            "nash",
            "reinforce",
            "bo",
            "fbnet",
            "darts",
            "spos",
        },
        "estimator": {"train", "tabular", "supernet", "zero_cost"},
        "target": {
            "cpu-ort",
            "cpu-torch",
            "cuda-torch",
            "analytic",
            "tabular",
            "predictor",
            "device",
            "lut",
            "command",
            "remote",
        },
        "pruner": {"none", "median", "curve"},
        "scheduler": {"none", "halving", "hyperband"},
        "data": {"digits", "cifar10", "imagefolder"},
        "executor": {"inprocess", "process", "ray"},
    }
    for section, names in expected.items():
        assert set(R.FAMILIES[section].builtin_names()) == names, section


def test_unknown_kind_is_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["space=nosuch"])
    msg = str(err.value)
    assert "space.name: unknown space kind 'nosuch'" in msg and "chain" in msg
    assert "\n" not in msg


class _Ep:
    """A stand-in for an installed entry point (the real ones are tested with a package)."""

    def __init__(self, name: str, load):
        self.name, self.value, self._load = name, f"{name}_module", load

    def load(self):
        return self._load()


def _with_plugins(monkeypatch, *eps):
    monkeypatch.setattr(R.metadata, "entry_points", lambda group: list(eps))
    monkeypatch.setattr(R, "_plugins_loaded", False)
    monkeypatch.setattr(R, "_plugin_errors", [])


def test_a_plugin_adds_a_kind_lazily_and_a_taken_name_is_refused(monkeypatch):
    class ToyConfig(KindConfig):
        """A toy strategy for the test."""

        name: Literal["toy"] = "toy"

    def register():
        R.strategies.register("toy", ToyConfig, factory=lambda cfg, *a: ("toy", cfg))

    _with_plugins(monkeypatch, _Ep("toyplug", lambda: register))
    try:
        assert "toy" not in R.strategies.builtin_names()
        cfg = load_config(None, ["strategy=toy"])  # unknown to the built-ins: plugins load
        assert cfg.strategy.name == "toy"
        assert R.strategies.entry("toy").plugin == "toyplug"
        assert R.strategies.create(cfg.strategy)[0] == "toy"
    finally:
        R.strategies._entries.pop("toy", None)

    def steal():
        R.spaces.register("chain", ToyConfig, factory=lambda cfg: None)

    _with_plugins(monkeypatch, _Ep("thief", lambda: steal))
    with pytest.raises(PluginError, match="plugin 'thief' registers space kind 'chain'"):
        R.spaces.names()


def test_a_broken_plugin_breaks_only_what_needs_plugins(monkeypatch):
    def broken():
        raise ImportError("No module named 'missing_dependency'")

    class GoodConfig(KindConfig):
        """A strategy of a healthy plugin."""

        name: Literal["good"] = "good"

    def good():
        R.strategies.register("good", GoodConfig, factory=lambda cfg, *a: cfg)

    _with_plugins(monkeypatch, _Ep("broken", broken), _Ep("healthy", lambda: good))
    try:
        assert load_config(None, ["strategy=random"]).strategy.name == "random"  # built-ins
        assert R._plugins_loaded is False  # nothing asked for a plugin yet
        # another plugin's kind still works beside the broken one
        assert load_config(None, ["strategy=good"]).strategy.name == "good"
        for _ in range(2):  # the same one-line error every time, not "unknown kind" later
            with pytest.raises(PluginError) as err:
                load_config(None, ["strategy=fromplugin"])
            msg = str(err.value)
            assert "plugin 'broken'" in msg and "missing_dependency" in msg and "\n" not in msg
    finally:
        R.strategies._entries.pop("good", None)


def test_metric_registry_units_directions_and_target_labels():
    assert direction("accuracy") == "max" and direction("latency_ms@cuda-torch") == "min"
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        check_metric("speed")
    from hwnas.core import metrics

    register_metric("proxy_score", "max", "score", "a zero-cost proxy (test)", "task")
    try:
        assert direction("proxy_score") == "max"
        # known now, but refused while no source of the run produces it
        with pytest.raises(ConfigError, match="no source of this run gives proxy_score"):
            load_config(None, ["objectives={proxy_score: max, macs: min}"])
        with pytest.raises(ValueError, match="already registered differently"):
            register_metric("proxy_score", "min", "score", "a zero-cost proxy (test)", "task")
    finally:
        metrics._METRICS.pop("proxy_score")  # the shipped reference lists the built-ins
    # a metric measured on a second source carries its label, usable as objective/constraint
    cfg = load_config(
        None,
        [
            "costs=[{name: cpu-torch, label: torch}]",
            "objectives={accuracy: max, latency_ms@torch: min}",
            "constraints=['latency_ms <= 5']",
        ],
    )
    assert [o.metric for o in cfg.objectives] == ["accuracy", "latency_ms@torch"]
    with pytest.raises(ConfigError, match="latency_ms@gpu"):
        load_config(None, ["objectives={accuracy: max, latency_ms@gpu: min}"])


def test_the_ground_floor_and_config_import_no_torch():
    code = (
        "import sys\n"
        "from hwnas.experiment.config import load_config\n"
        "from hwnas.core.registry import FAMILIES\n"
        "load_config(None, ['space=cell', 'pruner=median', 'scheduler=halving'])\n"
        "[f.names() for f in FAMILIES.values()]\n"
        "from hwnas.experiment.reference import render_reference\n"
        "render_reference()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_imports_point_down_and_form_no_cycle():
    """The layers of design.md: no import points up a layer, at module level or inside a
    function, and no import cycle exists, lazy imports included (scripts/layers.py counts)."""
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "layers.py"), "--check", "0", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-2000:]


def test_one_number_format_for_every_command():
    from hwnas.core.metrics import fmt_number

    # whole counts of a thousand or more read with separators (MACs, bytes), else 4 digits
    assert fmt_number(118147360.0) == "118,147,360"
    assert fmt_number(1234) == "1,234"
    assert fmt_number(999.0) == "999"
    assert fmt_number(0.98673) == "0.9867"
    assert fmt_number(1234.5) == "1234"  # .4g rounds half to even
    assert fmt_number(-2048.0) == "-2,048"
    from hwnas.core.metrics import fmt_ms

    # milliseconds: three decimals from 1 ms, three significant digits below, so two small
    # nets 1 % apart read apart (0.0625 and 0.0631 both read 0.063)
    assert [fmt_ms(v) for v in (0.0625, 0.0631, 0.5, 1.2345, 12.3)] == [
        "0.0625", "0.0631", "0.500", "1.234", "12.300",
    ]  # fmt: skip


def test_a_broken_bound_reads_its_value_whole():
    from hwnas.core.constraints import Constraint, violated

    # a byte count read "6.87e+04" for 68,698: the bound's own unit, whole
    said = violated([Constraint.parse("model_bytes_int8 <= 5000")], {"model_bytes_int8": 68698.0})
    assert said == ["model_bytes_int8 <= 5000 (was 68,698)"]
    assert violated([Constraint.parse("latency_ms <= 1")], {"latency_ms": 1.23456}) == [
        "latency_ms <= 1 (was 1.235)"
    ]
