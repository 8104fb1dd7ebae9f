from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import fastest_readings
from torch import nn

from hwnas.hardware.analytic import analytic_costs, count_macs, peak_activation_bytes
from hwnas.hardware.profile import OrtCpuMeter, TorchCpuMeter, onnx_bytes, ort_session, summarise
from hwnas.space.chain import ChainSpace


def test_macs_and_params_of_known_layers():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(256, 10))
    assert count_macs(net, (1, 8, 8)) == 8 * 8 * 4 * 9 + 256 * 10
    costs = analytic_costs(net, (1, 8, 8))
    assert costs["params"] == 36 + 2570
    assert costs["model_bytes"] == 4 * costs["params"]
    assert costs["model_bytes_int8"] == costs["params"]


def test_depthwise_macs():
    net = nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False)
    assert count_macs(net, (8, 16, 16)) == 16 * 16 * 8 * 25


def test_peak_memory_tracks_live_tensors():
    x_bytes, c1, c2 = 1 * 8 * 8 * 4, 4 * 8 * 8 * 4, 2 * 8 * 8 * 4
    out_of_place = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    # during the ReLU: input, conv1 output and ReLU output are alive together
    assert peak_activation_bytes(out_of_place, (1, 8, 8)) == x_bytes + 2 * c1
    in_place = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 1)
    )
    assert peak_activation_bytes(in_place, (1, 8, 8)) == x_bytes + c1 + c2


def test_residual_keeps_input_alive():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return x + self.b(self.a(x))

    t = 4 * 4 * 4 * 4
    # x, a(x), b(a(x)) are alive at once; then the sum
    assert peak_activation_bytes(Res(), (4, 4, 4)) == 3 * t


def test_summarise_ignores_slow_blocks():
    fast = [1.0 + 0.01 * (i % 3) for i in range(30)]
    slow = [1.8] * 30  # a burst of load spoils half the blocks
    t = summarise(
        fast[:10] + slow[:10] + fast[10:20] + slow[10:20] + fast[20:] + slow[20:], blocks=6
    )
    assert t.latency_ms == pytest.approx(1.01, abs=0.01)
    assert len(t.block_medians_ms) == 6 and t.runs == 60


def _chain_models():
    space = ChainSpace()
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(30)]
    macs = [(count_macs(space.build(a, (1, 8, 8), 10), (1, 8, 8)), a) for a in archs]
    macs.sort(key=lambda p: p[0])
    return space, macs[0], macs[-1]


def test_ort_latency_orders_small_and_large_models():
    space, (m_small, a_small), (m_big, a_big) = _chain_models()
    assert m_big > 4 * m_small
    meter = OrtCpuMeter(threads=1, warmup=5, runs=60, blocks=6)
    small_net, big_net = space.build(a_small, (1, 8, 8), 10), space.build(a_big, (1, 8, 8), 10)
    small = meter.measure(small_net, (1, 8, 8))
    big = meter.measure(big_net, (1, 8, 8))
    fast_small, fast_big = fastest_readings(
        lambda: [meter.measure(net, (1, 8, 8)).latency_ms for net in (small_net, big_net)],
        lambda r: r[0] < r[1],
        first=[small.latency_ms, big.latency_ms],
    )
    assert 0 < fast_small < fast_big
    assert small.runs == 60 and small.spread >= 0


def test_torch_cpu_meter_restores_threads():
    before = torch.get_num_threads()
    t = TorchCpuMeter(threads=1, warmup=2, runs=10, blocks=2).measure(nn.Linear(8, 8), (1, 1, 8))
    assert t.latency_ms > 0
    assert torch.get_num_threads() == before


def test_onnx_export_matches_pytorch():
    space = ChainSpace()
    rng = random.Random(2)
    for _ in range(3):
        model = space.build(space.sample(rng), (3, 16, 16), 10).eval()
        sess = ort_session(onnx_bytes(model, (3, 16, 16)))
        x = torch.randn(1, 3, 16, 16)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(ref - got).max() <= 1e-4
