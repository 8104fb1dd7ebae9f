"""The writer lock of a study directory: one process writes a study at a time.

Two writers on one study would train the same trial twice and collide on its id. The lock is
an advisory ``flock`` on ``DIR/.lock``, so it is released by the kernel when the holder dies
(``kill -9`` leaves no stale lock), and readers (``show``, ``report``) never take it.
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
    """``with StudyLock(dir):`` — held for the writer's whole run."""

    FILENAME = ".lock"

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / self.FILENAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise StudyLocked(
                    f"{self.path.parent} is in use by another hwnas process ({holder[:120]}); "
                    "wait for it to finish or stop it"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
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
