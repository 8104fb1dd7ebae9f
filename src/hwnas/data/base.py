"""Dataset containers, seeded stratified splits, the on-disk array cache and fast batching.

Everything is kept as uint8 tensors (N, C, H, W): CIFAR-10 is 184 MB that way instead of 737 MB
as float32, and it can be moved to an accelerator once and batched there without a DataLoader
(the per-sample Python work of a DataLoader dominates the training time of small candidates).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.core.errors import UserError

#: Bumped whenever the cached arrays would change for the same source (decoder, layout rules).
CACHE_VERSION = 1
#: Seed of every carved *test* split: independent of the experiment seed, so the data used to
#: report final models is the same in every experiment.
TEST_SPLIT_SEED = 20_240_601
TEST_FRACTION = 0.2


class DataError(UserError):
    """A problem with the user's data settings or files, worded as one line naming it."""


# --------------------------------------------------------------------------- containers
@dataclass
class Split:
    """Images and labels of one split.

    ``x`` is uint8 (N, C, H, W) and ``y`` int64 (N,). Copies on other devices are cached in the
    object, so moving the data to a GPU happens once per process, not once per epoch.
    """

    x: torch.Tensor
    y: torch.Tensor
    _on_device: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(
                f"Split.x must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError("Split.y must be int64 (N,) matching Split.x")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on ``device``, copied there at most once (re-copied if x/y are replaced)."""
        key = str(torch.device(device))
        hit = self._on_device.get(key)
        if hit is not None and hit[0] is self.x and hit[1] is self.y:
            return hit[2], hit[3]
        xd, yd = self.x.to(key), self.y.to(key)
        self._on_device[key] = (self.x, self.y, xd, yd)
        return xd, yd


@dataclass
class Dataset:
    """A loaded dataset: train (fit candidates), val (rank them), test (report final models)."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    #: what about the data will surprise a user (images squashed to one size, a class no
    #: split judges): said before the search, never silently
    warnings: list[str] = field(default_factory=list)


@dataclass
class RawArrays:
    """Decoded source data before splitting; ``test_*`` is None where the source has no test split."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    class_names: list[str]
    #: images whose own size was not the decoded one (resized, squashed where not square)
    resized: int = 0
    #: a validation split the source gives (a ``val/`` folder); None: carved from train
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None


# ------------------------------------------------------------------------------ splits
def stratified_split(
    y: np.ndarray, fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(rest, picked)`` with ``picked`` holding ``fraction`` of every class.

    The total picked is ``round(fraction * N)`` (at least 1 when N >= 2), shared among classes
    by largest remainder so small classes are neither dropped nor over-represented. Both index
    arrays are sorted, so the split depends only on the labels and the seed.
    """
    y = np.asarray(y)
    n = len(y)
    total = int(round(fraction * n))
    if n >= 2:
        total = min(max(total, 1), n - 1)
    classes, counts = np.unique(y, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(np.int64)
    remainder = total - int(take.sum())
    if remainder > 0:
        order = np.lexsort((np.arange(len(classes)), -(quota - take)))
        for k in order:
            if remainder == 0:
                break
            if take[k] < counts[k]:
                take[k] += 1
                remainder -= 1
    elif remainder < 0:
        order = np.lexsort((np.arange(len(classes)), quota - take))
        for k in order:
            if remainder == 0:
                break
            if take[k] > 0:
                take[k] -= 1
                remainder += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, k in zip(classes, take, strict=True):
        idx = np.flatnonzero(y == c)
        picked.append(idx[rng.permutation(len(idx))[:k]])
    pick = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    mask = np.ones(n, bool)
    mask[pick] = False
    return np.flatnonzero(mask), pick


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of uint8 NCHW images, in chunks to bound memory."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    shrink = size < max(x.shape[-2:])
    for s in range(0, x.shape[0], chunk):
        part = x[s : s + chunk].float()
        part = F.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        out[s : s + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_raw(raw: RawArrays, size: int) -> RawArrays:
    """``raw`` with all images resized; worth caching, as resizing 60k images takes seconds."""

    def rs(a: np.ndarray) -> np.ndarray:
        return resize_uint8(torch.from_numpy(np.ascontiguousarray(a)), size).numpy()

    test_x = rs(raw.test_x) if raw.test_x is not None else None
    val_x = rs(raw.val_x) if raw.val_x is not None else None
    return dataclasses.replace(raw, train_x=rs(raw.train_x), test_x=test_x, val_x=val_x)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std on the 0..1 scale, from 256-bin histograms (no float copy)."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        n = hist.sum()
        m = (hist * levels).sum() / n
        var = (hist * (levels - m) ** 2).sum() / n
        means.append(float(m))
        stds.append(max(float(var.sqrt()), 1e-3))
    return tuple(means), tuple(stds)


def build_dataset(
    name: str,
    raw: RawArrays,
    *,
    seed: int,
    subset: float,
    val_fraction: float,
    resolution: int | None,
) -> Dataset:
    """Carve test (fixed seed, if the source has none), subset and val (experiment seed) splits.

    The test carve comes first and uses :data:`TEST_SPLIT_SEED`, so it is the same whatever the
    experiment seed, subset or validation share.
    """
    # numpy until the end: its row gathers are memcpys, torch's are per element
    if len(raw.class_names) < 2:
        raise DataError(
            f"data: {name} has {len(raw.class_names)} class{'' if raw.class_names else 'es'} "
            f"({', '.join(raw.class_names) or 'none'}); a classifier needs at least 2"
        )
    x = np.asarray(raw.train_x, dtype=np.uint8)
    y = np.asarray(raw.train_y, dtype=np.int64)
    if raw.test_x is None or raw.test_y is None:
        if len(y) < 2:
            raise DataError(
                f"data: {name} has {len(y)} image(s); need at least 2 to carve a test split"
            )
        rest, test_idx = stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
        tx, ty = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    else:
        tx = np.asarray(raw.test_x, dtype=np.uint8)
        ty = np.asarray(raw.test_y, dtype=np.int64)
    if subset < 1.0:
        _, keep = stratified_split(y, subset, (seed, 1))
        x, y = x[keep], y[keep]
    if len(y) < 2:
        raise DataError(
            f"data: {name} keeps {len(y)} training image(s); need at least 2 (raise data.subset)"
        )
    if raw.val_x is not None and raw.val_y is not None:  # the source's own validation split
        x = np.concatenate([x, np.asarray(raw.val_x, dtype=np.uint8)])
        n_train = len(y)
        y = np.concatenate([y, np.asarray(raw.val_y, dtype=np.int64)])
        train_idx, val_idx = np.arange(n_train), np.arange(n_train, len(y))
    else:
        train_idx, val_idx = stratified_split(y, val_fraction, (seed, 2))

    def split(xs: np.ndarray, ys: np.ndarray) -> Split:
        xt = torch.from_numpy(np.ascontiguousarray(xs))
        if resolution is not None:
            xt = resize_uint8(xt, resolution)
        return Split(xt, torch.from_numpy(np.ascontiguousarray(ys)))

    train = split(x[train_idx], y[train_idx])
    val = split(x[val_idx], y[val_idx])
    test = split(tx, ty)
    mean, std = channel_stats(train.x)
    c, h, w = train.x.shape[1:]
    notes = []
    if raw.resized:
        notes.append(
            f"data: {raw.resized} image(s) of {name} were not {h}x{w} and were resized to it "
            "(squashed where not square); set data.resolution to choose the input size"
        )
    for part, ys in (("validation", val.y.numpy()), ("test", test.y.numpy())):
        missing = [c for k, c in enumerate(raw.class_names) if not (ys == k).any()]
        if missing:
            notes.append(
                f"data: class(es) {', '.join(missing[:5])} of {name} have no image in the "
                f"{part} split (too few images): its accuracy does not judge them"
            )
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=len(raw.class_names),
        input_shape=(int(c), int(h), int(w)),
        mean=mean,
        std=std,
        class_names=list(raw.class_names),
        warnings=notes,
    )


# ------------------------------------------------------------------------------- cache
def cache_root(cache_dir: str | None) -> Path:
    """``data.cache_dir``, else ``$HWNAS_CACHE``, else ``~/.cache/hwnas``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("HWNAS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hwnas"


def source_fingerprint(path: Path) -> str:
    """Identity of a source: absolute path, size and mtime (of every file, for a directory).

    A directory's own mtime misses edits inside class folders, so all files are listed; that is
    a stat per file (~0.1 s for 60 000) and still far cheaper than decoding.
    """
    path = path.resolve()
    st = path.stat()
    if not path.is_dir():
        return f"{path}|{st.st_size}|{st.st_mtime_ns}"
    h = hashlib.sha256(str(path).encode())
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            fs = os.stat(os.path.join(root, f))
            h.update(
                f"{os.path.relpath(os.path.join(root, f), path)}|{fs.st_size}|{fs.st_mtime_ns}\n".encode()
            )
    return f"{path}|dir|{h.hexdigest()}"


def cache_file(root: Path, kind: str, source: Path, extra: str = "") -> Path:
    """Cache file name: readable stem plus a hash of the source identity and decode settings."""
    key = f"v{CACHE_VERSION}|{kind}|{source_fingerprint(source)}|{extra}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in source.resolve().name)[:40]
    return root / f"{kind}-{stem}-{digest}.npz"


def load_cached(path: Path) -> RawArrays | None:
    """Read a cache file; a missing, partial or foreign file is a miss, never an error."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            has_test = bool(z["has_test"])
            return RawArrays(
                train_x=z["train_x"],
                train_y=z["train_y"].astype(np.int64),
                test_x=z["test_x"] if has_test else None,
                test_y=z["test_y"].astype(np.int64) if has_test else None,
                class_names=[str(s) for s in z["class_names"]],
                resized=int(z["resized"]) if "resized" in z.files else 0,
                val_x=z["val_x"] if "val_x" in z.files else None,
                val_y=z["val_y"].astype(np.int64) if "val_y" in z.files else None,
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save_cached(path: Path, raw: RawArrays) -> None:
    """Write atomically (temp file + rename) so a killed run or a concurrent one leaves no torn file.

    An unwritable cache only costs decoding again next time, so it is a warning.
    """
    empty = np.zeros((0,), np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
        try:
            arrays: dict[str, np.ndarray] = {
                "train_x": raw.train_x,
                "train_y": raw.train_y.astype(np.int64),
                "test_x": raw.test_x if raw.test_x is not None else empty,
                "test_y": raw.test_y.astype(np.int64) if raw.test_y is not None else empty,
                "has_test": np.array(raw.test_x is not None),
                "class_names": np.array(raw.class_names, dtype=str),
                "resized": np.array(raw.resized),
            }
            if raw.val_x is not None and raw.val_y is not None:
                arrays.update(val_x=raw.val_x, val_y=raw.val_y.astype(np.int64))
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by users
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"data: could not write cache {path}: {exc}", stacklevel=3)


# ----------------------------------------------------------------------------- batching
def _pad_for(size: int) -> int:
    return 4 if size >= 16 else 1


def fraction_indices(n: int, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """The fixed subset used for ``fraction`` < 1: drawn from the generator's *initial* seed.

    A trainer passes the same generator every epoch; seeding from its initial seed rather than
    its state keeps the subset fixed across epochs (it is a fidelity, not extra data).
    """
    if fraction >= 1.0:
        return torch.arange(n)
    k = max(1, int(round(fraction * n)))
    g = torch.Generator().manual_seed(generator.initial_seed() if generator is not None else 0)
    return torch.randperm(n, generator=g)[:k].sort().values


def augment_batch(
    xb: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int
) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and horizontal flip as one gather.

    ``oy``/``ox`` are per-sample offsets in [0, 2*pad] into the padded image; the flip is folded
    into the column index, so a batch costs one pad and one ``gather``: the accelerator path.
    """
    b, c, h, w = xb.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    xp = F.pad(xb, (pad, pad, pad, pad)).reshape(b, c, hp * wp)
    cols = torch.arange(w, device=xb.device)
    cols = torch.where(flip[:, None], cols.flip(0)[None, :], cols[None, :]) + ox[:, None]  # (B, W)
    rows = torch.arange(h, device=xb.device)[None, :] + oy[:, None]  # (B, H)
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return xp.gather(2, index).reshape(b, c, h, w)


def cutout_batch(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square centred at (``cy``, ``cx``) of each normalised image
    (clipped at the borders): Cutout, DeVries & Taylor 2017. Zero is the mean pixel there."""
    _, _, h, w = x.shape
    lo_y, lo_x = (cy - size // 2)[:, None], (cx - size // 2)[:, None]
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_y = (rows >= lo_y) & (rows < lo_y + size)  # (B, H)
    in_x = (cols >= lo_x) & (cols < lo_x + size)  # (B, W)
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


def augment_batch_np(
    xb: np.ndarray, oy: np.ndarray, ox: np.ndarray, flip: np.ndarray, pad: int
) -> np.ndarray:
    """Same result as :func:`augment_batch`, for the CPU: one slice copy per distinct offset.

    On a CPU, numpy slice copies of the (at most 81) offset groups beat an element-wise gather
    by ~10x and use no thread pool, so they also stay fast next to a busy training loop.
    """
    b, c, h, w = xb.shape
    xp = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=xb.dtype)
    xp[:, :, pad : pad + h, pad : pad + w] = xb
    out = np.empty_like(xb)
    key = oy * (2 * pad + 1) + ox
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        dy, dx = divmod(int(k), 2 * pad + 1)
        out[sel] = xp[sel, :, dy : dy + h, dx : dx + w]
    out[flip] = out[flip][..., ::-1]
    return out


def batches(
    split: Split,
    batch_size: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    fraction: float = 1.0,
    drop_last: bool = False,
    flip: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of normalised float32 ``(x, y)`` batches, ``(x - mean) / std``, on ``device``.

    All random draws (order, crop offsets, flips) are made on the CPU from ``generator`` before
    the first batch, so an epoch is reproducible from the generator's state and identical on
    every device. Indexing, augmentation and normalisation are whole-batch array ops: numpy on
    the CPU, torch on an accelerator (where the uint8 data stays resident). ``flip=False``
    keeps the crops and never mirrors (digits, text); the draws are the same either way.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    dev = torch.device(device)
    n = len(split)
    c, h, w = split.x.shape[1:]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {c} channels")
    idx = fraction_indices(n, fraction, generator)
    if shuffle:
        idx = idx[torch.randperm(len(idx), generator=generator)]
    m = len(idx)
    pad = _pad_for(min(h, w))
    oy = ox = mirror = None
    if augment:
        oy = torch.randint(0, 2 * pad + 1, (m,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (m,), generator=generator)
        mirror = (torch.rand(m, generator=generator) < 0.5) & flip
    std64 = np.asarray(std, dtype=np.float64)
    scale64 = 1.0 / (255.0 * std64)
    shift64 = -np.asarray(mean, dtype=np.float64) / std64
    stop = m - m % batch_size if drop_last else m
    if dev.type == "cpu":
        yield from _batches_cpu(split, idx, oy, ox, mirror, pad, scale64, shift64, batch_size, stop)
        return
    x, y = split.to(dev)
    idx_d = idx.to(dev)
    if oy is not None and ox is not None and mirror is not None:
        oy, ox, mirror = oy.to(dev), ox.to(dev), mirror.to(dev)
    scale = torch.tensor(scale64, dtype=torch.float32, device=dev).view(1, c, 1, 1)
    shift = torch.tensor(shift64, dtype=torch.float32, device=dev).view(1, c, 1, 1)
    for s in range(0, stop, batch_size):
        bi = idx_d[s : s + batch_size]
        xb = x[bi]
        if oy is not None and ox is not None and mirror is not None:
            e = s + batch_size
            xb = augment_batch(xb, oy[s:e], ox[s:e], mirror[s:e], pad)
        yield xb.to(torch.float32).mul_(scale).add_(shift), y[bi]


def _batches_cpu(
    split: Split,
    idx: torch.Tensor,
    oy: torch.Tensor | None,
    ox: torch.Tensor | None,
    flip: torch.Tensor | None,
    pad: int,
    scale64: np.ndarray,
    shift64: np.ndarray,
    batch_size: int,
    stop: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """CPU batches through numpy: row gathers are memcpys there (torch indexes per element)."""
    x, y = split.x.numpy(), split.y.numpy()
    idx_np = idx.numpy()
    aug = None
    if oy is not None and ox is not None and flip is not None:
        aug = (oy.numpy(), ox.numpy(), flip.numpy())
    c = x.shape[1]
    scale = scale64.astype(np.float32).reshape(1, c, 1, 1)
    shift = shift64.astype(np.float32).reshape(1, c, 1, 1)
    for s in range(0, stop, batch_size):
        e = s + batch_size
        bi = idx_np[s:e]
        xb = x[bi]
        if aug is not None:
            xb = augment_batch_np(xb, aug[0][s:e], aug[1][s:e], aug[2][s:e], pad)
        xf = xb.astype(np.float32)
        xf *= scale
        xf += shift
        yield torch.from_numpy(xf), torch.from_numpy(y[bi])
