"""Worker faults: ``kill -9`` of a worker process mid-trial, several times in one search.

    python benchmarks/worker_kill.py [--config C] [--data PATH] [--workers 4] [--budget 24]
        [--kills 3] [--set KEY=VALUE ...] [--tag T]

One search with the process executor (``--workers``; with ``device: cuda`` on one GPU every
worker shares it, on several each claims its own). Each time another share of the budget has
completed, one worker process that is training is killed (SIGKILL: the OOM killer, a lost
GPU). The pool breaks, every trial in flight runs again, and the search must end with the
whole budget complete: 0 trials lost, 0 trained twice as two trials (counted as repeated archs:
use it without a multi-fidelity scheduler, whose promotions repeat archs), ids contiguous, the
driver's exit code 0. Prints and saves the counts (benchmarks/results/DATE-worker_kill[-TAG].json).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from faults import children  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rows(db: Path) -> list[tuple[int, str, str]]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT id, status, arch FROM trials ORDER BY id").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def workers(driver: int) -> list[int]:
    """The driver's pool processes (spawned: their command line names ``spawn_main``)."""
    found = []
    for pid in children(driver):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            found.append(pid)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="", help="default: the built-in digits search")
    ap.add_argument("--data", default="", help="dataset path (a config's, or cifar10)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--budget", type=int, default=24)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="hwnas-worker-kill-")) / "run"
    cmd = [sys.executable, "-m", "hwnas.cli", "search", "--out", str(out)]
    cmd += ["--config", a.config] if a.config else []
    cmd += ["--budget", str(a.budget), "--workers", str(a.workers), "-q"]
    cmd += ["--data", a.data] if a.data else []
    for s in a.set:
        cmd += ["--set", s]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    db = out / "study.db"
    kills: list[dict[str, Any]] = []
    marks = [a.budget * (i + 1) // (a.kills + 1) for i in range(a.kills)]
    while proc.poll() is None and len(kills) < a.kills:
        time.sleep(0.2)
        now = rows(db)
        done = sum(r[1] == "complete" for r in now)
        running = [r[0] for r in now if r[1] == "running"]
        pool = workers(proc.pid)
        # every worker busy (as many trials running as workers): the victim is training
        if done >= marks[len(kills)] and pool and len(running) >= len(pool):
            victim = pool[len(kills) % len(pool)]
            os.kill(victim, signal.SIGKILL)
            kills.append(
                {"at_s": round(time.monotonic() - t0, 1), "complete": done, "running": running}
            )
            print(f"killed worker {victim} with {done} complete, trials {running} running")
    _, err = proc.communicate()
    wall = time.monotonic() - t0
    final = rows(db)
    log = (out / "hwnas.log").read_text() if (out / "hwnas.log").exists() else ""
    archs = [r[2] for r in final]
    statuses = [r[1] for r in final]
    payload = {
        "command": " ".join(cmd),
        "workers": a.workers,
        "budget": a.budget,
        "kills": kills,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "trials": len(final),
        "complete": statuses.count("complete"),
        "failed": statuses.count("failed"),
        "lost": a.budget - statuses.count("complete"),
        "trained_twice": len(archs) - len(set(archs)),
        "ids_contiguous": [r[0] for r in final] == list(range(len(final))),
        "re_runs_logged": log.count("a worker process died"),
        "stderr_tail": err.strip().splitlines()[-3:],
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    save("worker_kill" + (f"-{a.tag}" if a.tag else ""), payload)


if __name__ == "__main__":
    main()
