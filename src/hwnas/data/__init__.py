"""Datasets as uint8 tensors with fixed test splits, seeded validation splits and fast batching.

``load_dataset`` is the entry point; every problem with the user's data settings or files is a
:class:`DataError` with a one-line message (the CLI exits with code 2 on it).
"""

from __future__ import annotations

from hwnas.experiment.config import DataConfig

from .base import DataError, Dataset, Split, batches


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load ``cfg.name`` and split it: test fixed across seeds, val drawn with ``seed``."""
    if cfg.name == "digits":
        from .digits import load_digits

        return load_digits(cfg, seed)
    if cfg.name == "cifar10":
        from .cifar10 import load_cifar10

        return load_cifar10(cfg, seed)
    if cfg.name == "imagefolder":
        from .imagefolder import load_imagefolder

        return load_imagefolder(cfg, seed)
    raise DataError(f"data.name: unknown dataset {cfg.name!r}")


__all__ = ["DataError", "Dataset", "Split", "batches", "load_dataset"]
