"""Tests of hwnas.data: splits, batching, augmentation, the readers, the cache and the errors."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hwnas.data.cifar10 as cifar10_mod
import hwnas.data.imagefolder as imagefolder_mod
from hwnas.data import DataError, Dataset, Split, batches, load_dataset
from hwnas.data.base import (
    augment_batch,
    augment_batch_np,
    cache_root,
    channel_stats,
    stratified_split,
)
from hwnas.data.config import DataConfig
from hwnas.data.digits import read_digits

REAL_CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg.tar.gz"
CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _rows(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """Each sample as bytes (image + label), sorted: compares datasets as multisets."""
    return sorted(
        xi.numpy().tobytes() + int(yi).to_bytes(2, "little") for xi, yi in zip(x, y, strict=True)
    )


def _all(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([ds.train.x, ds.val.x, ds.test.x]), torch.cat(
        [ds.train.y, ds.val.y, ds.test.y]
    )


# ------------------------------------------------------------------------------ digits
def test_digits_splits_partition_the_data() -> None:
    ds = load_dataset(DataConfig(name="digits"), seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1150, 288, 359)
    assert ds.num_classes == 10 and ds.class_names == [str(i) for i in range(10)]
    assert ds.input_shape == (1, 8, 8)
    for s in (ds.train, ds.val, ds.test):
        assert s.x.dtype == torch.uint8 and s.y.dtype == torch.int64
        assert s.x.shape[1:] == (1, 8, 8)
    raw = read_digits()
    assert raw.train_x.max() == 255 and raw.train_x.min() == 0
    # train, val and test are disjoint and together exactly the 1797 images
    assert _rows(*_all(ds)) == _rows(torch.from_numpy(raw.train_x), torch.from_numpy(raw.train_y))


def test_digits_test_split_fixed_across_seeds_val_not() -> None:
    a = load_dataset(DataConfig(name="digits"), seed=0)
    b = load_dataset(DataConfig(name="digits"), seed=1)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert _rows(a.val.x, a.val.y) != _rows(b.val.x, b.val.y)
    # the same seed gives the same split
    c = load_dataset(DataConfig(name="digits"), seed=0)
    assert torch.equal(a.val.x, c.val.x) and torch.equal(a.train.y, c.train.y)
    # the test split does not move with subset or val_fraction either
    d = load_dataset(DataConfig(name="digits", subset=0.3, val_fraction=0.5), seed=7)
    assert torch.equal(a.test.x, d.test.x)


def test_digits_splits_are_stratified() -> None:
    ds = load_dataset(DataConfig(name="digits"), seed=3)
    full = np.bincount(read_digits().train_y, minlength=10)
    test = np.bincount(ds.test.y.numpy(), minlength=10)
    assert np.all(np.abs(test - 0.2 * full) < 1.0)
    rest = full - test
    val = np.bincount(ds.val.y.numpy(), minlength=10)
    assert np.all(np.abs(val - 0.2 * rest) < 1.0)


def test_digits_subset_and_resolution() -> None:
    ds = load_dataset(DataConfig(name="digits", subset=0.5, resolution=16), seed=0)
    assert len(ds.train) + len(ds.val) == round(0.5 * 1438)
    assert len(ds.test) == 359
    assert ds.input_shape == (1, 16, 16) and ds.test.x.shape[1:] == (1, 16, 16)
    # a bilinear upscale keeps the intensity range and roughly the mean
    base = load_dataset(DataConfig(name="digits"), seed=0)
    assert abs(ds.mean[0] - base.mean[0]) < 0.03


def test_stats_are_those_of_train() -> None:
    ds = load_dataset(DataConfig(name="digits"), seed=0)
    x = ds.train.x.double() / 255.0
    assert ds.mean[0] == pytest.approx(float(x.mean()), abs=1e-9)
    assert ds.std[0] == pytest.approx(float(x.std(unbiased=False)), abs=1e-9)
    m, s = channel_stats(torch.full((4, 3, 2, 2), 51, dtype=torch.uint8))
    assert m == pytest.approx((0.2, 0.2, 0.2)) and all(v > 0 for v in s)


def test_stratified_split_exact_sizes() -> None:
    y = np.repeat(np.arange(3), [10, 7, 1])
    rest, pick = stratified_split(y, 0.3, 5)
    assert len(pick) == round(0.3 * 18) and len(rest) + len(pick) == 18
    assert not set(rest) & set(pick)
    counts = np.bincount(y[pick], minlength=3)
    assert np.all(np.abs(counts - 0.3 * np.array([10, 7, 1])) < 1.0)
    again = stratified_split(y, 0.3, 5)
    assert np.array_equal(again[1], pick)


# ----------------------------------------------------------------------------- batches
def test_batches_shapes_and_normalisation() -> None:
    ds = load_dataset(DataConfig(name="digits"), seed=0)
    out = list(
        batches(
            ds.train, 100, mean=ds.mean, std=ds.std, shuffle=False, augment=False, generator=None
        )
    )
    assert len(out) == 12  # 1150 / 100, last one partial
    assert out[0][0].shape == (100, 1, 8, 8) and out[-1][0].shape == (50, 1, 8, 8)
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in out)
    x = torch.cat([b[0] for b in out])
    assert torch.equal(torch.cat([b[1] for b in out]), ds.train.y)  # unshuffled keeps order
    assert abs(float(x.mean())) < 1e-4
    assert float(x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    expected = (ds.train.x.float() / 255 - ds.mean[0]) / ds.std[0]
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    full = list(
        batches(
            ds.train,
            100,
            mean=ds.mean,
            std=ds.std,
            shuffle=False,
            augment=False,
            generator=None,
            drop_last=True,
        )
    )
    assert len(full) == 11 and all(len(b[1]) == 100 for b in full)


def _index_split(n: int = 200) -> Split:
    """Labels are the sample indices, so batches reveal which samples they hold."""
    x = torch.randint(
        0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    return Split(x, torch.arange(n))


def test_batches_shuffle_is_seeded() -> None:
    split = _index_split()
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, augment=False)

    def order(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in batches(split, 32, generator=g, **kw)]).tolist()  # type: ignore[arg-type]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == list(range(200))


def test_batches_fraction_is_a_fixed_subset() -> None:
    split = _index_split()
    g = torch.Generator().manual_seed(4)
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, augment=True, fraction=0.25)
    e1 = torch.cat([y for _, y in batches(split, 16, generator=g, **kw)]).tolist()  # type: ignore[arg-type]
    e2 = torch.cat([y for _, y in batches(split, 16, generator=g, **kw)]).tolist()  # type: ignore[arg-type]
    assert len(e1) == len(e2) == 50
    assert len(set(e1)) == 50 and set(e1) == set(e2)  # same samples every epoch
    assert e1 != e2  # in a new order
    g5 = torch.Generator().manual_seed(5)
    e3 = torch.cat([y for _, y in batches(split, 16, generator=g5, **kw)]).tolist()  # type: ignore[arg-type]
    assert set(e3) != set(e1)  # another generator seed picks another subset


def _raw(
    split: Split, *, augment: bool, seed: int, shuffle: bool = False, flip: bool = True
) -> torch.Tensor:
    """Un-normalised batches: mean 0 and std 1/255 make the output the pixel values."""
    c = split.x.shape[1]
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            x
            for x, _ in batches(
                split,
                64,
                mean=(0.0,) * c,
                std=(1 / 255,) * c,
                shuffle=shuffle,
                augment=augment,
                generator=g,
                flip=flip,
            )
        ]
    )


@pytest.mark.parametrize(("size", "flip"), [(8, True), (32, True), (8, False)])
def test_augment_is_crop_and_flip(size: int, flip: bool) -> None:
    g = torch.Generator().manual_seed(0)
    split = Split(
        torch.randint(0, 256, (100, 3, size, size), dtype=torch.uint8, generator=g),
        torch.zeros(100, dtype=torch.int64),
    )
    plain = _raw(split, augment=False, seed=0)
    assert torch.equal(plain, split.x.float())
    aug = _raw(split, augment=True, seed=0, flip=flip)
    assert aug.shape == plain.shape and aug.dtype == torch.float32
    assert torch.equal(aug, _raw(split, augment=True, seed=0, flip=flip))  # deterministic
    assert not torch.equal(aug, _raw(split, augment=True, seed=1, flip=flip))
    changed = (aug != plain).flatten(1).any(1).float().mean()
    assert changed > 0.8  # only the (0-offset, no flip) draws leave an image unchanged
    pad = 4 if size >= 16 else 1
    padded = torch.nn.functional.pad(split.x.float(), (pad,) * 4)
    flips = 0
    for i in range(100):  # every output is a padded crop of its input, maybe mirrored
        found = None
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                crop = padded[i, :, dy : dy + size, dx : dx + size]
                if torch.equal(aug[i], crop):
                    found = "plain"
                elif torch.equal(aug[i], crop.flip(-1)):
                    found = "flip"
        assert found is not None, f"sample {i} is not a crop"
        flips += found == "flip"
    if flip:
        assert 25 < flips < 75
    else:  # crops only; with pad 1 a crop is never also some other crop's mirror image
        assert flips == 0


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    from hwnas.data.base import cutout_batch

    x = torch.ones(3, 2, 8, 8)
    cy, cx = torch.tensor([4, 0, 7]), torch.tensor([4, 0, 2])
    out = cutout_batch(x, cy, cx, 4)
    zeroed = (out == 0).all(dim=1)  # every channel of a cut pixel is zero
    assert zeroed[0].sum() == 16 and zeroed[0, 2:6, 2:6].all()  # fully inside
    assert zeroed[1].sum() == 4 and zeroed[1, :2, :2].all()  # clipped at a corner
    assert zeroed[2].sum() == 12 and zeroed[2, 5:8, 0:4].all()  # clipped at the bottom
    assert ((out == 0) | (out == 1)).all() and (out == 0).any(dim=1).eq(zeroed).all()


def test_training_with_cutout_is_seeded_and_learns() -> None:
    import random

    from hwnas.estimate.config import TrainEstimatorConfig
    from hwnas.estimate.train import train
    from hwnas.space.chain import ChainSpace

    data = load_dataset(DataConfig(), 0)
    cfg = TrainEstimatorConfig(epochs=3, cutout=3, lr=0.1)
    accs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = ChainSpace().build(ChainSpace().sample(random.Random(1)), data.input_shape, 10)
        accs.append(train(model, data, cfg, seed=5, batch_size=64).accuracy)
    assert accs[0] == accs[1] and accs[0] > 0.5


def test_compile_only_for_long_trainings(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile wraps the net for trainings of >= compile_epochs; the weights it trains
    are the model's own (what the store saves and the morphisms inherit)."""
    import random

    from hwnas.estimate.config import TrainEstimatorConfig
    from hwnas.estimate.train import train
    from hwnas.space.chain import ChainSpace

    calls: list[tuple[torch.nn.Module, str]] = []

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    def fake_compile(model: torch.nn.Module, mode: str = "default") -> torch.nn.Module:
        calls.append((model, mode))
        return Wrapped(model)

    monkeypatch.setattr(torch, "compile", fake_compile)
    data = load_dataset(DataConfig(), 0)
    space = ChainSpace()
    arch = space.sample(random.Random(1))
    short = TrainEstimatorConfig(epochs=2, lr=0.1, compile_epochs=3)
    train(space.build(arch, data.input_shape, 10), data, short, seed=5)
    assert calls == []
    long = short.model_copy(update={"epochs": 3, "compile_mode": "reduce-overhead"})
    model = space.build(arch, data.input_shape, 10)
    before = [p.detach().clone() for p in model.parameters()]
    res = train(model, data, long, seed=5)
    assert [(m is model, mode) for m, mode in calls] == [(True, "reduce-overhead")]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert res.accuracy > 0.5 and len(res.curve) == 3


def test_augment_accelerator_path_matches_cpu_path() -> None:
    g = torch.Generator().manual_seed(2)
    xb = torch.randint(0, 256, (64, 3, 12, 10), dtype=torch.uint8, generator=g)
    oy = torch.randint(0, 3, (64,), generator=g)
    ox = torch.randint(0, 3, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    a = augment_batch(xb, oy, ox, flip, 1)
    b = augment_batch_np(xb.numpy(), oy.numpy(), ox.numpy(), flip.numpy(), 1)
    assert np.array_equal(a.numpy(), b)


def test_split_validates_and_caches_device_copies() -> None:
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    s = _index_split(10)
    x1, _ = s.to("cpu")
    x2, _ = s.to(torch.device("cpu"))
    assert x1 is x2


# ------------------------------------------------------------------------ image folders
COLOURS = {"cat": (200, 30, 30), "dog": (20, 40, 220), "emu": (10, 180, 60)}


def _png(colour: tuple[int, int, int], size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def _make_tree(root: Path, *, splits: bool = True, per_class: int = 5) -> dict[str, int]:
    """Solid-colour images (the colour tells the class), varied sizes, PNG and JPEG, RGBA/L too."""
    counts: dict[str, int] = {}
    for split in ("train", "test") if splits else ("",):
        n = per_class if split != "test" else 2
        for cls, colour in COLOURS.items():
            d = root / split / cls if split else root / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                c = (colour[0], colour[1], colour[2] + i)
                if i == 0:
                    (d / f"{i:03d}.JPG").write_bytes(_png(c, (24, 24), "JPEG"))
                elif i == 1:
                    Image.new("RGBA", (12, 20), (*c, 255)).save(d / f"{i:03d}.png")
                else:
                    (d / f"{i:03d}.png").write_bytes(_png(c, (20 + i, 16)))
            (d / "notes.txt").write_text("not an image")
            (d / ".hidden.png").write_bytes(b"junk")  # hidden files are skipped
            counts[f"{split}/{cls}"] = n
    return counts


def _tar(src: Path, dest: Path, prefix: str | None) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        if prefix:
            tar.add(src, arcname=prefix)
        else:
            for child in sorted(src.iterdir()):
                tar.add(child, arcname=child.name)
    return dest


def _load(name: str, path: Path, cache: Path, seed: int = 0, **kw: object) -> Dataset:
    return load_dataset(DataConfig(name=name, path=str(path), cache_dir=str(cache), **kw), seed)  # type: ignore[arg-type]


def _check_colours(ds: Dataset) -> None:
    """Every image is its class's colour, so labels and pixels went through together."""
    for split in (ds.train, ds.val, ds.test):
        for x, y in zip(split.x, split.y, strict=True):
            r, g, b = COLOURS[ds.class_names[int(y)]]
            centre = x[:, x.shape[1] // 2, x.shape[2] // 2].tolist()
            assert abs(centre[0] - r) <= 6 and abs(centre[1] - g) <= 6 and -6 <= centre[2] - b <= 15


def test_imagefolder_directory(tmp_path: Path) -> None:
    _make_tree(tmp_path / "set")
    ds = _load("imagefolder", tmp_path / "set", tmp_path / "cache", resolution=16)
    assert ds.class_names == ["cat", "dog", "emu"] and ds.num_classes == 3
    assert ds.input_shape == (3, 16, 16)
    assert len(ds.train) + len(ds.val) == 15 and len(ds.test) == 6
    assert ds.test.y.tolist() == [0, 0, 1, 1, 2, 2]  # the test folder, sorted by path
    assert len(ds.val) == 3 and sorted(ds.val.y.tolist()) == [0, 1, 2]
    _check_colours(ds)
    # by default the images' own size (the first's larger side), and the others said
    default = _load("imagefolder", tmp_path / "set", tmp_path / "cache")
    assert default.input_shape == (3, 24, 24)
    assert default.warnings == [
        "data: 15 image(s) of imagefolder were not 24x24 and were resized to it (squashed "
        "where not square); set data.resolution to choose the input size"
    ]
    assert ds.warnings == []  # a size asked for squashes without a word


def test_imagefolder_with_a_validation_folder_uses_it(tmp_path: Path) -> None:
    """train/ + val/ (+ test/) is the layout most users bring: it was refused as "images
    sit at different folder depths"; its val/ now is the validation split, not carved."""
    root = tmp_path / "set"
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for cls, colour in COLOURS.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                (root / split / cls / f"{i}.png").write_bytes(_png(colour, (16, 16)))
    ds = _load("imagefolder", root, tmp_path / "cache")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (18, 6, 9)
    assert sorted(ds.val.y.tolist()) == [0, 0, 1, 1, 2, 2] and ds.warnings == []
    _check_colours(ds)
    again = _load("imagefolder", root, tmp_path / "cache", seed=3)  # from the cache, any seed
    assert torch.equal(again.val.x, ds.val.x) and torch.equal(again.train.y, ds.train.y)
    (root / "val" / "fox").mkdir()
    (root / "val" / "fox" / "0.png").write_bytes(_png((1, 2, 3), (16, 16)))
    msg = _error(DataConfig(name="imagefolder", path=str(root), cache_dir=str(tmp_path / "c")))
    assert msg == f"data.path: {root}: validation classes without training images: fox"


def test_imagefolder_of_one_size_keeps_it_and_says_what_no_split_judges(tmp_path: Path) -> None:
    """64x64 images read as 32x32 timed nets 3-4x too fast; an empty class folder and a
    class too small for the validation and test splits were silent."""
    root = tmp_path / "set"
    for cls, colour in COLOURS.items():
        (root / cls).mkdir(parents=True)
        for i in range(6 if cls != "emu" else 1):
            (root / cls / f"{i}.png").write_bytes(_png(colour, (64, 64)))
    (root / "fox").mkdir()  # no images: left out of the nets' outputs
    ds = _load("imagefolder", root, tmp_path / "cache")
    assert ds.input_shape == (3, 64, 64) and ds.class_names == ["cat", "dog", "emu"]
    assert ds.warnings == [
        "data: class(es) emu of imagefolder have no image in the validation split (too few "
        "images): its accuracy does not judge them",
        "data: class(es) emu of imagefolder have no image in the test split (too few images): "
        "its accuracy does not judge them",
        "data.path: folder(s) fox hold no images and are no class of the 3 the nets learn "
        "(cat, dog, emu)",
    ]


@pytest.mark.parametrize("prefix", [None, "my-set"])
def test_imagefolder_tar_equals_directory(tmp_path: Path, prefix: str | None) -> None:
    _make_tree(tmp_path / "set")
    archive = _tar(tmp_path / "set", tmp_path / "set.tar.gz", prefix)
    a = _load("imagefolder", tmp_path / "set", tmp_path / "c1", resolution=16)
    b = _load("imagefolder", archive, tmp_path / "c2", resolution=16)
    assert a.class_names == b.class_names
    for sa, sb in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)


def test_imagefolder_without_test_folder_carves_fixed_test(tmp_path: Path) -> None:
    _make_tree(tmp_path / "flat", splits=False, per_class=10)
    a = _load("imagefolder", tmp_path / "flat", tmp_path / "cache", seed=0)
    b = _load("imagefolder", tmp_path / "flat", tmp_path / "cache", seed=1)
    assert len(a.test) == 6 and sorted(a.test.y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert torch.equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.val) == 24
    _check_colours(a)
    archive = _tar(tmp_path / "flat", tmp_path / "flat.tgz", "top")
    c = _load("imagefolder", archive, tmp_path / "cache2", seed=0)
    assert torch.equal(a.test.x, c.test.x) and torch.equal(a.train.x, c.train.x)


def test_cifar10_from_imagefolder_resizes_after_decode(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for k in range(10):
        for split in ("train", "test"):
            (root / split / f"c{k}").mkdir(parents=True)
            for i in range(3):
                colour = (20 * k, 200 - 20 * k, 10 * i)
                (root / split / f"c{k}" / f"{i}.png").write_bytes(_png(colour, (20 + i, 16)))
    ds = _load("cifar10", root, tmp_path / "cache")
    assert ds.input_shape == (3, 32, 32) and ds.class_names == [f"c{k}" for k in range(10)]
    small = _load("cifar10", root, tmp_path / "cache", resolution=8)
    assert small.input_shape == (3, 8, 8)
    for x, y in zip(small.test.x, small.test.y, strict=True):
        assert abs(int(x[0, 4, 4]) - 20 * int(y)) <= 6  # labels and pixels went together
    # a folder of other classes is not CIFAR-10 (`--data DIR` names it where data.name is
    # unset): a 3-class folder was searched with CIFAR's recipe, flips and all
    _make_tree(tmp_path / "mine")
    msg = _error(DataConfig(name="cifar10", path=str(tmp_path / "mine"), cache_dir=str(tmp_path)))
    assert msg == (
        f"data.path: {tmp_path / 'mine'} holds 3 classes (cat, dog, emu), not CIFAR-10's 10; "
        "for your own images set data.name=imagefolder (with data.augment=true for CIFAR's "
        "crops and flips)"
    )


# ---------------------------------------------------------------------- pickle format
def _make_pickles(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A tiny CIFAR-10 in torchvision's layout: 5 train batches of 20, a test batch of 10."""
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    xs, ys = [], []
    for b in range(1, 6):
        x = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.permutation(np.repeat(np.arange(10), 2))]
        with open(d / f"data_batch_{b}", "wb") as fh:
            pickle.dump(
                {b"batch_label": b"training batch", b"data": x, b"labels": y}, fh, protocol=2
            )
        xs.append(x)
        ys.append(y)
    tx = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
    ty = list(range(10))
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({b"data": tx, b"labels": ty}, fh, protocol=2)
    meta = {b"label_names": [n.encode() for n in CIFAR_CLASSES], b"num_vis": 3072}
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    (d / "readme.html").write_text("<html></html>")
    return np.concatenate(xs), np.concatenate(ys), tx, np.array(ty)


@pytest.mark.parametrize("where", ["folder", "parent", "archive"])
def test_cifar10_pickle_format(tmp_path: Path, where: str) -> None:
    x, y, tx, ty = _make_pickles(tmp_path / "src")
    path = {
        "folder": tmp_path / "src" / "cifar-10-batches-py",
        "parent": tmp_path / "src",
        "archive": _tar(tmp_path / "src", tmp_path / "cifar-10-python.tar.gz", None),
    }[where]
    ds = _load("cifar10", path, tmp_path / "cache", val_fraction=0.2)
    assert ds.class_names == CIFAR_CLASSES and ds.input_shape == (3, 32, 32)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 20, 10)
    assert np.array_equal(ds.test.x.numpy(), tx.reshape(-1, 3, 32, 32))
    assert ds.test.y.tolist() == ty.tolist()
    trainval = (torch.cat([ds.train.x, ds.val.x]), torch.cat([ds.train.y, ds.val.y]))
    assert _rows(*trainval) == _rows(
        torch.from_numpy(x.reshape(-1, 3, 32, 32)), torch.from_numpy(y)
    )
    assert np.bincount(ds.val.y.numpy()).tolist() == [2] * 10


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (d / name).write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": [0]}))  # a global
    with pytest.raises(DataError, match="not a CIFAR-10 pickle batch"):
        _load("cifar10", d, tmp_path / "cache")


# ------------------------------------------------------------------------------- cache
def test_cache_is_hit_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_tree(tmp_path / "set")
    cache = tmp_path / "cache"
    first = _load("imagefolder", tmp_path / "set", cache)
    files = list(cache.glob("imagefolder-set-*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    calls = []
    real = imagefolder_mod.decode_chunk

    def counting(items: list[tuple[str, bytes]], size: int) -> tuple[np.ndarray, int]:
        calls.append(len(items))
        return real(items, size)

    monkeypatch.setattr(imagefolder_mod, "decode_chunk", counting)
    second = _load("imagefolder", tmp_path / "set", cache)
    assert calls == []  # served from the cache
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)

    img = tmp_path / "set" / "train" / "cat" / "002.png"
    img.write_bytes(_png((1, 2, 3), (22, 16)))
    os.utime(img, ns=(time.time_ns(), time.time_ns() + 10**9))
    _load("imagefolder", tmp_path / "set", cache)
    assert sum(calls) == 21  # a changed file means decoding again
    _load("imagefolder", tmp_path / "set", cache, resolution=16)
    assert sum(calls) == 42  # so does another decode size
    assert len(list(cache.glob("*.npz"))) == 3


def test_cifar10_cache_hit_skips_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_pickles(tmp_path / "src")
    first = _load("cifar10", tmp_path / "src", tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 1

    def boom(path: Path) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(cifar10_mod, "read_cifar10", boom)
    second = _load("cifar10", tmp_path / "src", tmp_path / "cache")
    assert torch.equal(first.test.x, second.test.x)
    (next((tmp_path / "cache").glob("cifar10-*.npz"))).write_bytes(b"torn")  # a corrupt cache
    with pytest.raises(AssertionError, match="decoded again"):  # is a miss, not a crash
        _load("cifar10", tmp_path / "src", tmp_path / "cache")


def test_cache_dir_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "env"))
    assert cache_root(None) == tmp_path / "env"
    assert cache_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    _make_tree(tmp_path / "set")
    load_dataset(DataConfig(name="imagefolder", path=str(tmp_path / "set")), 0)
    assert len(list((tmp_path / "env").glob("*.npz"))) == 1
    monkeypatch.delenv("HWNAS_CACHE")
    assert cache_root(None) == Path.home() / ".cache" / "hwnas"


def _many_pngs(archive: Path, n: int) -> Path:
    with tarfile.open(archive, "w") as tar:
        for i in range(n):
            data = _png((i % 256, (7 * i) % 256, 3), (8, 8))
            info = tarfile.TarInfo(f"c{i % 2}/{i:05d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_decode_pool_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _many_pngs(tmp_path / "many.tar", 1100)  # 3 chunks: 1 decoded here, 2 in the pool
    calls = []
    real_start = imagefolder_mod._Decoder._start_pool

    def start(self: imagefolder_mod._Decoder) -> None:
        real_start(self)
        calls.append(self.pool is not None)

    monkeypatch.setattr(imagefolder_mod._Decoder, "_start_pool", start)
    monkeypatch.setenv("HWNAS_DECODE_WORKERS", "2")
    pooled = _load("imagefolder", archive, tmp_path / "c1", resolution=8)
    monkeypatch.setenv("HWNAS_DECODE_WORKERS", "1")
    assert calls and all(calls)  # the pool did run
    serial = _load("imagefolder", archive, tmp_path / "c2", resolution=8)
    assert len(pooled.train) + len(pooled.val) + len(pooled.test) == 1100
    assert torch.equal(pooled.train.x, serial.train.x) and torch.equal(pooled.test.x, serial.test.x)


_PARENT = os.getpid()
_REAL_DECODE = imagefolder_mod.decode_chunk


def _dies_in_worker(items: list[tuple[str, bytes]], size: int) -> tuple[np.ndarray, int]:
    if os.getpid() != _PARENT:
        os._exit(3)  # a worker killed mid-task (OOM killer, say)
    return _REAL_DECODE(items, size)


def test_decode_pool_failure_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _many_pngs(tmp_path / "many.tar", 1100)
    monkeypatch.setenv("HWNAS_DECODE_WORKERS", "2")
    monkeypatch.setattr(imagefolder_mod, "decode_chunk", _dies_in_worker)
    ds = _load("imagefolder", archive, tmp_path / "c1", resolution=8)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1100
    assert ds.train.x.float().std() > 10  # real pixels, not an empty buffer


# ------------------------------------------------------------------------------ errors
def _error(cfg: DataConfig) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(cfg, 0)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("data")
    assert isinstance(info.value, ValueError)
    return msg


def test_error_messages(tmp_path: Path) -> None:
    assert _error(DataConfig(name="cifar10")) == "data.path is required for cifar10"
    assert _error(DataConfig(name="imagefolder")) == "data.path is required for imagefolder"
    missing = tmp_path / "nope"
    assert (
        _error(DataConfig(name="cifar10", path=str(missing)))
        == f"data.path: {missing} does not exist"
    )

    empty = tmp_path / "empty"
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "train" / "cat" / "readme.txt").write_text("x")
    cache = str(tmp_path / "cache")
    msg = _error(DataConfig(name="imagefolder", path=str(empty), cache_dir=cache))
    assert msg == f"data.path: no images found under {empty}"
    assert "no images found" in _error(DataConfig(name="cifar10", path=str(empty), cache_dir=cache))

    bad = tmp_path / "foo.tar.gz"
    bad.write_bytes(os.urandom(3000))
    msg = _error(DataConfig(name="cifar10", path=str(bad), cache_dir=cache))
    assert msg.startswith(f"data.path: {bad} is not a readable archive")

    _make_tree(tmp_path / "set")
    good = _tar(tmp_path / "set", tmp_path / "good.tar.gz", None).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good[: len(good) // 2])
    msg = _error(DataConfig(name="imagefolder", path=str(cut), cache_dir=cache))
    assert msg.startswith(f"data.path: {cut} is not a readable archive")

    (tmp_path / "set" / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    msg = _error(DataConfig(name="imagefolder", path=str(tmp_path / "set"), cache_dir=cache))
    assert msg.startswith("data.path: cannot decode image train/dog/broken.jpg")
    (tmp_path / "set" / "train" / "dog" / "broken.jpg").write_bytes(b"plain text, no image")
    msg = _error(DataConfig(name="imagefolder", path=str(tmp_path / "set"), cache_dir=cache))
    assert msg == (  # not Pillow's "<_io.BytesIO object at 0x...>"
        "data.path: cannot decode image train/dog/broken.jpg (not an image Pillow can read)"
    )

    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.png").write_bytes(_png((1, 1, 1), (4, 4)))
    msg = _error(DataConfig(name="imagefolder", path=str(loose), cache_dir=cache))
    assert "not inside a class folder" in msg

    one = tmp_path / "one"
    (one / "cat").mkdir(parents=True)
    (one / "cat" / "a.png").write_bytes(_png((1, 1, 1), (4, 4)))
    assert _error(DataConfig(name="imagefolder", path=str(one), cache_dir=cache)) == (
        "data: imagefolder has 1 class (cat); a classifier needs at least 2"
    )


# ------------------------------------------------------------------------ real CIFAR-10
@pytest.mark.slow
@pytest.mark.skipif(not REAL_CIFAR.is_file(), reason=f"{REAL_CIFAR} not present")
def test_real_cifar10_archive(tmp_path: Path) -> None:
    ds = _load("cifar10", REAL_CIFAR, tmp_path)
    assert len(ds.train) + len(ds.val) == 50_000 and len(ds.test) == 10_000
    assert (len(ds.train), len(ds.val)) == (40_000, 10_000)
    assert ds.num_classes == 10 and ds.class_names == CIFAR_CLASSES
    assert ds.input_shape == (3, 32, 32)
    assert np.bincount(ds.test.y.numpy()).tolist() == [1000] * 10
    assert np.bincount(ds.val.y.numpy()).tolist() == [1000] * 10
    assert ds.mean == pytest.approx((0.491, 0.482, 0.446), abs=0.005)
    t = time.perf_counter()
    again = _load("cifar10", REAL_CIFAR, tmp_path)
    assert time.perf_counter() - t < 5.0  # cached (about 0.3-0.6 s; slack for busy CI)
    assert torch.equal(again.test.x, ds.test.x)
