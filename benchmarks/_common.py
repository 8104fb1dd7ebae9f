"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    try:
        from hwnas.hardware.host import cpu_model
    except ImportError:  # an older hwnas, benchmarked side by side with this one
        return f"{platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def mean_std(vals: list[float]) -> dict[str, float] | None:
    """``{mean, std, n}`` of ``vals`` (std 0 for one value), None for none."""
    if not vals:
        return None
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "n": len(vals),
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{time.strftime('%Y-%m-%d')}-{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))
    print(f"saved {path}")
    return path


def hwnas(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SystemExit(f"hwnas {' '.join(args)} failed:\n{res.stderr}")
    return res


def timed_search(config: str, out: Path, data: str, sets: list[str]) -> float:
    """``hwnas search --config CONFIG --out OUT --quiet [--data DATA] --set ...`` (resumes a
    study already there); its wall seconds."""
    args = ["search", "--config", config, "--out", str(out), "--quiet"]
    args += ["--data", data] if data else []
    for s in sets:
        args += ["--set", s]
    t0 = time.monotonic()
    hwnas(*args)
    return time.monotonic() - t0
