"""The Rich progress bar every long command shows (search, LUT build, measuring archs).

One layout, so they all read alike: label, bar, done/total, any extra fields, elapsed, ETA.
Rich is imported only when a bar is shown (``--help`` and ``-q`` runs stay fast).
"""

from __future__ import annotations

from typing import Any


def make_progress(label: str, console: Any, *fields: str) -> Any:
    """A not yet started ``rich.progress.Progress``; ``fields`` are extra ``TextColumn``
    templates such as ``"best {task.fields[best]}"``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )
