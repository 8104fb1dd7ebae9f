"""scikit-learn's bundled 8x8 handwritten digits: offline, tiny, and enough to smoke-test a search."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sk_load_digits

from hwnas.data.config import DataConfig

from .base import Dataset, RawArrays, build_dataset


def read_digits() -> RawArrays:
    """1797 images, values 0..16 scaled to 0..255 uint8, shape (N, 1, 8, 8); no test split.

    ``build_dataset`` carves the test split with a fixed seed (not the experiment's), so every
    experiment reports on the same 20 %.
    """
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    x = np.rint(images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    return RawArrays(x, y, None, None, [str(c) for c in bunch.target_names])


def load_digits(cfg: DataConfig, seed: int) -> Dataset:
    """Digits with the configured subset, validation share and optional (bilinear) resize."""
    return build_dataset(
        "digits",
        read_digits(),
        seed=seed,
        subset=cfg.subset,
        val_fraction=cfg.val_fraction,
        resolution=cfg.resolution,
    )
