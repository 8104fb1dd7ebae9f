"""Ctrl-C while the process executor starts its workers: does a worker print a traceback?

    python benchmarks/interrupt_spawn.py [--runs 40] [--tag T]

Each run is a fresh Python that builds a spawn-context pool of 2 workers the way
``ProcessExecutor`` does, submits 2 jobs (each submit may start a worker) and sends itself
SIGINT at a random moment within the first 4 ms; the driver catches the interrupt and shuts
the pool down as the search does on Ctrl-C. A run fails when anything on its stderr is a
traceback (the driver's own KeyboardInterrupt is caught, so any traceback is a worker's: an
``EOFError`` on an empty start-up pipe, or a KeyboardInterrupt while it imports). In one call:
submits inside ``_spawn_guard`` (as shipped), then bare. Prints and saves the counts
(benchmarks/results/DATE-interrupt_spawn[-TAG].json).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import save

CHILD = r"""
import contextlib, multiprocessing, os, random, signal, sys, threading, time
from concurrent.futures import ProcessPoolExecutor
from hwnas.experiment.executor import _spawn_guard

def init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

def work(x):
    time.sleep(0.2)
    return x

if __name__ == "__main__":
    guard = _spawn_guard if sys.argv[1] == "guarded" else contextlib.nullcontext
    random.seed(int(sys.argv[2]))
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=init)
    delay = random.uniform(0, 0.004)
    try:
        threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        for i in range(2):
            with guard():
                pool.submit(work, i)
        time.sleep(1)
    except KeyboardInterrupt:
        pass
    for p in list(pool._processes.values()):
        p.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    counts = {}
    # a file, not -c: spawned workers import the driver's __main__ to find `init` and `work`
    child = Path(tempfile.mkdtemp()) / "interrupt_child.py"
    child.write_text(CHILD)
    for mode in ("guarded", "bare"):
        bad = 0
        for seed in range(a.runs):
            r = subprocess.run(
                [sys.executable, str(child), mode, str(seed)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            bad += "Traceback" in r.stderr
        counts[mode] = bad
        print(f"{mode}: a worker traceback in {bad} of {a.runs} runs")
    print(f"{a.runs} runs of each, one after the other, in one call")
    name = "interrupt_spawn" + (f"-{a.tag}" if a.tag else "")
    save(name, {"runs": a.runs, "with_traceback": counts})


if __name__ == "__main__":
    main()
