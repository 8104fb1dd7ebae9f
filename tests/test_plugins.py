"""Out-of-tree plugins end to end, through the worked example in examples/hwnas-example-plugin.

The example (and two broken plugins) are pip-installed into temporary directories, never into
the shared environment, and the real ``hwnas`` CLI runs with them on ``PYTHONPATH``: hwnas
finds them through their ``hwnas.plugins`` entry points, as it would after ``pip install``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_cli

from hwnas.core import registry
from hwnas.space.base import InvalidArch

EXAMPLE = REPO / "examples" / "hwnas-example-plugin"
SRC = REPO / "src"  # the hwnas under test, also when the venv's editable install is elsewhere


def pip_install(project: Path, target: Path) -> None:
    """``pip install --target``, without build isolation (setuptools comes from this venv), from
    a copy: an in-tree build leaves ``build/`` and ``*.egg-info`` in the source directory."""
    copy = target.parent / f"{project.name}-src"
    shutil.copytree(
        project, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr


def python_path(*sites: Path) -> str:
    return os.pathsep.join([*map(str, sites), str(SRC)])


def hwnas(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"PYTHONPATH": path})


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("example") / "site"
    pip_install(EXAMPLE, site)
    return site


def broken_project(root: Path, plugin: str, module_source: str) -> Path:
    project = root / f"hwnas-{plugin}-plugin"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "hwnas-{plugin}-plugin"
version = "0.0.1"

[project.entry-points."hwnas.plugins"]
{plugin} = "hwnas_{plugin}_plugin"

[tool.setuptools]
py-modules = ["hwnas_{plugin}_plugin"]
"""
    )
    (project / f"hwnas_{plugin}_plugin.py").write_text(module_source)
    return project


BROKEN = {
    "unimportable": "import hwnas_no_such_module  # noqa: F401\n",
    "squatter": (
        "from hwnas.core.registry import spaces\n"
        "from hwnas.space.config import ChainSpaceConfig\n\n"
        'spaces.register("chain", ChainSpaceConfig, "hwnas.space.chain:ChainSpace")\n'
    ),
}


@pytest.fixture(scope="module")
def broken_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One site per broken plugin: one that cannot be imported, one that registers ``chain``."""
    root = tmp_path_factory.mktemp("broken")
    sites = {}
    for plugin, source in BROKEN.items():
        sites[plugin] = root / f"{plugin}-site"
        pip_install(broken_project(root, plugin, source), sites[plugin])
    return sites


def trials_of(path: str, out: Path) -> list[dict[str, Any]]:
    res = hwnas(path, "show", str(out), "--json")
    assert res.returncode == 0, res.stderr
    trials: list[dict[str, Any]] = json.loads(res.stdout)
    return trials


# ------------------------------------------------------------------------ searches
def test_search_plugin_space_with_plugin_board_as_target(example_site, tmp_path):
    path = python_path(example_site)
    out = tmp_path / "board"
    res = hwnas(
        path,
        "search",
        "--out",
        str(out),
        "--budget",
        "6",
        "-q",
        *sets(
            "space=example-convs",
            "target=example-board",
            "target.macs_per_ms=20000",
            "target.overhead_ms=0.5",
            "estimator.epochs=1",
            "estimator.data_fraction=0.3",
            "strategy.population=3",
            "strategy.sample_size=2",
        ),
    )
    assert res.returncode == 0, res.stderr
    trials = trials_of(path, out)
    assert [t["status"] for t in trials] == ["complete"] * 6
    assert {t["info"]["op"] for t in trials[3:]} <= {"mutate", "crossover"}  # evolution ran
    for t in trials:
        m = t["metrics"]
        assert m["latency_ms"] == pytest.approx(0.5 + m["macs"] / 20000)  # the board's formula
        assert t["describe"].startswith("conv")  # the plugin space's own description
        assert 0.0 <= m["accuracy"] <= 1.0


def test_plugin_board_as_labelled_costs_entry_in_a_constraint(example_site, tmp_path):
    # two networks: one conv of 8 or 16 channels, 3x3, on 1x8x8 digits (4688 and 9376 MACs);
    # at 1000 MACs/ms only the narrow one meets `latency_ms@mcu <= 7`
    path = python_path(example_site)
    out = tmp_path / "costs"
    res = hwnas(
        path,
        "search",
        "--out",
        str(out),
        "--budget",
        "2",
        "-q",
        *sets(
            "space=example-convs",
            "space.depths=[1]",
            "space.widths=[8, 16]",
            "space.kernels=[3]",
            "strategy=random",
            "target=analytic",
            "costs=[{name: example-board, label: mcu, macs_per_ms: 1000, sram_bytes: null}]",
            "objectives=[accuracy, latency_ms@mcu]",
            "constraints=['latency_ms@mcu <= 7']",
            "estimator.epochs=1",
            "estimator.data_fraction=0.3",
        ),
    )
    assert res.returncode == 0, res.stderr
    trials = {t["describe"]: t for t in trials_of(path, out)}
    assert set(trials) == {"conv8k3", "conv16k3"}
    for t in trials.values():
        m = t["metrics"]
        assert "latency_ms" not in m  # the labelled source keeps its metric apart
        assert m["latency_ms@mcu"] == pytest.approx(0.05 + m["macs"] / 1000)
    assert trials["conv8k3"]["status"] == "complete"
    assert trials["conv16k3"]["status"] == "pruned"
    assert "latency_ms@mcu" in trials["conv16k3"]["error"]
    assert "accuracy" not in trials["conv16k3"]["metrics"]  # pruned before training
    # the study handed to a colleague without the plugin: one line that names what to install
    for cmd in (["show", str(out)], ["report", str(out)]):
        res = hwnas(python_path(), *cmd)
        assert res.returncode == 2
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        assert "a plugin that registers space 'example-convs'" in res.stderr


def test_reference_lists_plugin_kinds_unless_builtin_only(example_site):
    path = python_path(example_site)
    headings = ["### `space.name: example-convs`", "### `target.name: example-board`"]
    res = hwnas(path, "config", "--reference")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    for heading in headings:
        assert heading in lines
    assert "### `space.name: chain`" in lines  # the same form as the built-ins
    assert "| `target.macs_per_ms` | float | `50000.0` |" in res.stdout
    res = hwnas(path, "config", "--reference", "--builtin-only")
    assert res.returncode == 0, res.stderr
    assert "example" not in res.stdout


# ------------------------------------------------------------------ broken plugins
@pytest.mark.parametrize(
    ("plugin", "needle"),
    [
        ("unimportable", "failed to load: ModuleNotFoundError: No module named"),
        ("squatter", "registers space kind 'chain', a name hwnas already uses"),
    ],
)
def test_broken_plugin_is_one_line_and_exit_2(example_site, broken_sites, plugin, needle, tmp_path):
    path = python_path(example_site, broken_sites[plugin])
    # a kind no loaded plugin offers: the broken plugin may be the one that would, so it is named
    res = hwnas(path, "search", "--out", str(tmp_path / "x"), "--set", "space=nosuch")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"hwnas search: error: plugin '{plugin}'"), res.stderr
    assert needle in res.stderr
    assert not (tmp_path / "x").exists()
    # each plugin loads on its own: the healthy example's kinds still work beside it
    res = hwnas(path, "config", "--set", "space=example-convs")
    assert res.returncode == 0, res.stderr
    assert "example-convs" in res.stdout


def test_broken_plugins_leave_builtin_searches_alone(broken_sites, tmp_path):
    path = python_path(*broken_sites.values())
    out = tmp_path / "builtin"
    res = hwnas(
        path,
        "search",
        "--out",
        str(out),
        "--budget",
        "1",
        "-q",
        *sets(
            "space.stages=[{depths: [1], widths: [8], stride: 1}]",
            "space.kernels=[3]",
            "space.expansions=[1]",
            "target=analytic",
            "objectives=[accuracy, macs]",
            "estimator.epochs=1",
            "estimator.data_fraction=0.3",
        ),
    )
    assert res.returncode == 0, res.stderr  # no built-in lookup imports a plugin
    assert [t["status"] for t in trials_of(path, out)] == ["complete"]


# ------------------------------------------------------ the example's code in-process
@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The example package imported here as the ``example`` plugin; the registries and
    ``sys.modules`` are restored afterwards, so other tests see only the built-ins."""
    for family in registry.FAMILIES.values():
        family.builtin_names()  # load the built-ins before the snapshot
    saved = {family: dict(family._entries) for family in registry.FAMILIES.values()}
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(registry, "_loading_plugin", "example")
    import hwnas_example_plugin

    monkeypatch.setattr(registry, "_loading_plugin", None)
    try:
        yield hwnas_example_plugin
    finally:
        for family, entries in saved.items():
            family._entries = entries
        for name in [m for m in sys.modules if m.startswith("hwnas_example_plugin")]:
            del sys.modules[name]


def test_example_board_config_and_capacity(example_plugin):
    from hwnas.experiment.config import load_config
    from hwnas.hardware.targets import make_cost_model

    assert registry.cost_models.entry("example-board").plugin == "example"
    cfg = load_config(None, ["target=example-board", "target.sram_bytes=65536"])
    assert cfg.target.metric_names() == {"latency_ms"}
    assert "peak_memory_bytes <= 65536" in [str(c) for c in cfg.constraints]
    assert isinstance(make_cost_model(cfg.target), example_plugin.board.ExampleBoard)
    cfg = load_config(
        None,
        [
            "target=analytic",
            "costs=[{name: example-board, label: mcu}]",
            "objectives=[accuracy, latency_ms@mcu]",
        ],
    )
    assert cfg.costs[0].metric_names() == {"latency_ms@mcu"}


def test_example_space_conformance(example_plugin):
    """What every space must do (the same checks apply to the built-in spaces)."""
    import torch

    from hwnas.experiment.config import load_config
    from hwnas.space import make_space

    small = ["space=example-convs", "space.depths=[1, 2]", "space.widths=[8, 16]"]
    space = make_space(load_config(None, small).space)
    assert space.size() == 4 + 4 * 4

    # parameters() / from_parameters(): every combination is a valid arch; the canonical
    # forms are exactly the space's networks
    params = space.parameters()
    hashes = set()
    for values in itertools.product(*params.values()):
        arch = space.from_parameters(dict(zip(params, values, strict=True)))
        space.validate(arch)
        hashes.add(space.arch_hash(arch))
    assert len(hashes) == space.size()

    space = make_space(load_config(None, ["space=example-convs"]).space)  # the default space
    rng = random.Random(0)
    for _ in range(200):
        arch = space.sample(rng)
        space.validate(arch)
        assert json.loads(json.dumps(arch)) == arch  # plain JSON
        child = space.mutate(arch, rng)
        space.validate(child)
        assert space.arch_hash(child) != space.arch_hash(arch)  # never a no-op
        mixed = space.crossover(arch, child, rng)
        space.validate(mixed)
        vec = space.encode(arch)
        assert all(isinstance(v, float) for v in vec)
        assert len(vec) == 1 + 2 * 4  # fixed length: depth, then width and kernel per slot
        assert "\n" not in space.describe(arch)
        assert space.key(arch) == space.key(json.loads(json.dumps(arch)))
    neighbours = space.neighbours(arch)
    own = {space.arch_hash(n) for n in neighbours}
    assert len(own) == len(neighbours) and space.arch_hash(arch) not in own
    for n in neighbours:
        space.validate(n)

    # unbuilt slots do not change the network
    arch = {"depth": 1, "widths": [8, 8, 8, 8], "kernels": [3, 3, 3, 3]}
    same = {"depth": 1, "widths": [8, 32, 16, 8], "kernels": [3, 5, 5, 3]}
    assert space.arch_hash(arch) == space.arch_hash(same)
    for bad in ({**arch, "depth": 5}, {**arch, "widths": [8, 8, 8, 7]}, {"depth": 1}):
        with pytest.raises(InvalidArch):
            space.validate(bad)

    # build(): the digits input (1x8x8) and CIFAR-sized input (3x32x32), both strides
    arch = {"depth": 4, "widths": [8, 32, 16, 24], "kernels": [5, 3, 5, 3]}
    for stride in (1, 2):
        s = make_space(
            load_config(None, ["space=example-convs", f"space.first_stride={stride}"]).space
        )
        for shape in ((1, 8, 8), (3, 32, 32)):
            model = s.build(arch, shape, 10)
            assert model(torch.zeros(2, *shape)).shape == (2, 10)
