"""Datasets as uint8 tensors with fixed test splits, seeded validation splits and fast batching.

``load_dataset`` is the entry point; every problem with the user's data settings or files is a
:class:`DataError` with a one-line message (the CLI exits with code 2 on it).
"""

from __future__ import annotations

from typing import Any

from hwnas.core.registry import datasets

from .base import DataError, Dataset, Split, batches


def load_dataset(cfg: Any, seed: int) -> Dataset:
    """Load the dataset ``cfg`` names and split it: test fixed across seeds, val drawn with
    ``seed``."""
    dataset: Dataset = datasets.create(cfg, seed)
    return dataset


__all__ = ["DataError", "Dataset", "Split", "batches", "load_dataset"]
