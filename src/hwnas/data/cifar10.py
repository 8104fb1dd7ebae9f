"""CIFAR-10 from an ImageFolder tree/archive or torchvision's python-pickle batches.

Accepted ``data.path``: a directory or tar(.gz) with ``train/<class>/*`` and ``test/<class>/*``
(optionally under one top-level folder); a ``cifar-10-batches-py`` folder or its parent; or
``cifar-10-python.tar.gz``. Whatever the source, it is decoded once into an ``.npz`` cache.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.data.config import DataConfig

from .base import DataError, Dataset, RawArrays, build_dataset, resize_raw
from .imagefolder import (
    arrays_from_images,
    cached,
    check_path,
    decode_entries,
    is_image,
    iter_tar,
    read_image_tree,
)

_PICKLE_NAME = re.compile(r"^(data_batch_\d+|test_batch|batches\.meta)$")
_NATIVE = 32

# numpy's pickle entry points (module moved from numpy.core to numpy._core in numpy 2)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a data file must not run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _unpickle(name: str, data: bytes) -> dict[Any, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any malformed pickle is a data problem, reported in one line
        raise DataError(
            f"data.path: {name} is not a CIFAR-10 pickle batch ({type(exc).__name__})"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"data.path: {name} is not a CIFAR-10 pickle batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_arrays(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(name, data)
    if "data" not in d or "labels" not in d:
        raise DataError(f"data.path: {name} lacks 'data'/'labels' (is it CIFAR-10?)")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d["labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3 * _NATIVE * _NATIVE or len(y) != len(x):
        raise DataError(f"data.path: {name} has data of shape {x.shape}, expected (N, 3072)")
    return x.reshape(-1, 3, _NATIVE, _NATIVE), y


def read_pickles(files: dict[str, bytes], where: Path) -> RawArrays:
    """torchvision's layout: ``data_batch_1..5``, ``test_batch`` and ``batches.meta``."""
    train_names = sorted(
        (n for n in files if n.startswith("data_batch_")), key=lambda n: int(n.rsplit("_", 1)[1])
    )
    if not train_names:
        raise DataError(f"data.path: {where} has no data_batch_* files")
    if "test_batch" not in files:
        raise DataError(f"data.path: {where} has no test_batch file")
    parts = [_batch_arrays(n, files[n]) for n in train_names]
    tx, ty = _batch_arrays("test_batch", files["test_batch"])
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    n_classes = int(max(y.max(), ty.max())) + 1
    names = [str(i) for i in range(n_classes)]
    if "batches.meta" in files:
        meta = _unpickle("batches.meta", files["batches.meta"])
        raw_names = meta.get("label_names")
        if isinstance(raw_names, list) and len(raw_names) >= n_classes:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw_names]
    if y.min() < 0 or ty.min() < 0:
        raise DataError(f"data.path: {where} has negative labels")
    return RawArrays(x, y, tx, ty, names)


def _pickle_dir(path: Path) -> Path | None:
    """The folder holding the pickle batches: ``path`` itself or its ``cifar-10-batches-py``."""
    for d in (path, path / "cifar-10-batches-py"):
        if d.is_dir() and (d / "data_batch_1").is_file():
            return d
    return None


def _read_archive(path: Path) -> RawArrays:
    """One streaming pass that sets pickle batches aside and decodes images as they arrive."""
    pickles: dict[str, bytes] = {}

    def want(parts: tuple[str, ...]) -> bool:
        if not parts:
            return False
        return is_image(parts) or (bool(_PICKLE_NAME.match(parts[-1])) and not _hidden(parts))

    def images() -> Iterator[tuple[tuple[str, ...], bytes]]:
        for parts, data in iter_tar(path, want):
            if is_image(parts):
                yield parts, data
            else:
                pickles[parts[-1]] = data

    names, x, resized = decode_entries(images(), _NATIVE)
    if any(n.startswith("data_batch_") for n in pickles):
        return read_pickles(pickles, path)
    return arrays_from_images(names, x, path, resized)


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def read_cifar10(path: Path) -> RawArrays:
    """Decode any accepted CIFAR-10 source (no caching)."""
    if path.is_dir():
        pdir = _pickle_dir(path)
        if pdir is not None:
            files = {f.name: f.read_bytes() for f in pdir.iterdir() if _PICKLE_NAME.match(f.name)}
            return read_pickles(files, pdir)
        return read_image_tree(path, _NATIVE)
    return _read_archive(path)


def load_cifar10(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR-10 at its native 32 px; another ``resolution`` is resized once and cached too."""
    path = check_path(cfg.path, "cifar10")

    def native() -> RawArrays:
        return cached("cifar10", path, "", cfg.cache_dir, lambda: read_cifar10(path))

    size = cfg.resolution
    if size is None or size == _NATIVE:
        raw = native()
    else:
        raw = cached(
            "cifar10", path, f"size={size}", cfg.cache_dir, lambda: resize_raw(native(), size)
        )
    classes = raw.class_names
    if len(classes) != 10:  # `--data DIR` names cifar10 where data.name is unset
        shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
        raise DataError(
            f"data.path: {path} holds {len(classes)} classes ({shown}), not CIFAR-10's 10; "
            "for your own images set data.name=imagefolder (with data.augment=true for "
            "CIFAR's crops and flips)"
        )
    return build_dataset(
        "cifar10",
        raw,
        seed=seed,
        subset=cfg.subset,
        val_fraction=cfg.val_fraction,
        resolution=None,
    )
