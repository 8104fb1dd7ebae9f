"""Faults: ``kill -9`` of the search driver at random moments, then the same command again.

    python benchmarks/faults.py [--kills 20] [--workers 2] [--seed 0] [--tag T]

One digits search on the fast-CNN space (16x16 inputs, the fast recipe on the CPU) with a
final-training stage, timed on the CPU with ONNX Runtime, so kills land in training, store
writes, re-timing and final training (every second kill waits for the next of these phases in
turn; each kill's moment is classified from the study and its log, and counted). After each
kill: the driver's workers must be gone within 10 s; every trial that had finished must be
unchanged at the end (id, arch, status, accuracy, curve, test accuracy); no network may be
trained twice in the search stage; the ids stay contiguous. One SIGINT along the way must exit
130. Then ``hwnas export`` is killed at random moments: the study must stay byte-identical and
the output either absent or a whole model. Prints and saves the counts
(benchmarks/results/DATE-faults[-TAG].json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
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

SETS = [
    "data.resolution=16",
    "space=fastcnn",
    "space.groups=[{widths: [8, 16, 24], depths: [1, 2, 3]}, {widths: [16, 24, 32], depths: [1, 2, 3]}]",
    "estimator.recipe=fast",
    "estimator.epochs=3",
    "estimator.fast.batch_size=128",
    "target=cpu-ort",
    "target.runs=10",
    "target.blocks=2",
    "target.warmup=2",
    "strategy.population=4",
    "strategy.sample_size=2",
    "final.repeats=1",
    "final.epochs=2",
    "final.max_models=2",
]


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc: Linux)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


PHASES = ["search training", "re-timing", "final training", "starting or between trials"]


def moment(out: Path) -> str:
    """What the driver is doing: training a trial (search or final), re-timing the front,
    finished (the report, shutting down), or between trials (store writes, the strategy)."""
    db = out / "study.db"
    if db.exists():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            stages = {r[0] for r in con.execute("SELECT stage FROM trials WHERE status='running'")}
        except sqlite3.Error:
            stages = set()
        finally:
            con.close()
        if "final" in stages:
            return "final training"
        if stages:
            return "search training"
    log = out / "hwnas.log"
    run = (log.read_text(errors="replace") if log.exists() else "").split(" INFO search ")[-1]
    if "done (" in run:
        return "finished (report, shutting down)"
    if "re-timing" in run and "final training:" not in run:
        return "re-timing"
    return "starting or between trials"


def _finished(db: Path) -> dict[int, tuple[Any, ...]]:
    """Finished trials: what must never change once written."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT id, arch, status, metrics, curve, stage FROM trials WHERE status != 'running'"
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        con.close()
    out = {}
    for tid, arch, status, metrics, curve, stage in rows:
        m = json.loads(metrics)
        # a search trial's test accuracy is added at the end, if it is on the front; a final
        # training's is its own result
        names = ("accuracy", "test_accuracy") if stage == "final" else ("accuracy",)
        keep = {k: m.get(k) for k in names}
        out[tid] = (arch, status, json.dumps(keep, sort_keys=True), curve, stage)
    return out


def _digest(study: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in study.iterdir() if p.is_file()}


def export_kills(
    study: Path,
    trial: int,
    kills: int,
    rng: random.Random,
    env: dict[str, str],
    problems: list[str],
) -> dict[str, int]:
    """``hwnas export`` killed at random moments: the study unchanged, the output whole or
    absent. Returns how the outputs were left."""
    import onnx

    before = _digest(study)
    left = {"absent": 0, "whole": 0, "broken": 0, "temporary files": 0}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "m.onnx"
        for _ in range(kills):
            out.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "hwnas.cli", "export", str(study), "--trial", str(trial)]
            proc = subprocess.Popen(
                [*cmd, "--output", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            time.sleep(rng.uniform(0.3, 3.0))
            proc.kill()
            proc.wait()
            if not out.exists():
                left["absent"] += 1
            else:
                try:
                    onnx.checker.check_model(onnx.load(str(out)))
                    left["whole"] += 1
                except Exception:  # noqa: BLE001 - any failure to load is a broken file
                    left["broken"] += 1
                    problems.append("export killed: a broken model under the output name")
            left["temporary files"] += len([p for p in Path(d).iterdir() if p.name != "m.onnx"])
            for p in Path(d).iterdir():
                p.unlink()
    if _digest(study) != before:
        problems.append("export changed the study's files")
    return left


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-kills", type=int, default=10)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "study"
        db = out / "study.db"
        cmd = [sys.executable, "-m", "hwnas.cli", "search", "--out", str(out), "-q"]
        cmd += ["--budget", str(args.budget), "--workers", str(args.workers)]
        for s in SETS:
            cmd += ["--set", s]
        seen: dict[int, tuple[Any, ...]] = {}
        kills = orphans = 0
        moments: dict[str, int] = {}
        turn = 0  # the phase the next targeted kill waits for
        sigint_rc = None
        sigint_at = ""
        t0 = time.monotonic()
        while kills < args.kills:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            if kills % 2 == 0:  # a random moment
                time.sleep(rng.uniform(1.0, 8.0))
            else:  # a random moment inside the next phase in turn, so every phase is hit
                wanted = PHASES[turn % len(PHASES)]
                while proc.poll() is None and moment(out) != wanted:
                    time.sleep(0.05)
                if proc.poll() is None:
                    time.sleep(rng.uniform(0.0, 0.5))
                else:
                    turn += 1  # this run never reached it: try the next phase
            if proc.poll() is not None:  # finished before the kill: start a bigger search
                cmd[cmd.index("--budget") + 1] = str(int(cmd[cmd.index("--budget") + 1]) + 4)
                continue
            workers = children(proc.pid)
            if kills == args.kills // 2 and sigint_rc is None:
                sigint_at = moment(out)  # once finished, a late Ctrl-C leaves exit 0
                proc.send_signal(signal.SIGINT)
                try:
                    sigint_rc = proc.wait(120)
                except subprocess.TimeoutExpired:
                    problems.append("SIGINT: no exit within 120 s")
                    proc.kill()
                    proc.wait()
            else:
                where = moment(out)
                proc.kill()
                proc.wait()
                kills += 1
                moments[where] = moments.get(where, 0) + 1
                turn += kills % 2 == 0  # a targeted kill was made: the next phase
            deadline = time.monotonic() + 10
            while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = [w for w in workers if Path(f"/proc/{w}").exists()]
            if left:
                orphans += len(left)
                for w in left:
                    os.kill(w, signal.SIGKILL)
            now = _finished(db)
            for tid, row in seen.items():
                if now.get(tid) != row:
                    problems.append(f"trial {tid} changed or lost after kill {kills}")
            seen.update(now)
        final = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if final.returncode != 0:
            problems.append(f"final run exit {final.returncode}: {final.stderr[-300:]}")
        now = _finished(db)
        for tid, row in seen.items():
            if now.get(tid) != row:
                problems.append(f"trial {tid} changed or lost at the end")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        ids = [r[0] for r in con.execute("SELECT id FROM trials ORDER BY id")]
        keys = [
            r[0]
            for r in con.execute(
                "SELECT trial_key FROM trials WHERE stage = 'search' AND status = 'complete'"
            )
        ]
        running = con.execute("SELECT count(*) FROM trials WHERE status='running'").fetchone()[0]
        con.close()
        if ids != list(range(len(ids))):
            problems.append("ids not contiguous")
        if len(keys) != len(set(keys)):
            problems.append(f"{len(keys) - len(set(keys))} networks trained twice")
        if running:
            problems.append(f"{running} trials left running")
        if sigint_rc not in (130, None) and not (
            sigint_rc == 0 and sigint_at.startswith("finished")
        ):
            problems.append(f"SIGINT exit {sigint_rc}")
        exports = export_kills(out, ids[-1], args.export_kills, rng, env, problems)
    payload = {
        "kills": kills,
        "sigint_exit": sigint_rc,
        "sigint_moment": sigint_at,
        "workers": args.workers,
        "trials_at_end": len(ids),
        "finished_trials_checked": len(seen),
        "orphan_workers": orphans,
        "kill_moments": moments,
        "export_kills": exports,
        "problems": problems,
        "seconds": round(time.monotonic() - t0, 1),
    }
    save("faults" + (f"-{args.tag}" if args.tag else ""), payload)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
