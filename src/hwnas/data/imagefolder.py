"""Class-per-folder image datasets from a directory or a tar archive, decoded once and cached.

Layouts (a common top-level folder prefix is allowed and detected):
``train/<class>/<image>`` with ``val/<class>/`` and ``test/<class>/`` beside it (each
optional: a missing one is carved from train), or just ``<class>/<image>`` (then a fixed seed
carves the test split). Archives are streamed, never extracted, so read-only or small disks
work and nothing is left behind.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import itertools
import lzma
import multiprocessing
import os
import sys
import tarfile
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from hwnas.data.config import DataConfig

from .base import (
    DataError,
    Dataset,
    RawArrays,
    build_dataset,
    cache_file,
    cache_root,
    load_cached,
    save_cached,
)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}
)
#: split folders and the split each names (a validation folder replaces the carved split)
SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
_CHUNK = 512  # images per decode task: large enough to amortise IPC, small enough to pipeline

Entry = tuple[tuple[str, ...], bytes]  # (path parts relative to the root, encoded bytes)


def check_path(path: str | None, kind: str) -> Path:
    """The configured data path, or a one-line DataError saying what is wrong with it."""
    if not path:
        raise DataError(f"data.path is required for {kind}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data.path: {p} does not exist")
    if not (p.is_dir() or p.is_file()):
        raise DataError(f"data.path: {p} is neither a directory nor an archive file")
    return p


def _skipped(parts: tuple[str, ...]) -> bool:
    """Hidden files and macOS resource forks (``__MACOSX/``, ``._x.jpg``) are not images."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def is_image(parts: tuple[str, ...]) -> bool:
    return (
        bool(parts)
        and PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES
        and not _skipped(parts)
    )


# ---------------------------------------------------------------------------- reading
def _decompressed(path: Path) -> io.BufferedIOBase:
    """The archive's bytes, decompressed by the module its magic number names."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def iter_tar(path: Path, want: Callable[[tuple[str, ...]], bool]) -> Iterator[Entry]:
    """Stream the regular members ``want`` accepts from a (possibly compressed) tar archive."""
    try:
        with _decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = tuple(
                    p for p in PurePosixPath(member.name).parts if p not in ("/", ".", "")
                )
                if not want(parts):
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                yield parts, fh.read()
            # tar stops at its end-of-archive blocks and takes a stream cut at a member
            # boundary for the end; reading the compressed stream to its end makes the
            # decompressor check its trailer, so a truncated download is an error
            while raw.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise DataError(f"data.path: {path} is not a readable archive ({_short(exc)})") from None


def iter_dir(root: Path, want: Callable[[tuple[str, ...]], bool]) -> Iterator[Entry]:
    """Files ``want`` accepts under ``root``, in sorted order; symlinked folders are followed,
    each real folder once (a symlink loop would otherwise be walked forever)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        rel = Path(dirpath).relative_to(root).parts
        for name in sorted(files):
            parts = (*rel, name)
            if want(parts):
                try:
                    yield parts, Path(dirpath, name).read_bytes()
                except OSError as exc:
                    raise DataError(
                        f"data.path: cannot read {Path(dirpath, name)} ({_short(exc)})"
                    ) from None


def iter_source(path: Path, want: Callable[[tuple[str, ...]], bool]) -> Iterator[Entry]:
    return iter_dir(path, want) if path.is_dir() else iter_tar(path, want)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


# --------------------------------------------------------------------------- decoding
def decode_image(data: bytes, size: int) -> tuple[np.ndarray, bool]:
    """Encoded bytes -> (size, size, 3) uint8 RGB and whether the image was of another size
    (then resized: bilinear, squashed where not square)."""
    im: Image.Image = Image.open(io.BytesIO(data))
    own = im.size
    im.draft("RGB", (size, size))  # JPEG: let libjpeg downscale by 1/2..1/8 while decoding
    if im.mode != "RGB":
        im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.frombuffer(im.tobytes(), dtype=np.uint8).reshape(size, size, 3), own != (size, size)


def _why_not(exc: BaseException) -> str:
    """Pillow's reason an image did not decode, without the in-memory buffer it names
    (``cannot identify image file <_io.BytesIO object at 0x7f...>``)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    return _short(exc)


def own_size(data: bytes, name: str) -> int:
    """The input size an image asks for: its larger side (read from its header alone)."""
    try:
        return max(Image.open(io.BytesIO(data)).size)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(f"data.path: cannot decode image {name} ({_why_not(exc)})") from None


def decode_chunk(items: list[tuple[str, bytes]], size: int) -> tuple[np.ndarray, int]:
    """Decode a list of ``(name, bytes)`` (the name serves the error message); with the
    number of images that were resized."""
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    resized = 0
    for i, (name, data) in enumerate(items):
        try:
            out[i], other = decode_image(data, size)
            resized += other
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            OSError,
            ValueError,
            SyntaxError,
        ) as exc:
            raise DataError(f"data.path: cannot decode image {name} ({_why_not(exc)})") from None
    return out, resized


def _workers() -> int:
    """Decode processes: ``$HWNAS_DECODE_WORKERS``, else usable cores - 1 (at most 8).

    The main process is busy reading the archive, so one core is left to it; with 2 cores a
    pool measured no faster than decoding in-process, with 16 it is about 2x faster (~5 s).
    """
    env = os.environ.get("HWNAS_DECODE_WORKERS", "").strip()
    if env.isdigit():
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, 8))


class _Decoder:
    """Decodes chunks in a fork pool when that helps, in this process otherwise.

    Any pool trouble (no fork, no semaphores in a sandbox, a worker killed) falls back to
    decoding the outstanding chunks here, so the pool can only make loading faster.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.results: list[np.ndarray] = []
        self.resized = 0
        self.pending: deque[
            tuple[list[tuple[str, bytes]], Future[tuple[np.ndarray, int]] | None]
        ] = deque()
        self.pool: ProcessPoolExecutor | None = None
        self.pool_failed = False
        self.workers = _workers()
        self.submitted = 0

    def _start_pool(self) -> None:
        if self.pool is not None or self.pool_failed or self.workers < 2:
            return
        if not sys.platform.startswith("linux"):  # only fork is cheap enough for this
            self.pool_failed = True
            return
        try:
            ctx = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        except (OSError, ValueError, ImportError, NotImplementedError):
            self.pool_failed = True

    def submit(self, chunk: list[tuple[str, bytes]]) -> None:
        """Queue a chunk; the first one is decoded here, so small datasets never fork."""
        fut: Future[tuple[np.ndarray, int]] | None = None
        if self.submitted > 0:
            self._start_pool()
        self.submitted += 1
        if self.pool is not None:
            try:
                with warnings.catch_warnings():
                    # Python >= 3.12 warns on any fork beside threads; the workers only decode
                    # with Pillow (no locks shared with torch), like DataLoader's fork workers
                    warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
                    fut = self.pool.submit(decode_chunk, chunk, self.size)
            except (BrokenProcessPool, RuntimeError, OSError):
                self._drop_pool()
        self.pending.append((chunk, fut))
        while len(self.pending) > 2 * max(self.workers, 1):
            self._collect_one()

    def _collect_one(self) -> None:
        chunk, fut = self.pending.popleft()
        if fut is not None:
            try:
                self._keep(fut.result())
                return
            except DataError:
                self._drop_pool()
                raise
            except Exception:  # a dead worker, a cancelled task, IPC trouble: decode it here
                self._drop_pool()
        self._keep(decode_chunk(chunk, self.size))

    def _keep(self, decoded: tuple[np.ndarray, int]) -> None:
        self.results.append(decoded[0])
        self.resized += decoded[1]

    def _drop_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool, self.pool_failed = None, True

    def finish(self) -> np.ndarray:
        try:
            while self.pending:
                self._collect_one()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
                self.pool = None
        if not self.results:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return np.concatenate(self.results)


def decode_entries(
    entries: Iterable[Entry], size: int | None
) -> tuple[list[tuple[str, ...]], np.ndarray, int]:
    """Decode all images of ``entries`` (pipelined with reading them) at ``size`` (None: the
    first image's own, its larger side); returns names, NHWC and how many were resized."""
    names: list[tuple[str, ...]] = []
    stream = iter(entries)
    first = next(stream, None)
    if first is None:
        return [], np.zeros((0, size or 1, size or 1, 3), np.uint8), 0
    if size is None:
        size = own_size(first[1], "/".join(first[0]))
    decoder = _Decoder(size)
    chunk: list[tuple[str, bytes]] = []
    try:
        for parts, data in itertools.chain([first], stream):
            names.append(parts)
            chunk.append(("/".join(parts), data))
            if len(chunk) == _CHUNK:
                decoder.submit(chunk)
                chunk = []
        if chunk:
            decoder.submit(chunk)
    except BaseException:
        decoder._drop_pool()
        raise
    return names, decoder.finish(), decoder.resized


# ----------------------------------------------------------------------------- layout
def assign_layout(
    names: list[tuple[str, ...]], where: Path
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Work out split and class of every image: ``(class_names, labels, split)``, split 0
    train, 1 validation, 2 test.

    With ``.../train/<class>/<img>`` (and ``val/`` or ``test/`` beside it) paths under one
    common prefix the folders give the split; otherwise every image is ``.../<class>/<img>``
    under one common prefix, all in train.
    """
    if not names:
        raise DataError(f"data.path: no images found under {where}")
    split_layout = all(len(p) >= 3 and p[-3].lower() in SPLIT_NAMES for p in names)
    depth = 3 if split_layout else 2
    expected = "<class>/<image> or train|val|test/<class>/<image>"
    if any(len(p) < depth for p in names):
        loose = next(p for p in names if len(p) < depth)
        raise DataError(
            f"data.path: {where}: image {'/'.join(loose)} is not inside a class folder "
            f"(expected {expected})"
        )
    prefixes = {p[:-depth] for p in names}
    if len(prefixes) > 1:
        shown = ", ".join(sorted("/".join(p) or "." for p in prefixes)[:3])
        raise DataError(
            f"data.path: {where}: images sit in folders of different roles ({shown}); "
            f"expected {expected}"
        )
    split = np.array([SPLIT_NAMES[p[-3].lower()] if split_layout else 0 for p in names])
    train_classes = sorted({p[-2] for p, s in zip(names, split, strict=True) if s == 0})
    if not train_classes:
        raise DataError(f"data.path: {where} has no train/ images beside its other splits")
    for k, folder in ((1, "validation"), (2, "test")):
        unknown = sorted({p[-2] for p, s in zip(names, split, strict=True) if s == k})
        unknown = [c for c in unknown if c not in train_classes]
        if unknown:
            raise DataError(
                f"data.path: {where}: {folder} classes without training images: "
                f"{', '.join(unknown[:5])}"
            )
    index = {c: i for i, c in enumerate(train_classes)}
    labels = np.array([index[p[-2]] for p in names], dtype=np.int64)
    return train_classes, labels, split


def arrays_from_images(
    names: list[tuple[str, ...]], x: np.ndarray, where: Path, resized: int = 0
) -> RawArrays:
    """Sort decoded images by path (archive order must not matter) and split them by folder."""
    if not names:
        raise DataError(f"data.path: no images found under {where}")
    order = sorted(range(len(names)), key=lambda i: names[i])
    names = [names[i] for i in order]
    x = np.ascontiguousarray(x[np.asarray(order, dtype=np.int64)].transpose(0, 3, 1, 2))
    classes, labels, split = assign_layout(names, where)
    parts = [(x[split == k], labels[split == k]) if (split == k).any() else None for k in (0, 1, 2)]
    train, val, test = parts
    assert train is not None
    return RawArrays(
        train[0],
        train[1],
        test[0] if test else None,
        test[1] if test else None,
        classes,
        resized,
        val[0] if val else None,
        val[1] if val else None,
    )


def read_image_tree(path: Path, size: int | None) -> RawArrays:
    """Decode a class-per-folder tree (directory or archive) to uint8 NCHW arrays at ``size``
    (None: the first image's own)."""
    names, x, resized = decode_entries(iter_source(path, is_image), size)
    return arrays_from_images(names, x, path, resized)


def cached(
    kind: str, path: Path, extra: str, cache_dir: str | None, read: Callable[[], RawArrays]
) -> RawArrays:
    """``read()`` once per source identity; later loads come from the ``.npz`` cache."""
    try:
        target = cache_file(cache_root(cache_dir), kind, path, extra)
    except OSError as exc:
        raise DataError(f"data.path: cannot read {path} ({_short(exc)})") from None
    hit = load_cached(target)
    if hit is not None:
        return hit
    raw = read()
    save_cached(target, raw)
    return raw


def load_imagefolder(cfg: DataConfig, seed: int) -> Dataset:
    """Any class-per-folder dataset, decoded straight to ``resolution`` RGB; by default the
    images' own size (the first image's larger side: latency and MACs are of the input the
    user deploys, not of a fixed 32x32)."""
    path = check_path(cfg.path, "imagefolder")
    size = cfg.resolution
    raw = cached(
        "imagefolder",
        path,
        f"size={size or 'own'}",
        cfg.cache_dir,
        lambda: read_image_tree(path, size),
    )
    if size is not None:  # a size asked for: squashing to it is what was asked
        raw = dataclasses.replace(raw, resized=0)
    ds = build_dataset(
        "imagefolder",
        raw,
        seed=seed,
        subset=cfg.subset,
        val_fraction=cfg.val_fraction,
        resolution=None,
    )
    if empty := empty_class_folders(path, raw.class_names):
        ds.warnings.append(
            f"data.path: folder(s) {', '.join(empty[:5])} hold no images and are no class "
            f"of the {len(raw.class_names)} the nets learn ({', '.join(raw.class_names[:8])})"
        )
    return ds


def empty_class_folders(path: Path, classes: list[str]) -> list[str]:
    """Folders beside the class folders of a directory source that hold no image (an archive
    lists no folders): a class the user meant to give is left out of the nets' outputs."""
    if not path.is_dir():
        return []
    known, empty = set(classes), []
    for dirpath, dirs, _files in os.walk(path):
        if known & set(dirs):  # the folder that holds the class folders
            for d in sorted(set(dirs) - known):
                sub = Path(dirpath, d)
                if not _skipped((d,)) and not any(
                    is_image(Path(f).relative_to(sub).parts) for f in _files_under(sub)
                ):
                    empty.append(str(sub.relative_to(path)))
            dirs[:] = []  # nothing below class folders is a class folder
    return empty


def _files_under(root: Path) -> Iterator[str]:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            yield os.path.join(dirpath, f)
