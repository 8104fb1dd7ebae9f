"""Datasets as uint8 tensors with fixed test splits, seeded validation splits and fast batching.

``load_dataset`` is the entry point; every problem with the user's data settings or files is a
:class:`DataError` with a one-line message (the CLI exits with code 2 on it). The torch-based
names are imported lazily: the config (``hwnas.data.config``) is validated without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hwnas.core.registry import datasets

if TYPE_CHECKING:
    from .base import DataError, Dataset, Split, batches


def load_dataset(cfg: Any, seed: int) -> Dataset:
    """Load the dataset ``cfg`` names and split it: test fixed across seeds, val drawn with
    ``seed``."""
    dataset: Dataset = datasets.create(cfg, seed)
    return dataset


def __getattr__(name: str) -> Any:
    if name in ("DataError", "Dataset", "Split", "batches"):
        return getattr(importlib.import_module("hwnas.data.base"), name)
    raise AttributeError(f"module 'hwnas.data' has no attribute {name!r}")


__all__ = ["DataError", "Dataset", "Split", "batches", "load_dataset"]
