"""Datasheet device models: hand-checked roofline figures, MCUNet-style memory, config wiring."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
import yaml
from conftest import FAST, run_cli
from torch import nn

from hwnas.api import run_search
from hwnas.experiment.config import load_config, validate_config
from hwnas.experiment.evaluate import violated
from hwnas.hardware.analytic import count_macs
from hwnas.hardware.device import estimate, trace
from hwnas.hardware.devices import DeviceSpecError, load_spec, resolve, shipped
from hwnas.space import make_space
from hwnas.space.chain import ChainSpace
from hwnas.space.config import ChainSpaceConfig

SHIPPED = ("cortex-m7", "imx8mp-npu", "jetson-orin-nano")


def test_known_conv_layer_by_hand():
    spec = load_spec("cortex-m7")
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    est = estimate(conv, (16, 32, 32), spec)  # int8 by default
    macs = 32 * 32 * 32 * 16 * 9
    assert est.macs == macs == 4_718_592
    (layer,) = est.layers
    act_bytes = 16 * 32 * 32 + 32 * 32 * 32  # int8 input + output
    w_bytes = 32 * 16 * 9
    assert (layer.kind, layer.act_bytes, layer.weight_bytes) == ("conv", act_bytes, w_bytes)
    # 480 MHz x 2 MAC/cycle at the assumed 50 % conv efficiency
    compute = macs / (9.6e8 * 0.5)
    memory = act_bytes / 1.92e9 + w_bytes / 9.6e8
    assert layer.bound == "compute"
    assert layer.compute_s == pytest.approx(compute)
    assert layer.memory_s == pytest.approx(memory)
    latency_s = compute + 5e-6 + 1e-5  # + per-layer and per-inference overheads
    assert est.latency_ms == pytest.approx(1e3 * latency_s) == pytest.approx(9.8454)
    energy_pj = macs * 70 + act_bytes * 12.5 + w_bytes * 25
    assert est.energy_mj == pytest.approx(energy_pj * 1e-9)
    assert est.peak_sram_bytes == act_bytes
    assert est.flash_bytes == w_bytes + 131072  # weights + runtime budget
    # the same figures follow from the spec file, not from constants in the code
    assert spec.peak("int8") * spec.efficiency.conv.value == pytest.approx(4.8e8)
    # fp32 doubles every byte and halves the peak
    est32 = estimate(conv, (16, 32, 32), spec, "fp32")
    assert est32.layers[0].compute_s == pytest.approx(macs / (4.8e8 * 0.5))
    assert est32.peak_sram_bytes == 4 * act_bytes


def test_memory_bound_linear_layer_on_the_npu():
    fc = nn.Linear(1024, 1000)
    est = estimate(fc, (1024,), "imx8mp-npu")
    (layer,) = est.layers
    assert layer.kind == "linear" and est.macs == 1024 * 1000
    w_bytes = 1024 * 1000 + 4 * 1000  # int8 weights, int32 biases
    assert layer.weight_bytes == w_bytes
    memory = (1024 + 1000) / 1.6e10 + w_bytes / 1.6e10
    assert layer.bound == "memory"
    assert layer.memory_s == pytest.approx(memory)
    assert layer.compute_s == pytest.approx(1024 * 1000 / (1.15e12 * 0.05))
    assert est.latency_ms == pytest.approx(1e3 * (memory + 2e-5 + 5e-4))


def test_batch_norm_folds_and_activation_fuses():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
    )
    g = trace(net, (3, 10, 10))
    assert [layer.kind for layer in g.layers] == ["conv", "pool"]
    conv = g.layers[0]
    assert conv.fused == ["native_batch_norm", "relu"] and conv.bias == 8
    est = estimate(net, (3, 10, 10), "cortex-m7")
    assert est.flash_bytes == 8 * 3 * 9 + 4 * 8 + 131072  # int8 weights, int32 folded bias
    assert net.training  # the trace restores the module's mode


def test_residual_input_stays_alive():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return x + self.b(self.a(x))

    t = 4 * 4 * 4  # elements of each tensor
    g = trace(Res(), (4, 4, 4))
    assert [layer.kind for layer in g.layers] == ["pointwise", "pointwise", "elementwise"]
    # while b runs, x is kept for the add: x + a(x) + b(a(x))
    assert g.live_elements() == [2 * t, 3 * t, 3 * t]
    assert estimate(Res(), (4, 4, 4), "cortex-m7").peak_sram_bytes == 3 * t
    chain = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1))
    assert estimate(chain, (4, 4, 4), "cortex-m7").peak_sram_bytes == 2 * t


def test_macs_agree_with_the_analytic_counter():
    space = ChainSpace()
    rng = random.Random(1)
    for _ in range(4):
        model = space.build(space.sample(rng), (1, 8, 8), 10)
        assert trace(model, (1, 8, 8)) and estimate(model, (1, 8, 8), "cortex-m7").macs == (
            count_macs(model, (1, 8, 8))
        )


def _mobilenet_like(resolution: int):
    cfg = ChainSpaceConfig(
        stem_channels=32,
        stem_stride=2,
        stages=[
            {"depths": [1], "widths": [16], "stride": 1},
            {"depths": [2], "widths": [24], "stride": 2},
            {"depths": [3], "widths": [32], "stride": 2},
        ],
        kernels=[3],
        expansions=[6],
        allow_skip=False,
    )
    space = ChainSpace(cfg)
    arch = space.sample(random.Random(0))
    return space.build(arch, (3, resolution, resolution), 1000)


def test_mcu_sram_feasibility_as_in_mcunet():
    cfg = load_config(
        None,
        [
            "target=cpu-ort",
            "costs=[{name: device, spec: cortex-m7, provides: [peak_sram_bytes, flash_bytes]}]",
        ],
    )
    assert [str(c) for c in cfg.constraints] == [
        "peak_sram_bytes <= 524288",
        "flash_bytes <= 2097152",
    ]
    big = estimate(_mobilenet_like(224), (3, 224, 224), "cortex-m7").metrics()
    # 224x224x3 input + 112x112x32 stem output alone exceed the 512 KB AXI SRAM
    assert big["peak_sram_bytes"] >= 224 * 224 * 3 + 112 * 112 * 32 > 524288
    assert big["flash_bytes"] < 2097152
    assert violated(cfg.constraints, big) == [
        f"peak_sram_bytes <= 524288 (was {big['peak_sram_bytes']:,.0f})"
    ]
    tiny = estimate(_mobilenet_like(32), (3, 32, 32), "cortex-m7").metrics()
    assert tiny["peak_sram_bytes"] < 524288 and violated(cfg.constraints, tiny) == []


def test_device_config_as_target_and_as_cost_source():
    cfg = load_config(None, ["target=device", "target.spec=jetson-orin-nano"])
    assert cfg.target.name == "device" and cfg.target.spec == "jetson-orin-nano"
    assert {c.metric for c in cfg.constraints} == {"peak_sram_bytes", "flash_bytes"}
    # a tighter user constraint stands alone; a looser one gets the capacity beside it
    cfg = load_config(
        None,
        [
            "target=device",
            "constraints=['peak_sram_bytes <= 100000', 'flash_bytes <= 9e12']",
        ],
    )
    assert [str(c) for c in cfg.constraints] == [
        "peak_sram_bytes <= 100000",
        "flash_bytes <= 9e+12",
        "flash_bytes <= 2097152",
    ]
    # the looser bound is said not to be the one that prunes (the search logs it)
    assert cfg.capacity_notes() == [
        "flash_bytes <= 9e+12 is looser than cortex-m7's capacity (2,097,152): the capacity "
        "is the bound that prunes"
    ]
    # re-validating the stored config adds nothing (resume keeps its identity)
    again = validate_config(cfg.to_json_dict())
    assert again.identity() == cfg.identity()
    # provides limits what the source may constrain; the switch turns it off
    cfg = load_config(None, ["costs=[{name: device, provides: [flash_bytes]}]"])
    assert [c.metric for c in cfg.constraints] == ["flash_bytes"]
    cfg = load_config(None, ["target=device", "target.capacity_constraints=false"])
    assert cfg.constraints == []
    # a labelled source's capacities are its own metrics' (they were the bare names, which
    # no source gave: the study stored a config no command could read back)
    cfg = load_config(None, ["costs=[{name: device, provides: [peak_sram_bytes], label: m7}]"])
    assert [str(c) for c in cfg.constraints] == ["peak_sram_bytes@m7 <= 524288"]
    assert validate_config(cfg.to_json_dict()).identity() == cfg.identity()


def test_a_study_whose_stored_config_cannot_be_read_is_refused_in_one_line_and_force_starts_over(
    tmp_path,
):
    import json
    import sqlite3

    from conftest import run_cli

    out = tmp_path / "s"
    args = ["search", "--out", str(out), "--budget", "1", "-q", "--set", "estimator.epochs=1"]
    assert run_cli(*args).returncode == 0
    with sqlite3.connect(out / "study.db") as db:  # as the labelled capacity once stored it
        (raw,) = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        cfg = json.loads(raw)
        cfg["constraints"] = ["peak_sram_bytes <= 524288"]
        db.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(cfg),))
    r = run_cli(*args)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "stored config is not valid" in r.stderr and "--force" in r.stderr
    r = run_cli(*args, "--force")
    assert r.returncode == 0, r.stderr
    assert list(out.glob("study-*.db.bak")) and run_cli("show", str(out)).returncode == 0


def _spec_file(tmp_path, name="dev.yaml", **edits):
    raw = yaml.safe_load(resolve("cortex-m7").read_text())
    for dotted, value in edits.items():
        node = raw
        *path, leaf = dotted.split(".")
        for p in path:
            node = node[p]
        node[leaf] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bad_spec_is_exit_2_naming_the_field(tmp_path):
    cases = {
        "neg.yaml": ({"peak_macs_per_s.int8.value": -1}, "peak_macs_per_s.int8.value"),
        "cite.yaml": (
            {"activation_memory.capacity_bytes.source": "trust me"},
            "activation_memory.capacity_bytes.source",
        ),
        "eff.yaml": ({"efficiency.depthwise.value": 1.5}, "depthwise.value must be in (0, 1]"),
        "key.yaml": ({"weight_memory.speed": 3}, "weight_memory.speed: unknown key"),
    }
    for name, (edits, needle) in cases.items():
        path = _spec_file(tmp_path, name, **edits)
        res = run_cli("config", "--set", "target=device", "--set", f"target.spec={path}")
        assert res.returncode == 2, res.stderr
        assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        with pytest.raises(DeviceSpecError, match="device spec"):
            load_spec(str(path))
    res = run_cli("config", "--set", "target=device", "--set", "target.spec=no-such-chip")
    assert res.returncode == 2 and "neither a shipped device" in res.stderr
    broken = tmp_path / "broken.json"  # PyYAML's own report spans five lines with a caret
    broken.write_text("a: [1,\n  b: }\n")
    with pytest.raises(DeviceSpecError) as err:
        load_spec(str(broken))
    assert "not valid YAML (line 2: " in str(err.value) and "\n" not in str(err.value)


def test_every_shipped_figure_cites_its_source():
    assert set(SHIPPED) <= set(shipped())
    for name in SHIPPED:
        spec = load_spec(name)
        assert spec.name == name and spec.default_precision in spec.precisions
        raw = yaml.safe_load(resolve(name).read_text())
        numbers = 0

        def walk(node, path):
            nonlocal numbers
            if isinstance(node, dict):
                if "value" in node:  # a figure: value, basis, source
                    assert isinstance(node["value"], int | float), path
                    assert node["basis"] in ("datasheet", "derived", "estimate", "assumption")
                    assert len(node["source"]) > 20, path
                    numbers += 1
                    return
                for k, v in node.items():
                    walk(v, f"{path}.{k}")
            else:  # no bare number anywhere else in the file
                assert not isinstance(node, int | float) or isinstance(node, bool), path

        walk({k: v for k, v in raw.items() if k != "documents"}, name)
        assert numbers == len(spec.figures()) >= 18
        for _, fig in spec.figures():
            if fig.basis in ("datasheet", "derived"):
                cited = [d for d in spec.documents if f"[{d}]" in fig.source]
                assert cited and all(spec.documents[d].url.startswith("https://") for d in cited)


def test_search_prunes_what_does_not_fit(tmp_path):
    probe = load_config(None, list(FAST))
    space = make_space(probe.space)
    rng = random.Random(0)
    models = [space.build(space.sample(rng), (1, 8, 8), 10) for _ in range(20)]
    peaks = sorted(estimate(m, (1, 8, 8), "cortex-m7").peak_sram_bytes for m in models)
    cap = int(peaks[len(peaks) // 3])  # about a third of the space fits: pruning is free
    spec = _spec_file(tmp_path, "small-mcu.yaml", **{"activation_memory.capacity_bytes.value": cap})
    cfg = load_config(
        None,
        [
            *FAST,
            "target=cpu-ort",
            f"costs=[{{name: device, spec: '{spec}', provides: [peak_sram_bytes, flash_bytes]}}]",
            "strategy=random",
            "objectives={accuracy: max, peak_sram_bytes: min}",
            "estimator.epochs=1",
            "data.subset=0.3",
        ],
        budget=5,
        seed=3,
    )
    assert f"peak_sram_bytes <= {cap}" in [str(c) for c in cfg.constraints]
    # the device model's SRAM is known once a net is built: random search draws again an arch
    # that cannot fit, so every trial fits and trains
    result = run_search(cfg, tmp_path / "run")
    assert [t.status for t in result.trials] == ["complete"] * 5
    for t in result.trials:
        assert t.metrics["peak_sram_bytes"] <= cap and "accuracy" in t.metrics
    # and a net that cannot fit, evaluated all the same, is pruned before training
    from hwnas.experiment.evaluate import Job, build_evaluator

    ev = build_evaluator(cfg)
    big = next(
        a
        for a in (space.sample(rng) for _ in range(200))
        if ev.built_costs(a)["peak_sram_bytes"] > cap
    )
    out = ev(Job(big, 0))
    assert out.status == "pruned" and f"peak_sram_bytes <= {cap} (was " in (out.error or "")
    assert out.metrics["peak_sram_bytes"] > cap and "accuracy" not in out.metrics
    assert "latency_ms" not in out.metrics  # nor timed: the count had ruled it out


def test_the_search_prints_its_front_along_its_cost_objective(tmp_path):
    """The front after a search in the order of its first cost objective (an SRAM front was
    printed in the order of the nets' MACs)."""
    sets = [
        *FAST, "target=analytic", "costs=[{name: device, provides: [peak_sram_bytes]}]",
        "objectives={accuracy: max, peak_sram_bytes: min}", "estimator.epochs=1",
        "data.subset=0.3",
    ]  # fmt: skip
    args = [x for s in sets for x in ("--set", s)]
    res = run_cli("search", *args, "--budget", "8", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    front = json.loads(run_cli("show", str(tmp_path / "run"), "--json").stdout)
    by_id = {t["id"]: t["metrics"]["peak_sram_bytes"] for t in front}
    printed = [int(x) for x in re.findall(r"^  #(\d+) ", res.stdout, re.M)]
    assert len(printed) >= 2, res.stdout
    assert [by_id[i] for i in printed] == sorted(by_id[i] for i in printed)


def test_profile_cli_shows_device_costs():
    arch = ChainSpace().sample(random.Random(5))
    res = run_cli(
        "profile",
        "--arch",
        json.dumps(arch),
        "--target",
        "device",
        "--set",
        "target.spec=imx8mp-npu",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    torch.manual_seed(0)
    model = ChainSpace().build(arch, (1, 8, 8), 10)
    want = estimate(model, (1, 8, 8), "imx8mp-npu").metrics()
    for k, v in want.items():
        assert costs[k] == pytest.approx(v), k
    assert costs["macs"] == count_macs(model, (1, 8, 8))
