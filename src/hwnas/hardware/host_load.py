"""How many trainings share this host right now, so a latency reading can say it was disturbed.

Each evaluation holds a marker file, locked with ``flock``, in a per-user folder of the
system's temporary directory while it trains; a reading counts the markers whose lock another
process holds. The kernel drops a dead process's lock, so a killed worker never flags readings
forever, and its file is removed by the next count. It asks the host, not the driver, so it
sees trainings of any executor (process pool, Ray workers on one node) and of other studies.
Where ``fcntl`` is missing (Windows) nothing is counted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_MINE: set[str] = set()  # markers this process holds


def marker_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"hwnas-training-{os.getuid()}"


@contextlib.contextmanager
def training() -> Iterator[None]:
    """Mark this process as training on the host for the duration of the block."""
    marked = _mark() if fcntl is not None else None
    try:
        yield
    finally:
        if marked is not None:
            path, fd = marked
            _MINE.discard(path.name)
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)


def _mark() -> tuple[Path, int] | None:
    """A marker file, locked before it gets a name others count; None if the temporary
    folder cannot hold one (the trial then trains unmarked rather than fail)."""
    folder = marker_dir()
    name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    hidden = folder / f".{name}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(hidden, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(hidden, folder / name)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            hidden.unlink()
        return None
    _MINE.add(name)
    return folder / name, fd


def others_training() -> int:
    """Trainings of other processes on this host right now (this process's own, in any
    thread, are not counted: a reading never waits for the trial it belongs to)."""
    if fcntl is None:
        return 0
    try:
        names = [p for p in marker_dir().iterdir() if p.name not in _MINE]
    except OSError:
        return 0
    busy = 0
    for path in names:
        if not path.name.startswith("."):
            busy += _held(path)
        elif _older_than(path, 60.0):  # not yet named: never counted; tidied once surely dead
            _held(path)  # far beyond the moment naming takes: a free lock means it died
    return busy


def sharing_warning() -> str | None:
    """One line for a search about to start beside other hwnas trainings on this host, or
    None. Processes that each train on every core wait on each other's threads (a 2-core
    host ran a one-shot epoch 15-40x slower), and a user who started them by hand is the one
    who can give each its share; the search itself only re-times its disturbed readings."""
    n = others_training()
    if not n:
        return None
    return (
        f"{n} other hwnas training{'s' if n > 1 else ''} running on this host "
        f"{'share' if n > 1 else 'shares'} its cores: this search trains slower and "
        "re-times its disturbed latency readings; give each search its share with "
        "OMP_NUM_THREADS or estimator.threads"
    )


def _held(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock. A marker nobody holds is removed: its
    process died and the kernel released the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # removed meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= seconds
    except OSError:
        return False
