"""The writer lock of a study directory: one process writes a study at a time.

Two writers on one study would train the same trial twice and collide on its id. The lock is
an advisory ``flock`` on the directory itself, so it is released by the kernel when the holder
dies (``kill -9`` leaves no stale lock), taking it writes nothing (a start that is then refused
leaves the directory as it was), and readers (``show``, ``report``, ``export``) never take it.
The holder names itself in ``DIR/.lock`` (pid and host) once its start is accepted, so a
refused second writer can say who holds the study.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from types import TracebackType

from hwnas.core.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, nothing is refused
    fcntl = None  # type: ignore[assignment]


class StudyLocked(UserError):
    """Another process writes this study."""


class StudyLock:
    """``with StudyLock(dir):`` — held for the writer's whole run (the directory must exist)."""

    INFO = ".lock"

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StudyLocked(
                    f"{self.dir} is in use by another hwnas process ({self._holder()}); "
                    "wait for it to finish or stop it"
                ) from None
        self._fd = fd

    def announce(self) -> None:
        """Name this process as the holder (after its start was accepted)."""
        with contextlib.suppress(OSError):
            (self.dir / self.INFO).write_text(f"pid {os.getpid()} on {socket.gethostname()}")

    def _holder(self) -> str:
        try:
            return (self.dir / self.INFO).read_text()[:120].strip() or "holder unknown"
        except OSError:
            return "holder unknown"

    def writer_gone(self) -> bool:
        """Whether no writer holds the study now, so trials left ``running`` were
        interrupted. Asked without touching the lock, which a reader must never take (a
        writer starting meanwhile would be refused). A writer is taken as alive if the
        kernel's lock table (Linux) shows the lock held, which sees other pid namespaces, or
        if the pid named in ``.lock`` lives on this host; gone if the table shows no lock
        (and that pid is not alive), or, without a table, if that pid is dead."""
        held = _flock_held(self.dir)
        if held:
            return False
        dead = self._named_writer_dead()
        if held is None:  # no lock table: only a pid known dead says so
            return dead is True
        return dead is not False  # no lock held, unless the named pid still lives

    def _named_writer_dead(self) -> bool | None:
        """Whether the pid ``.lock`` names is dead on this host (None: not known)."""
        try:
            pid_text, _, host = (self.dir / self.INFO).read_text()[:120].partition(" on ")
            pid = int(pid_text.removeprefix("pid "))
        except (OSError, ValueError):
            return None
        if host.strip() != socket.gethostname():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, someone else's
            return False
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _flock_held(path: Path) -> bool | None:
    """Whether any process holds a ``flock`` on ``path``, from ``/proc/locks``; None where
    that table cannot be read (not Linux)."""
    try:
        table = Path("/proc/locks").read_text()
        st = os.stat(path)
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "N: FLOCK ADVISORY WRITE pid dev:ino ..."; a "->" line waits for a lock, holds none
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == ident:
            return True
    return False
