"""`hwnas profile`: every cost of one model, from an arch, an ONNX file or a study's trial."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from hwnas.hardware.profile import (
    OrtCpuMeter,
    TorchCpuMeter,
    TorchCudaMeter,
    export_onnx,
)
from hwnas.space.chain import ChainSpace

ARCH = {
    "stages": [
        {"depth": 1, "width": 8, "ops": ["k3_e1", "k3_e1"]},
        {"depth": 1, "width": 16, "ops": ["k3_e6", "k3_e1", "k3_e1"]},
        {"depth": 1, "width": 16, "ops": ["k3_e1", "k3_e1", "k3_e1"]},
    ]
}


def test_profile_arch_json_and_table():
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--json")
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    model = ChainSpace().build(ARCH, (1, 8, 8), 10)
    assert costs["params"] == sum(p.numel() for p in model.parameters())
    assert costs["macs"] > 0 and costs["peak_memory_bytes"] > 0
    assert 0 < costs["latency_ms"] < 5 and len(costs["latency_block_medians_ms"]) == 6
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--target", "analytic")
    assert res.returncode == 0 and "macs" in res.stdout and "latency_ms" not in res.stdout


def test_profile_onnx_file(tmp_path):
    model = ChainSpace().build(ARCH, (1, 8, 8), 10).eval()
    path = export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    res = run_cli("profile", "--onnx", str(path), "--json")
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    # BatchNorm is folded into the convolutions on export, so the file holds fewer weights
    assert 0 < costs["params"] <= sum(p.numel() for p in model.parameters())
    assert costs["latency_ms"] > 0
    # MACs read from the graph's shapes are the analytic counter's on the module itself;
    # the peak of live tensors lies between the input and the sum of every tensor
    from hwnas.hardware.analytic import analytic_costs

    mine = analytic_costs(model, (1, 8, 8))
    assert costs["macs"] == mine["macs"] > 0
    assert 4 * 8 * 8 < costs["peak_memory_bytes"] <= 2 * mine["peak_memory_bytes"]


def test_profile_bad_input():
    for args, needle in (
        (["--arch", "{bad"], "--arch: not valid JSON"),
        (["--arch", json.dumps({"stages": []})], "chain arch needs"),
        (["--onnx", "/no/such.onnx"], "/no/such.onnx does not exist"),
        (["--arch", json.dumps(ARCH), "--target", "gpu9000"], "target"),
    ):
        res = run_cli("profile", *args)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, (
            res.stderr
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_meters_leave_the_model_where_they_found_it():
    """A cuda-torch target before a cpu-ort cost (configs/cifar10_fast_gpu.yaml's order):
    every ONNX export failed with a model the CUDA meter had left on the GPU."""
    model = ChainSpace().build(ARCH, (1, 8, 8), 10)
    TorchCudaMeter(runs=4, blocks=2, warmup=1).measure(model, (1, 8, 8))
    assert next(model.parameters()).device.type == "cpu"
    assert OrtCpuMeter(runs=4, blocks=2, warmup=1).measure(model.cuda(), (1, 8, 8)).latency_ms > 0
    TorchCpuMeter(runs=4, blocks=2, warmup=1).measure(model, (1, 8, 8))
    assert next(model.parameters()).device.type == "cuda"


def test_onnx_macs_match_the_analytic_count_on_grouped_and_transposed_convs(tmp_path):
    import onnx
    from torch import nn

    from hwnas.hardware.analytic import analytic_costs
    from hwnas.hardware.onnx_costs import onnx_graph_costs

    m = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise
        nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2),
        nn.Flatten(),
        nn.Linear(6 * 13 * 13, 10),
    ).eval()
    path = export_onnx(m, (1, 8, 8), tmp_path / "m.onnx")
    costs = onnx_graph_costs(onnx.load(str(path)))
    assert costs["macs"] == analytic_costs(m, (1, 8, 8))["macs"] > 0
    # the graph as written: the transposed conv's 6x13x13 float32 output beside its flattened
    # copy (a Reshape is a tensor of its own here; a runtime may share the buffer)
    assert costs["peak_memory_bytes"] == 4 * 2 * 6 * 13 * 13
