"""Learned latency predictor (nn-Meter style): fit on measured archs, answer in microseconds.

**Features** (:class:`Featurizer`), three groups:

- ``kernel``: the network's kernels (see :mod:`hwnas.hardware.features`) summed per kind,
  kernel size and stride -- count, MACs, bytes read and written, weight bytes -- plus totals.
  A device's cost per MAC and per byte of each kernel kind is a handful of numbers, so a
  linear model on these generalises from few measurements.
- ``layers``: MACs and bytes per position of the space (stem, layer 3, edge 2 of stage 1...).
- ``encoding``: the space's own vector (for FBNet a per-layer one-hot, on which a purely
  additive per-layer latency model is linear).

**Regressor** (:func:`fit_model`): a ridge fit on standardised features, optionally on log
latency, optionally *trimmed* -- refitted without the training rows it misses by more than
the tolerance (10 %), so a few readings spoiled by load on the measuring machine (they only
ever add time) do not drag every prediction. On top, optionally, gradient-boosted trees on
the log of the remaining ratio catch interactions. Which feature groups and which of these
options are used is chosen by 5-fold cross-validation on the training rows alone, scored by
the share within +-10 % (ties: lower MAPE).

**File**: one ``.npz`` with the fitted arrays and a JSON metadata record (space and its
config, input shape, feature vocabulary, target name, training size, seed and the keys of the
training archs, so ``hwnas predictor eval`` judges only rows the model never saw). It holds
data only: loading it runs no code (no pickle).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from hwnas.core.errors import UserError
from hwnas.hardware.base import Candidate, CostModel
from hwnas.hardware.config import PredictorTarget
from hwnas.hardware.features import Op, Segments, kernel_ops, segments_for
from hwnas.space.capabilities import Vectorizable, supports

if TYPE_CHECKING:
    from torch import nn

    from hwnas.space.base import Arch, Space

log = logging.getLogger("hwnas")

Shape = tuple[int, int, int]
PARTS = ("kernel", "layers", "encoding")
FORMAT = "hwnas-latency-predictor"
VERSION = 1
#: ridge penalties tried (features are standardised)
ALPHAS = np.logspace(-4, 4, 17)
_OP_FIELDS = 5  # count, macs, in bytes, out bytes, weight bytes


class PredictorError(UserError):
    """A predictor file or training input that cannot be used."""


# ---------------------------------------------------------------------- features
class Featurizer:
    """Arch -> feature vector, with a vocabulary (op keys, slots) fixed on the training archs."""

    def __init__(
        self,
        space: Space,
        shape: Shape,
        num_classes: int,
        kinds: list[str] | None = None,
        slots: list[str] | None = None,
        encoding_dim: int | None = None,
    ) -> None:
        self.space, self.shape, self.num_classes = space, shape, num_classes
        self.segments: Segments | None = segments_for(space, shape, num_classes)
        self.kinds = list(kinds or [])
        self.slots = list(slots or [])
        self.encoding_dim = encoding_dim
        self._cache: dict[Any, np.ndarray] = {}
        self._index()

    @property
    def needs_model(self) -> bool:
        """Spaces without an analytic description are traced from their built module."""
        return self.segments is None

    def _index(self) -> None:
        self._kind_at = {k: 5 + _OP_FIELDS * i for i, k in enumerate(self.kinds)}
        n_kernel = 5 + _OP_FIELDS * len(self.kinds)
        self._slot_at = {s: n_kernel + 2 * i for i, s in enumerate(self.slots)}
        n_ops = n_kernel + 2 * len(self.slots)
        self.groups = {
            "kernel": np.arange(0, n_kernel),
            "layers": np.arange(n_kernel, n_ops),
            "encoding": np.arange(n_ops, n_ops + (self.encoding_dim or 0)),
        }
        self.n_ops_features = n_ops
        self._cache.clear()

    def fit(self, archs: list[Arch]) -> Featurizer:
        """Learn the vocabulary (op keys, slots, encoding length) from the training archs."""
        kinds: set[str] = set()
        slots: set[str] = set()
        for arch in archs:
            for op in self.ops(arch):
                kinds.add(op.key)
                if op.slot:
                    slots.add(op.slot)
        self.kinds, self.slots = sorted(kinds), sorted(slots)
        self.encoding_dim = self._encoding_dim(archs)
        self._index()
        return self

    def _encoding_dim(self, archs: list[Arch]) -> int:
        if not supports(self.space, Vectorizable):
            return 0  # a space without a vector simply offers none
        try:
            lengths = {len(cast(Vectorizable, self.space).encode(a)) for a in archs[:50]}
        except Exception:  # noqa: BLE001 - a space whose encoding fails simply offers none
            return 0
        return lengths.pop() if len(lengths) == 1 else 0

    def ops(self, arch: Arch, model: nn.Module | None = None) -> list[Op]:
        return kernel_ops(self.space, arch, self.shape, self.num_classes, model)

    def _op_vector(self, ops: list[Op]) -> np.ndarray:
        v = np.zeros(self.n_ops_features)
        for op in ops:
            fields = (1, op.macs, op.in_bytes, op.out_bytes, op.weight_bytes)
            v[0:5] += fields
            at = self._kind_at.get(op.key)
            if at is not None:
                v[at : at + _OP_FIELDS] += fields
            at = self._slot_at.get(op.slot)
            if at is not None:
                v[at] += op.macs
                v[at + 1] += op.in_bytes + op.out_bytes + op.weight_bytes
        return v

    def _segment_vector(self, key: Any) -> np.ndarray:
        v = self._cache.get(key)
        if v is None:
            assert self.segments is not None
            v = self._cache[key] = self._op_vector(self.segments.segment_ops(key))
        return v

    def transform(
        self, arch: Arch, model: nn.Module | None = None, encoding: bool = True
    ) -> np.ndarray:
        """The feature vector; ``encoding=False`` leaves that group zero (when unused)."""
        if self.segments is not None:
            vecs = [self._segment_vector(k) for k in self.segments.segments(arch)]
            ops_part = functools.reduce(np.add, vecs, np.zeros(self.n_ops_features))
        else:
            ops_part = self._op_vector(self.ops(arch, model))
        if not self.encoding_dim:
            return ops_part
        if not encoding:
            return np.concatenate([ops_part, np.zeros(self.encoding_dim)])
        enc = np.asarray(cast(Vectorizable, self.space).encode(arch), float)
        if enc.shape != (self.encoding_dim,):
            raise PredictorError(
                f"arch encoding has length {enc.size}, the predictor expects {self.encoding_dim}"
            )
        return np.concatenate([ops_part, enc])

    def matrix(self, archs: list[Arch]) -> np.ndarray:
        return np.stack([self.transform(a) for a in archs])

    def available(self) -> list[str]:
        return [p for p in PARTS if self.groups[p].size]

    def columns(self, parts: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([self.groups[p] for p in parts])


# ------------------------------------------------------------------------ models
@dataclass
class LinearPart:
    """``x @ coef + intercept`` on the chosen columns (exp'd when fitted on log latency)."""

    columns: np.ndarray
    coef: np.ndarray
    intercept: float
    log: bool

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = X[:, self.columns] @ self.coef + self.intercept
        return np.exp(np.clip(z, -50, 50)) if self.log else np.maximum(z, 1e-9)


@dataclass
class TreesPart:
    """Boosted regression trees flattened into arrays; evaluated with numpy, no sklearn."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    scale: float
    depth: int

    @classmethod
    def from_sklearn(cls, gbr: Any, columns: np.ndarray | None = None) -> TreesPart:
        """Flatten a fitted GradientBoostingRegressor (``init="zero"``) fitted on
        ``X[:, columns]``; the part then reads the full feature vector."""
        feats, thr, left, right, val, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for est in gbr.estimators_[:, 0]:
            t = est.tree_
            roots.append(offset)
            leaf = t.children_left < 0
            feats.append(np.where(leaf, 0, t.feature))
            thr.append(np.where(leaf, 0.0, t.threshold))
            # a leaf points at itself, so stepping from it is a no-op
            own = np.arange(t.node_count) + offset
            left.append(np.where(leaf, own, t.children_left + offset))
            right.append(np.where(leaf, own, t.children_right + offset))
            val.append(t.value[:, 0, 0])
            offset += t.node_count
            depth = max(depth, int(t.max_depth))
        feature = np.concatenate(feats).astype(np.int64)
        return cls(
            feature if columns is None else np.asarray(columns, np.int64)[feature],
            np.concatenate(thr),
            np.concatenate(left).astype(np.int64),
            np.concatenate(right).astype(np.int64),
            np.concatenate(val),
            np.asarray(roots, np.int64),
            float(gbr.learning_rate),
            depth,
        )

    def __post_init__(self) -> None:
        self._child = np.stack([self.right, self.left], axis=1)  # [node, went left]

    def predict(self, X: np.ndarray) -> np.ndarray:
        # every split's test at once, then ``depth`` steps down all trees together
        go_left = (X[:, self.feature] <= self.threshold).astype(np.intp)
        if len(X) == 1:  # the search's case: one candidate at a time, kept lean
            gl, node = go_left[0], self.roots
            for _ in range(self.depth):
                node = self._child[node, gl[node]]
            return np.array([self.scale * self.value[node].sum()])
        nodes = np.broadcast_to(self.roots, (len(X), self.roots.size))
        for _ in range(self.depth):
            nodes = self._child[nodes, np.take_along_axis(go_left, nodes, axis=1)]
        return self.scale * self.value[nodes].sum(axis=1)


@dataclass
class Model:
    linear: LinearPart
    trees: TreesPart | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        base = self.linear.predict(X)
        return base if self.trees is None else base * np.exp(self.trees.predict(X))


@dataclass(frozen=True)
class Choice:
    parts: tuple[str, ...]
    log: bool
    trim: float | None
    trees: bool = False

    def describe(self) -> str:
        return (
            "+".join(self.parts)
            + (", log" if self.log else "")
            + (f", trimmed at {self.trim:.0%}" if self.trim else "")
            + (", residual trees" if self.trees else "")
        )


def _within(pred: np.ndarray, y: np.ndarray, tol: float = 0.10) -> float:
    return float(np.mean(np.abs(pred - y) <= tol * y))


def _score(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return _within(pred, y), -float(np.mean(np.abs(pred - y) / y))


def ridge_loo(Z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge regression with the penalty chosen by exact leave-one-out error (one SVD)."""
    zm, tm = Z.mean(axis=0), t.mean()
    U, s, Vt = np.linalg.svd(Z - zm, full_matrices=False)
    Ut = U.T @ (t - tm)
    s2 = s**2
    best: tuple[float, np.ndarray] | None = None
    for alpha in ALPHAS:
        shrink = s2 / (s2 + alpha)
        fitted = U @ (shrink * Ut)
        hat = (U**2) @ shrink + 1.0 / len(t)
        loo = ((t - tm - fitted) / np.maximum(1.0 - hat, 1e-6)) ** 2
        err = float(loo.mean())
        if best is None or err < best[0]:
            best = (err, Vt.T @ (s / (s2 + alpha) * Ut))
    assert best is not None
    coef = best[1]
    return coef, float(tm - zm @ coef)


def fit_linear(
    X: np.ndarray, y: np.ndarray, columns: np.ndarray, log_target: bool, trim: float | None
) -> tuple[LinearPart, np.ndarray]:
    """Ridge on standardised columns; trimmed refits drop rows missed by more than ``trim``.

    Returns the part and the mask of training rows it was finally fitted on.
    """
    Xs = X[:, columns]
    mu, sd = Xs.mean(axis=0), Xs.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (Xs - mu) / sd
    t = np.log(y) if log_target else y
    keep = np.ones(len(y), bool)
    for _ in range(4):
        coef, intercept = ridge_loo(Z[keep], t[keep])
        part = LinearPart(columns, coef / sd, float(intercept - (mu / sd) @ coef), log_target)
        if trim is None:
            break
        rel = np.abs(y - part.predict(X)) / y
        new = rel <= trim
        if new.sum() < len(y) // 2:  # a poor first fit must not discard most of the data
            new = rel <= np.quantile(rel, 0.5)
        if (new == keep).all():
            break
        keep = new
    return part, keep


def fit_trees(X: np.ndarray, ratio: np.ndarray, columns: np.ndarray, seed: int) -> TreesPart:
    from sklearn.ensemble import GradientBoostingRegressor

    gbr = GradientBoostingRegressor(
        n_estimators=150,
        learning_rate=0.05,
        max_depth=3,
        min_samples_leaf=10,
        subsample=0.8,
        init="zero",
        random_state=seed,
    ).fit(X[:, columns], np.log(ratio))
    return TreesPart.from_sklearn(gbr, columns)


def _fit(X: np.ndarray, y: np.ndarray, featurizer: Featurizer, c: Choice, seed: int) -> Model:
    linear, keep = fit_linear(X, y, featurizer.columns(c.parts), c.log, c.trim)
    if not c.trees:
        return Model(linear)
    ratio = y[keep] / linear.predict(X[keep])
    # the trees may read every feature: interactions with unused groups are theirs to find
    return Model(linear, fit_trees(X[keep], ratio, np.arange(X.shape[1]), seed))


def part_subsets(available: list[str]) -> list[tuple[str, ...]]:
    return [
        tuple(p for p in PARTS if p in combo)
        for r in range(1, len(available) + 1)
        for combo in itertools.combinations(available, r)
    ]


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    featurizer: Featurizer,
    seed: int = 0,
    folds: int = 5,
    tol: float = 0.10,
    trees: bool | None = None,
) -> tuple[Model, Choice, dict[str, Any]]:
    """Choose the feature groups and options by k-fold CV on (X, y), then fit on all of it.

    ``trees``: None lets CV decide on residual trees; True/False forces them on/off.
    """
    from sklearn.model_selection import KFold

    n = len(y)
    if n < 10:
        raise PredictorError(f"need at least 10 training archs, got {n}")
    splits = list(KFold(min(folds, n // 5), shuffle=True, random_state=seed).split(X))

    def oof(c: Choice) -> np.ndarray:
        pred = np.empty(n)
        for tr, va in splits:
            pred[va] = _fit(X[tr], y[tr], featurizer, c, seed).predict(X[va])
        return pred

    scores: dict[Choice, tuple[float, float]] = {}

    def pick(choices: list[Choice]) -> Choice:
        for c in choices:
            if c not in scores:
                scores[c] = _score(oof(c), y)
        return max(choices, key=lambda c: scores[c])

    # greedy: the feature groups first (trimmed, linear target), then the target options
    best = pick([Choice(p, False, tol) for p in part_subsets(featurizer.available())])
    best = pick([Choice(best.parts, lg, tr) for lg in (False, True) for tr in (tol, None)])
    if trees is not False:
        with_trees = Choice(best.parts, best.log, best.trim, True)
        scores[with_trees] = _score(oof(with_trees), y)
        if trees or scores[with_trees] > scores[best]:
            best = with_trees
    report = {
        "choice": best.describe(),
        "cv_within_10pct": scores[best][0],
        "cv_mape": -scores[best][1],
        "candidates": len(scores),
    }
    return _fit(X, y, featurizer, best, seed), best, report


# --------------------------------------------------------------------- predictor
@dataclass
class LatencyPredictor:
    """A fitted model with everything needed to featurise an arch and judge held-out data."""

    featurizer: Featurizer
    model: Model
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self) -> Space:
        return self.featurizer.space

    @functools.cached_property
    def _uses_encoding(self) -> bool:
        """Whether any fitted part reads the encoding (else it is not computed)."""
        enc = self.featurizer.groups["encoding"]
        read = self.model.linear.columns
        if self.model.trees is not None:
            t = self.model.trees
            read = np.concatenate([read, t.feature[t.left != np.arange(t.left.size)]])
        return bool(np.isin(read, enc).any())

    @property
    def training_keys(self) -> set[str]:
        return set(self.meta.get("training", {}).get("keys", []))

    def predict(self, archs: list[Arch]) -> np.ndarray:
        return self.model.predict(self.featurizer.matrix(archs))

    def predict_one(self, arch: Arch, model: nn.Module | None = None) -> float:
        x = self.featurizer.transform(arch, model, encoding=self._uses_encoding)
        return float(self.model.predict(x[None, :])[0])

    # ----------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise PredictorError(f"predictor file must end in .npz: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = self.featurizer
        meta = {
            **self.meta,
            "format": FORMAT,
            "version": VERSION,
            "input_shape": list(f.shape),
            "num_classes": f.num_classes,
            "features": {"kinds": f.kinds, "slots": f.slots, "encoding_dim": f.encoding_dim},
            "log": self.model.linear.log,
            "intercept": self.model.linear.intercept,
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
            "lin_columns": self.model.linear.columns,
            "lin_coef": self.model.linear.coef,
        }
        t = self.model.trees
        if t is not None:
            arrays |= {
                "tree_feature": t.feature,
                "tree_threshold": t.threshold,
                "tree_left": t.left,
                "tree_right": t.right,
                "tree_value": t.value,
                "tree_roots": t.roots,
                "tree_params": np.array([t.scale, t.depth], float),
            }
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(cls, path: str | Path, space: Space | None = None) -> LatencyPredictor:
        """Read a predictor file; ``space`` (default: rebuilt from the file) featurises archs."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise PredictorError(f"predictor file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays["meta"].tobytes().decode())
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise PredictorError(f"{path} is not a predictor file ({exc})") from None
        try:
            return cls._from_arrays(path, arrays, meta, space)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PredictorError(f"{path}: damaged predictor file ({exc!r})") from None

    @classmethod
    def _from_arrays(
        cls, path: Path, arrays: dict[str, Any], meta: dict[str, Any], space: Space | None
    ) -> LatencyPredictor:
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise PredictorError(f"{path} is not a version-{VERSION} hwnas predictor file")
        if space is None:
            space = space_from_meta(meta["space"])
        elif space.name != meta["space"]["name"]:
            raise PredictorError(
                f"{path} was trained on the {meta['space']['name']} space, not {space.name}"
            )
        feats = meta["features"]
        featurizer = Featurizer(
            space,
            tuple(meta["input_shape"]),  # type: ignore[arg-type]
            int(meta["num_classes"]),
            feats["kinds"],
            feats["slots"],
            feats["encoding_dim"],
        )
        linear = LinearPart(
            arrays["lin_columns"], arrays["lin_coef"], float(meta["intercept"]), bool(meta["log"])
        )
        trees = None
        if "tree_feature" in arrays:
            scale, depth = arrays["tree_params"]
            trees = TreesPart(
                arrays["tree_feature"],
                arrays["tree_threshold"],
                arrays["tree_left"],
                arrays["tree_right"],
                arrays["tree_value"],
                arrays["tree_roots"],
                float(scale),
                int(depth),
            )
        return cls(featurizer, Model(linear, trees), meta)


def space_meta(space: Space) -> dict[str, Any]:
    dump = getattr(getattr(space, "cfg", None), "model_dump", None)
    config = dump(mode="json") if callable(dump) else None
    return {"name": space.name, "config": config}


def space_from_meta(meta: dict[str, Any]) -> Space:
    from hwnas.core.errors import ConfigError
    from hwnas.core.registry import spaces
    from hwnas.space import make_space

    if meta.get("config") is None:
        raise PredictorError(
            f"the predictor's space {meta.get('name')!r} cannot be rebuilt from the file"
        )
    try:
        cfg = spaces.validate(meta["config"])
    except ConfigError as exc:
        raise PredictorError(f"the predictor's space config is invalid: {exc}") from None
    return make_space(cfg)


# ------------------------------------------------------------------ arch parsing
def parse_arch(space: Space, text: str) -> Arch:
    """An arch from a table cell: JSON, or the space's key form (FBNet indices, NB201 string)."""
    from hwnas.space.base import InvalidArch

    text = str(text).strip()
    if text.startswith("{"):
        try:
            arch = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidArch(f"arch is not valid JSON: {text[:60]!r}") from None
        space.validate(arch)
        return arch  # type: ignore[no-any-return]
    arch = space.from_key(text)  # an InvalidArch where the text is no key of this kind
    if arch is None:  # JSON not starting with "{" cannot be an arch either
        raise InvalidArch(f"a {space.name} arch must be JSON: {text[:60]!r}")
    space.validate(arch)
    return arch


def guess_space(value: str) -> str:
    """The built-in space a table's arch value belongs to (FBNet indices, NB201 string, JSON)."""
    v = value.strip()
    if v.startswith("|"):
        return "cell"
    tokens = v.split()
    if len(tokens) == 22 and all(t.isdigit() for t in tokens):
        return "fbnet"
    return "chain"


DEFAULT_SHAPES: dict[str, tuple[Shape, int]] = {
    "fbnet": ((3, 224, 224), 1000),  # the published FBNet tables are ImageNet networks
    "cell": ((3, 32, 32), 10),  # NB201's CIFAR-10 network
    "chain": ((1, 8, 8), 10),  # the default search: digits
}


# ------------------------------------------------------------------------ tables
@dataclass
class Rows:
    """(arch, latency) rows read from a CSV table, with the arch's key per row."""

    archs: list[Arch]
    latency: np.ndarray
    keys: list[str]
    path: str
    sha1: str


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_table(path: str | Path, arch_column: str, target_column: str) -> list[dict[str, str]]:
    import csv
    import gzip
    import io

    p = Path(path).expanduser()
    if not p.is_file():
        raise PredictorError(f"--data: {p} does not exist")
    try:
        opener: Any = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", newline="") as fh:
            reader = csv.DictReader(fh if isinstance(fh, io.TextIOBase) else fh)
            columns = list(reader.fieldnames or [])
            for col, flag in ((arch_column, "--arch-column"), (target_column, "--target-column")):
                if col not in columns:
                    raise PredictorError(
                        f"{flag}: {col!r} not in {p.name} (columns: {', '.join(columns)})"
                    )
            rows = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError, EOFError) as exc:
        raise PredictorError(f"--data: {p} is not a readable CSV table ({exc})") from None
    if not rows:
        raise PredictorError(f"--data: {p} has no rows")
    return rows


def load_rows(space: Space, path: str | Path, arch_column: str, target_column: str) -> Rows:
    from hwnas.space.base import InvalidArch

    table = read_table(path, arch_column, target_column)
    archs, lat, keys = [], [], []
    for i, row in enumerate(table):
        try:
            arch = parse_arch(space, row[arch_column])
            value = float(row[target_column])
        except (InvalidArch, ValueError) as exc:
            raise PredictorError(f"--data row {i + 1}: {exc}") from None
        if not math.isfinite(value) or value <= 0:
            continue  # a missing or failed measurement: nothing to learn from
        archs.append(arch)
        lat.append(value)
        keys.append(space.key(arch))
    p = Path(path).expanduser()
    return Rows(archs, np.asarray(lat), keys, str(p.resolve()), file_sha1(p))


def train(
    space: Space,
    archs: list[Arch],
    latency: np.ndarray | list[float],
    shape: Shape,
    num_classes: int,
    seed: int = 0,
    target: str = "latency_ms",
    trees: bool | None = None,
    source: dict[str, Any] | None = None,
) -> LatencyPredictor:
    """Fit a predictor on (arch, latency) pairs of ``space`` measured at ``shape``."""
    y = np.asarray(latency, float)
    t0 = time.perf_counter()
    featurizer = Featurizer(space, shape, num_classes).fit(archs)
    X = featurizer.matrix(archs)
    from threadpoolctl import threadpool_limits

    # small matrices: one BLAS thread is as fast, and immune to a busy shared host
    with threadpool_limits(1):
        model, choice, report = fit_model(X, y, featurizer, seed=seed, trees=trees)
    meta = {
        "space": space_meta(space),
        "target": target,
        "fit": {**report, "parts": list(choice.parts), "seconds": time.perf_counter() - t0},
        "training": {
            "n": len(archs),
            "seed": seed,
            "keys": [space.key(a) for a in archs],
            **({"data": source} if source else {}),
        },
    }
    return LatencyPredictor(featurizer, model, meta)


def split_rows(n: int, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``n`` rows into ``train_size`` training rows and the rest."""
    if not 10 <= train_size < n:
        raise PredictorError(
            f"--train-size must be at least 10 and below the {n} usable rows (got {train_size})"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:train_size]), np.sort(order[train_size:])


def evaluate(predictor: LatencyPredictor, archs: list[Arch], latency: np.ndarray) -> dict[str, Any]:
    """The ``lut eval`` figures of ``predictor`` on (arch, latency) rows."""
    from hwnas.hardware.collect import accuracy_report

    pred = predictor.predict(archs)
    return accuracy_report(pred.tolist(), np.asarray(latency, float).tolist())


def noise_check(
    cfg: Any,
    space: Space,
    shape: Shape | None,
    archs: list[Arch],
    first: Sequence[float] | np.ndarray,
    seed: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure ``archs`` (of ``space``) once more on the config's target (and its data's input
    shape): how often that second reading
    agrees with ``first`` within +-10 % (the noise floor a predictor is judged against)."""
    from hwnas.hardware.collect import noise_floor

    pairs = measure_on_target(
        cfg, len(archs), seed, progress, archs=archs, space=space, expect_shape=shape
    )[3]
    second = [ms for _, ms in pairs]
    return {
        "noise_floor_within_10pct": noise_floor(list(first), second),
        "noise_floor_n": len(archs),
    }


def held_out(predictor: LatencyPredictor, rows: Rows) -> tuple[list[Arch], np.ndarray]:
    """The rows whose arch the predictor was not trained on."""
    seen = predictor.training_keys
    idx = [i for i, k in enumerate(rows.keys) if k not in seen]
    return [rows.archs[i] for i in idx], rows.latency[idx]


# -------------------------------------------------------------------- cost model
class PredictorCostModel(CostModel):
    """``target: {name: predictor, path: FILE}``: the predictor's latency for each candidate."""

    needs_model = False

    def __init__(self, cfg: PredictorTarget) -> None:
        self.cfg = cfg
        self.path = Path(cfg.path).expanduser()
        self._loaded: LatencyPredictor | None = None
        self._warned = False
        LatencyPredictor.load(self.path)  # fail now, with one line, on a bad file

    def _predictor(self, space: Space) -> LatencyPredictor:
        if self._loaded is None or self._loaded.space is not space:
            p = LatencyPredictor.load(self.path, space)
            stored = p.meta["space"].get("config")
            current = space_meta(space)["config"]
            if stored is not None and current is not None and stored != current:
                log.warning(
                    "predictor %s was trained on another %s space config; its figures extrapolate",
                    self.path,
                    space.name,
                )
            self._loaded = p
        return self._loaded

    def costs(self, cand: Candidate) -> dict[str, float]:
        p = self._predictor(cand.space)
        if cand.input_shape != p.featurizer.shape and any(cand.input_shape) and not self._warned:
            self._warned = True
            log.warning(
                "predictor %s describes %s inputs, the search uses %s; its figures extrapolate",
                self.path,
                "x".join(map(str, p.featurizer.shape)),
                "x".join(map(str, cand.input_shape)),
            )
        return {self.cfg.metric: p.predict_one(cand.arch, cand.model)}


class TracedPredictorCostModel(PredictorCostModel):
    """A predictor for a space without an analytic description: features need the module."""

    needs_model = True


def from_config(cfg: PredictorTarget) -> CostModel:
    p = LatencyPredictor.load(cfg.path)
    return TracedPredictorCostModel(cfg) if p.featurizer.needs_model else PredictorCostModel(cfg)


# --------------------------------------------------------------------- workflows
def measure_on_target(
    cfg: Any,
    n: int,
    seed: int,
    progress: bool = True,
    seconds: list[float] | None = None,
    archs: list[Arch] | None = None,
    space: Space | None = None,
    expect_shape: Shape | None = None,
    **measure_kw: Any,
) -> tuple[Space, Shape, int, list[tuple[Arch, float]]]:
    """Measure ``n`` random archs of the config's space (or the given ``archs``) on its target
    (any kind that gives ``latency_ms``: a local runtime, a remote board, a command).
    ``seconds`` gets each arch's cost of build + measurement; ``measure_kw`` (local runtimes:
    ``repeats``, ``gate``...) go to :func:`~hwnas.hardware.collect.measure_archs`. ``space``
    replaces the config's (e.g. a predictor's own, with its settings); ``expect_shape``: the
    input shape the data must give (readings at another shape would compare nothing)."""
    from hwnas.data import load_dataset
    from hwnas.hardware.collect import measure_archs, progress_bar, sample_distinct
    from hwnas.hardware.targets import make_cost_model, make_meter
    from hwnas.space import make_space

    space = space or make_space(cfg.space)
    data = load_dataset(cfg.data, cfg.seed)
    shape, classes = data.input_shape, data.num_classes
    if expect_shape is not None and tuple(shape) != tuple(expect_shape):
        raise PredictorError(
            f"the config's data gives inputs of {'x'.join(map(str, shape))}, the archs were "
            f"measured at {'x'.join(map(str, expect_shape))}"
        )
    if archs is None:
        archs = sample_distinct(space, n, seed)
    meter = make_meter(cfg.target)
    if meter is not None:
        pairs = measure_archs(
            space, meter, shape, classes, archs, seed, progress, seconds=seconds, **measure_kw
        )
        return space, shape, classes, pairs
    if not type(cfg.target).learnable:
        raise PredictorError(
            f"target: {cfg.target.name} measures nothing to learn from; use a runtime "
            "(cpu-ort, cpu-torch, cuda-torch) or a board (remote, command)"
        )
    import torch

    source = make_cost_model(cfg.target)
    assert source is not None
    pairs = []
    try:
        with progress_bar(len(archs), "measure", progress) as bar:
            for i, arch in enumerate(archs):
                t0 = time.perf_counter()
                torch.manual_seed(seed + i)
                model = space.build(arch, shape, classes)
                value = source.costs(Candidate(arch, space, shape, model)).get("latency_ms")
                if value is None:
                    raise PredictorError(f"target: {cfg.target.name} gives no latency_ms")
                pairs.append((arch, float(value)))
                if seconds is not None:
                    seconds.append(time.perf_counter() - t0)
                bar.advance()
    finally:
        source.close()
    return space, shape, classes, pairs


def write_pairs(path: str | Path, space: Space, pairs: list[tuple[Arch, float]]) -> Path:
    """Measured pairs as a CSV table (``arch`` as JSON, ``latency_ms``), readable by --data."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "key", "latency_ms"])
        for arch, ms in pairs:
            w.writerow([json.dumps(arch, separators=(",", ":")), space.key(arch), f"{ms:.6g}"])
    return path


def train_split(
    space: Space,
    rows: Rows,
    train_size: int,
    shape: Shape,
    num_classes: int,
    seed: int,
    target: str,
    arch_column: str,
    trees: bool | None = None,
) -> tuple[LatencyPredictor, dict[str, Any]]:
    """Train on a seeded ``train_size`` split of ``rows``; figures on the rest."""
    tr, te = split_rows(len(rows.archs), train_size, seed)
    source = {
        "path": rows.path,
        "sha1": rows.sha1,
        "arch_column": arch_column,
        "target_column": target,
    }
    predictor = train(
        space,
        [rows.archs[i] for i in tr],
        rows.latency[tr],
        shape,
        num_classes,
        seed=seed,
        target=target,
        trees=trees,
        source=source,
    )
    archs, latency = held_out(predictor, rows)
    report = evaluate(predictor, archs, latency) if archs else {"n": 0}
    return predictor, report
