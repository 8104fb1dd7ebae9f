"""Torch's process-wide thread count, set for a block and given back after it.

``torch.set_num_threads`` governs the whole process, so whoever sets it (an estimator's
``threads``, a latency meter, a one-thread trace) must restore the caller's count, or a later
training in the same process silently runs on another thread count and sums in another order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads_kept(threads: int | None = None) -> Iterator[None]:
    """Run the block (or, as a decorator, the call) with ``threads`` torch threads, or with
    whatever it sets itself when None, and restore the caller's count when it ends."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
