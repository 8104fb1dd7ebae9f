"""What hwnas's cpu-ort reading adds to the runtime's own time, on nets small enough to show it.

For each net (a tiny digits CNN, an FBNet net of mostly skipped blocks, a chain net at
32x32) it times, side by side in one process, rounds alternating: ``OrtCpuMeter`` (the
reading a search stores, through ``InferenceSession.run_with_iobinding`` with RunOptions),
the same wrapper without RunOptions, and the session's C++ call alone (the floor). Prints the
median of each and the meter's excess over the floor. ONNX Runtime 1.32's wrapper looked a
run-config entry up on every call with options, and a missing entry cost ~40-90 us a run
(an exception raised and caught inside), about the whole time of a small net: the meter sets
the entry, and this script shows what is left.

Usage: python benchmarks/ort_run_overhead.py [--rounds 7] [--tag T]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
from _common import save
from torch import nn

from hwnas.hardware.profile import OrtCpuMeter, onnx_bytes, ort_inputs, ort_session
from hwnas.space.chain import ChainSpace


def nets() -> dict[str, tuple[nn.Module, tuple[int, int, int]]]:
    tiny = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)
    )
    chain = ChainSpace()
    arch = chain.sample(random.Random(1))
    out = {
        "tiny 1x8x8": (tiny.eval(), (1, 8, 8)),
        "chain 3x32x32": (chain.build(arch, (3, 32, 32), 10).eval(), (3, 32, 32)),
    }
    try:
        from hwnas.experiment.config import load_config
        from hwnas.space import make_space

        fb = make_space(load_config(None, ["space=fbnet", "space.width_multiplier=0.25"]).space)
        skip = fb.from_choices([len(c) - 1 for c in fb.choices()])  # type: ignore[attr-defined]
        out["fbnet skips 3x32x32"] = (fb.build(skip, (3, 32, 32), 10).eval(), (3, 32, 32))
    except Exception as exc:  # noqa: BLE001 - the other nets still tell
        print(f"fbnet net skipped: {exc}")
    return out


def loop_us(call, n: int = 400) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - t0) / n * 1e6


def compare(data: bytes, meter: OrtCpuMeter, rounds: int) -> dict[str, float]:
    """Median microseconds a run of each way, rounds alternating."""
    sess = ort_session(data, 1)
    bind = sess.io_binding()
    for name, dims, dtype in ort_inputs(sess, 1):
        bind.bind_cpu_input(name, np.zeros(dims, dtype))
    for o in sess.get_outputs():
        bind.bind_output(o.name)
    plain = ort.RunOptions()  # options as the meter had them before
    plain.log_severity_level = 4
    calls = {
        "wrapper, options without the entry": lambda: sess.run_with_iobinding(bind, plain),
        "wrapper, no options": lambda: sess.run_with_iobinding(bind),
        "C++ call alone": lambda: sess._sess.run_with_iobinding(bind._iobinding, None),
    }
    for call in calls.values():
        loop_us(call, 100)  # warm-up
    got: dict[str, list[float]] = {"OrtCpuMeter": [], **{k: [] for k in calls}}
    for _ in range(rounds):
        got["OrtCpuMeter"].append(meter.measure_onnx(data).latency_ms * 1000)
        for k, call in calls.items():
            got[k].append(loop_us(call))
    return {k: round(statistics.median(v), 2) for k, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    meter = OrtCpuMeter(threads=1, warmup=20, runs=200, blocks=4)
    results = {}
    for label, (model, shape) in nets().items():
        med = compare(onnx_bytes(model, shape, 1), meter, a.rounds)
        excess = round(med["OrtCpuMeter"] - med["C++ call alone"], 2)
        results[label] = {"median_us": med, "meter_excess_us": excess}
        print(label, med, f"meter - floor = {excess} us", flush=True)
    save(
        "ort_run_overhead" + (f"-{a.tag}" if a.tag else ""),
        {"onnxruntime": ort.__version__, "rounds": a.rounds, "nets": results},
    )


if __name__ == "__main__":
    main()
