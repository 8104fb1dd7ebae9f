"""Latency through the device agent on loopback vs the local ``cpu-ort`` figure.

Both sides run the same protocol (warm-up, timed blocks, lowest block median, ONNX Runtime,
1 thread) on the same CPU, so their ratio should be 1; the goal is a median absolute relative
difference within 5 %. Readings are interleaved (local, remote, then remote, local...) so that
load from other processes falls on both sides alike. Also the wall-clock cost of one remote
measurement (HTTP, session, timing) against a local one.

Usage: python benchmarks/agent_loopback.py [--archs 5] [--rounds 5] [--no-save]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save

from hwnas.experiment.config import load_config
from hwnas.hardware.config import RemoteTarget
from hwnas.hardware.profile import OrtCpuMeter, onnx_bytes
from hwnas.hardware.remote import RemoteCostModel
from hwnas.space.chain import ChainSpace

SHAPES = [(1, 8, 8), (3, 32, 32)]


def start_agent(token: str, logdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    out, err = logdir / "agent.out", logdir / "agent.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hwnas.cli", "agent", "serve", "--port", "0"],
            stdout=o,
            stderr=e,
            env={**os.environ, "HWNAS_AGENT_TOKEN": token},
        )
    deadline = time.monotonic() + 60
    while not (m := re.search(r"listening on (http://\S+)", out.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"agent did not start: {err.read_text()}")
        time.sleep(0.05)
    return proc, m.group(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--pin",
        type=int,
        default=0,
        metavar="CPU",
        help="run both sides on this core (default 0; -1: no pinning), so the scheduler's "
        "choice of core is not part of the difference",
    )
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()

    space = ChainSpace(load_config(None, []).space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    models = []
    for shape in SHAPES:
        for i, arch in enumerate(archs):
            module = space.build(arch, shape, 10)
            models.append((f"arch{i}@{'x'.join(map(str, shape))}", arch, onnx_bytes(module, shape)))

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_agent(token, Path(tmp))
        pinned = args.pin >= 0 and hasattr(os, "sched_setaffinity")
        if pinned:
            os.sched_setaffinity(0, {args.pin})
            os.sched_setaffinity(proc.pid, {args.pin})
        try:
            settings = {"runs": args.runs, "blocks": args.blocks, "warmup": args.warmup}
            client = RemoteCostModel(
                RemoteTarget(url=url, token=token, threads=1, cache=False, **settings)  # type: ignore[arg-type]
            )
            device = client.health()
            local = OrtCpuMeter(threads=1, **settings)
            load_before = os.getloadavg()
            rows = []
            for name, arch, model in models:
                lo, re_, lo_s, re_s = [], [], [], []
                for r in range(args.rounds):
                    order = ("local", "remote") if r % 2 == 0 else ("remote", "local")
                    for side in order:
                        t0 = time.perf_counter()
                        if side == "local":
                            lo.append(local.measure_onnx(model).latency_ms)
                            lo_s.append(time.perf_counter() - t0)
                        else:
                            re_.append(float(client.measure_onnx(model)["latency_ms"]))
                            re_s.append(time.perf_counter() - t0)
                ratio = statistics.median(re_) / statistics.median(lo)
                rows.append(
                    {
                        "model": name,
                        "describe": space.describe(arch),
                        "onnx_bytes": len(model),
                        "local_ms_median": round(statistics.median(lo), 5),
                        "remote_ms_median": round(statistics.median(re_), 5),
                        "ratio_remote_local": round(ratio, 4),
                        "ratio_of_minima": round(min(re_) / min(lo), 4),
                        "local_readings_ms": [round(x, 5) for x in lo],
                        "remote_readings_ms": [round(x, 5) for x in re_],
                        "local_wall_s_median": round(statistics.median(lo_s), 4),
                        "remote_wall_s_median": round(statistics.median(re_s), 4),
                    }
                )
                print(f"{name}: ratio {ratio:.3f}", file=sys.stderr)
            load_after = os.getloadavg()
        finally:
            proc.kill()
            proc.wait()

    rel = [abs(r["ratio_remote_local"] - 1) for r in rows]
    payload = {
        "protocol": {
            **settings,
            "threads": 1,
            "rounds_interleaved": args.rounds,
            "pinned_core": args.pin if pinned else None,
        },
        "agent": {k: device[k] for k in ("cpu", "cores", "onnxruntime", "hwnas")},
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "median_abs_rel_diff": round(statistics.median(rel), 4),
        "median_abs_rel_diff_of_minima": round(
            statistics.median(abs(r["ratio_of_minima"] - 1) for r in rows), 4
        ),
        "remote_overhead_wall_s_median": round(
            statistics.median(r["remote_wall_s_median"] - r["local_wall_s_median"] for r in rows), 4
        ),
        "max_abs_rel_diff": round(max(rel), 4),
        "within_5pct": sum(x <= 0.05 for x in rel),
        "models_total": len(rows),
        "goal": "median_abs_rel_diff <= 0.05",
        "models": rows,
    }
    if args.no_save:
        import json

        print(json.dumps(payload, indent=2))
    else:
        save("agent-loopback", payload)


if __name__ == "__main__":
    main()
