"""Latency lookup table (FBNet style): time every block of a space once, then add them up.

A network's latency is predicted as ``overhead + scale * sum(block latencies) + per_block *
number of blocks``; the three numbers are fitted (least absolute relative error) to a dozen
whole networks measured end to end: a third drawn at random, a third spread over how many
blocks a net has (down to nets of mostly skips) and a third over MACs (the smallest and largest
nets). A prediction is a few dict look-ups: ~20 us, where measuring costs an export, a session
and hundreds of runs. On the default chain space on ``cpu-ort`` the blocks in context add up to
the network (scale ~1.0). The per-block term is what a block costs inside a network beyond its
entry: without it, and with random calibration nets only, FBNet's nets of mostly skipped
blocks read 12-23 % slow on the dev VM's CPU (``benchmarks/lut_composition.py``).

**Blocks in context.** A block timed alone on ONNX Runtime pays for things it does not pay
inside a network: the per-call floor of a session run (~3 us here) and the layout reorders
ORT's NCHWc transformer puts at the graph's edges (and a residual ``Add`` it can no longer
fuse into the last conv). So a block is timed *after an adapter* -- a 1x1 conv producing its
input, as the previous block's 1x1 projection does -- and its entry is
``T(adapter -> block) - T(adapter)``. The floor cancels, the block sees its input in the
layout the network gives it, and the output reorder each difference leaves behind telescopes
along the chain: block k's ``+reorder(out_k)`` cancels block k+1's ``-reorder(in_{k+1})``.
Only the first block (the stem, which sees the network input) is timed alone; its entry
carries the floor once. Torch runtimes have no layouts; there the difference just removes the
adapter. (Blocks timed alone, floor subtracted, over-predict networks by 30-70 % here.)

**Noise.** The host is shared, and a neighbour's job slows medium graphs 1.5-2x for seconds
to minutes. Three defences: every reading is taken at a quiet moment and re-taken if a canary
graph says it was not (:class:`~hwnas.hardware.collect.QuietGate`); each entry is read in
``passes`` separate sweeps over the whole table, and more (up to ``max_passes``) until its two
fastest readings agree within ``agreement``; the fastest is kept (noise only adds time), and
the overhead fit minimises absolute, not squared, errors, so one bad network cannot tilt it.

**Storage.** One SQLite file per target fingerprint (CPU model, runtime and version, threads,
precision, batch, input shape) in ``$HWNAS_CACHE/lut`` (or ``~/.cache/hwnas/lut``). Every
reading is committed as it is taken, so a killed build continues where it stopped, and a
table is shared by every space and config on the same target. Entries are keyed by the full
context of the block (shapes, stride, channels, op), so two spaces reuse each other's blocks.

**Spaces.** A space takes part by being
:class:`~hwnas.space.capabilities.BlockDecomposable`: it lists the blocks of an arch
(``blocks``), every block it can contain for a full build (``all_blocks``) and the identity
of its configuration (``blocks_id``). The table never asks which space it is; the chain space
offers its blocks through :mod:`hwnas.space.chain_blocks`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hwnas.core.errors import UserError
from hwnas.hardware.base import Candidate, CostModel, Problem
from hwnas.hardware.collect import QuietGate, progress_bar, sample_distinct, sample_spread
from hwnas.hardware.config import LutTarget
from hwnas.hardware.host import cpu_model
from hwnas.space.capabilities import Block, BlockDecomposable, Shape, spaces_with, supports
from hwnas.space.chain_blocks import ChainBlocks as ChainBlocks  # where it was before

if TYPE_CHECKING:
    from torch import nn

    from hwnas.hardware.profile import LatencyMeter
    from hwnas.space.base import Arch, Space

log = logging.getLogger("hwnas")

#: bump when the meaning of an entry changes: old tables are then left alone, not misread
LUT_VERSION = 1
#: calibration networks are drawn with this seed, so every build of a table picks the same ones
CALIBRATION_SEED = 20_251_127
#: how they are drawn, part of a fit's key (fits of the random draws before it are not reused):
#: a third at random, a third spread over how many blocks a net has, a third over its MACs,
#: so the per-block term and the scale are seen from the smallest nets to the largest
CALIBRATION = "spread"


def _sha(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


# ------------------------------------------------------------------------- blocks
#: how a space splits its networks into blocks (the capability this table asks for)
BlockSource = BlockDecomposable


def block_source(space: Space) -> BlockDecomposable:
    """The space itself, if it is block-decomposable; else a one-line UserError."""
    if not supports(space, BlockDecomposable):
        offer = ", ".join(spaces_with(BlockDecomposable)) or "none built in"
        raise UserError(
            f"space {space.name}: no lookup-table blocks (it is not block-decomposable; "
            f"spaces that are: {offer})"
        )
    return cast(BlockDecomposable, space)


def _adapter(c: int) -> nn.Module:
    """Stands in for the previous block's 1x1 projection (BN folds into its bias)."""
    from torch import nn

    return nn.Conv2d(c, c, 1)


@dataclass(frozen=True)
class _Job:
    """One graph to time: an entry of the table."""

    key: str
    shape: Shape
    build: Callable[[], nn.Module] = field(compare=False, repr=False)


def _jobs(block: Block) -> list[_Job]:
    if block.first:
        return [_Job(block.key, block.input_shape, block.build)]
    c, h, w = block.input_shape

    def in_context() -> nn.Module:
        from torch import nn

        return nn.Sequential(_adapter(c), block.build())

    return [
        _Job(f"adapter:c{c}:{h}x{w}", block.input_shape, lambda: _adapter(c)),
        _Job(f"ctx|{block.key}", block.input_shape, in_context),
    ]


# ------------------------------------------------------------------- fingerprint
def fingerprint(s: LutTarget, input_shape: Shape, board: Any = None) -> dict[str, Any]:
    """What a table's figures depend on; a change of any of these means another table.
    ``board``: for ``runtime: board``, its meter (whose fingerprint asks the board)."""
    fp: dict[str, Any] = {
        "lut_version": LUT_VERSION,
        "runtime": s.runtime,
        "precision": "fp32",
        "batch": s.batch,
        "input_shape": list(input_shape),
    }
    if s.runtime == "board":
        fp.update(board.fingerprint())
    elif s.runtime == "cpu-ort":
        import onnxruntime

        fp.update(cpu=cpu_model(), threads=s.threads, runtime_version=onnxruntime.__version__)
    else:
        import torch

        fp["runtime_version"] = torch.__version__
        if s.runtime == "cpu-torch":
            fp.update(cpu=cpu_model(), threads=s.threads)
        else:
            if not torch.cuda.is_available():
                raise UserError("lut runtime cuda-torch: no CUDA device available")
            fp.update(
                device=torch.cuda.get_device_name(),
                cuda=torch.version.cuda,
                cuda_graphs=s.cuda_graphs,
            )
    return fp


def default_dir() -> Path:
    root = os.environ.get("HWNAS_CACHE")
    return Path(root) / "lut" if root else Path.home() / ".cache" / "hwnas" / "lut"


def make_lut_meter(s: LutTarget) -> LatencyMeter:
    from hwnas.hardware import profile

    if s.board is not None:
        from hwnas.hardware.remote import BoardMeter

        return cast("LatencyMeter", BoardMeter(s.board))  # times as a meter does
    common = {"warmup": s.warmup, "runs": s.runs, "blocks": s.blocks, "batch": s.batch}
    if s.runtime == "cpu-ort":
        return profile.OrtCpuMeter(threads=s.threads, **common)
    if s.runtime == "cpu-torch":
        return profile.TorchCpuMeter(threads=s.threads, **common)
    return profile.TorchCudaMeter(cuda_graphs=s.cuda_graphs, **common)


def lut_of(source: Any) -> LutTarget | None:
    """The table settings of one cost source: itself for a ``lut`` source, those of its
    runtime for a measured one, None where there is no runtime to time blocks on."""
    if isinstance(source, LutTarget):
        return source
    settings = source.as_lut()
    return None if settings is None else LutTarget(**settings)


def lut_settings(cfg: Problem) -> LutTarget:
    """The table a config asks for: a ``lut`` target or cost source, else its measured target."""
    for t in [cfg.target, *cfg.costs]:
        if isinstance(t, LutTarget):
            return t
    t = cfg.target
    lut = lut_of(t)
    if lut is not None:
        return lut
    raise UserError(
        f"target: {t.name} has no runtime to build a lookup table on; "
        "use cpu-ort, cpu-torch, cuda-torch, remote, command (measuring latency_ms) or lut"
    )


# ------------------------------------------------------------------------- table
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, ms REAL NOT NULL, ms2 REAL, spread REAL, readings INTEGER NOT NULL,
    updated REAL);
CREATE TABLE IF NOT EXISTS fits (
    space TEXT PRIMARY KEY, overhead_ms REAL NOT NULL, scale REAL NOT NULL, n INTEGER NOT NULL,
    median_rel_error REAL NOT NULL, archs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS block_fits (
    space TEXT PRIMARY KEY, overhead_ms REAL NOT NULL, scale REAL NOT NULL,
    per_block_ms REAL NOT NULL, n INTEGER NOT NULL, median_rel_error REAL NOT NULL,
    archs TEXT NOT NULL);
"""
# fits with the per-block term live in ``block_fits``; ``fits`` is left as older versions of
# hwnas write it, so a table shared by two installs serves both

# a reading joins the entry's two fastest (``ms`` <= ``ms2``); noise only ever adds time
_UPSERT = """
INSERT INTO entries (key, ms, ms2, spread, readings, updated) VALUES (?, ?, NULL, ?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    ms2 = CASE WHEN excluded.ms < ms THEN ms
               WHEN ms2 IS NULL OR excluded.ms < ms2 THEN excluded.ms ELSE ms2 END,
    spread = CASE WHEN excluded.ms < ms THEN excluded.spread ELSE spread END,
    ms = min(ms, excluded.ms), readings = readings + 1, updated = excluded.updated
"""


@dataclass(frozen=True)
class Fit:
    """``latency = overhead_ms + scale * sum(blocks) + per_block_ms * len(blocks)``, fitted
    on ``archs`` (their hashes)."""

    overhead_ms: float
    scale: float
    n: int
    median_rel_error: float
    archs: tuple[str, ...]
    per_block_ms: float = 0.0

    def latency(self, total_ms: float, blocks: int) -> float:
        """A network's predicted latency from its blocks' summed entries and their count."""
        return self.overhead_ms + self.scale * total_ms + self.per_block_ms * blocks


def fit_latency(
    sums: list[float], measured: list[float], counts: list[int] | None = None
) -> tuple[float, float, float, float]:
    """Robust fit of ``measured ~ overhead + scale * sums (+ per_block * counts)``:
    (overhead, scale, per_block, median |rel err|).

    It minimises the sum of *absolute relative* errors (iteratively reweighted least
    squares): relative, because a small net's error must weigh as much as a large one's;
    absolute, so that one calibration network timed during a burst of load cannot tilt it.
    The per-block term (only where the counts vary) is what a block costs inside a network
    beyond its entry: on the VM's CPU, without it, FBNet's nets of mostly skipped blocks read
    12 % slow and nets of many small convs 4 % fast (``benchmarks/lut_composition.py``).
    """
    import numpy as np

    s, m = np.asarray(sums, float), np.asarray(measured, float)
    c = np.zeros_like(s) if counts is None else np.asarray(counts, float)

    def solve(cols: list[Any]) -> Any:
        coef = np.zeros(len(cols))
        x, y = np.stack(cols, axis=1) / m[:, None], np.ones_like(m)
        w = np.ones_like(m)
        for _ in range(100):
            coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
            w = 1 / np.sqrt(np.maximum(np.abs(x @ coef - y), 1e-4))
        return coef

    fits = []
    if s.size >= 2 and np.ptp(s) > 0:
        # the per-block term only where the counts vary and enough nets pin three numbers
        if c.size >= 4 and np.ptp(c) > 0:
            fits.append(list(solve([np.ones_like(s), s, c])))
        fits.append([*solve([np.ones_like(s), s]), 0.0])
    for overhead, scale, per_block in fits:
        pred = overhead + scale * s + per_block * c
        # a block never costs less than nothing, nor a net: else the next, simpler fit
        if scale > 0 and per_block >= 0 and np.all(pred > 0):
            rel = np.abs(pred - m) / m
            return float(overhead), float(scale), float(per_block), float(np.median(rel))
    overhead = float(np.median(m - s))  # degenerate calibration set: keep the sum, shift it
    return overhead, 1.0, 0.0, float(np.median(np.abs(overhead + s - m) / m))


def table_directory(settings: LutTarget, directory: str | Path | None = None) -> Path:
    """The directory of a target's tables, made if absent; a file or a place it cannot be
    made is a one-line error (trials failed one after another on it, or a traceback)."""
    path = Path(directory or settings.path or default_dir()).expanduser()
    where = "--dir" if directory else "target.path" if settings.path else "the table directory"
    if path.exists() and not path.is_dir():  # the table file itself, named
        raise UserError(
            f"{where}: {path} is a file; name the directory of the tables ({path.parent})"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{where}: {path} cannot be made ({exc.strerror})") from None
    return path


def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A table's database, its schema in place (``read_only``: opened only to be read, as
    found); a file that is none, or one that cannot be opened, is a one-line error."""
    try:
        if read_only:
            uri = f"{path.absolute().as_uri()}?mode=ro"  # percent-encoded: any file name
            con = sqlite3.connect(uri, uri=True, timeout=60)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)
    except sqlite3.OperationalError as exc:  # locked by a build, read-only, no permission
        raise UserError(f"lookup table {path}: cannot be opened ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"lookup table {path}: not a readable table ({exc}); move it away and it is "
            "measured again"
        ) from None
    return con


class LatencyTable:
    """One table (one target fingerprint): its entries and its per-space fits.

    Every entry is one graph's latency: a block in context, an adapter, a stem, or a whole
    calibration network (``net|<space>|<arch hash>``). ``progress`` shows a Rich bar.
    """

    def __init__(
        self,
        settings: LutTarget,
        input_shape: Shape,
        directory: str | Path | None = None,
        progress: bool = False,
        meter: LatencyMeter | None = None,
    ) -> None:
        c, h, w = input_shape
        self.input_shape: Shape = (int(c), int(h), int(w))
        self.settings, self.progress = settings, progress
        self._meter: LatencyMeter | None = meter
        if settings.runtime == "board" and meter is None:  # asked for its device once, kept
            board = make_lut_meter(settings)
            board.check()  # type: ignore[attr-defined]  # not there at all: refused, bad input
            self._meter = board
        self.fingerprint = fingerprint(settings, self.input_shape, self._meter)
        fp_json = json.dumps(self.fingerprint, sort_keys=True)
        directory = table_directory(settings, directory)
        self.path = directory / f"{settings.runtime}-{_sha(fp_json)}.sqlite"
        self._con = _connect(self.path)
        row = self._con.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            self._con.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fp_json,))
        elif json.loads(row[0]) != self.fingerprint:
            raise UserError(f"lookup table {self.path}: holds another target's figures")
        #: key -> (fastest ms, second fastest ms or None, readings)
        self._entries: dict[str, tuple[float, float | None, int]] = {
            k: (ms, ms2, n)
            for k, ms, ms2, n in self._con.execute("SELECT key, ms, ms2, readings FROM entries")
        }
        self._cost: dict[str, float] = {}
        self._fits: dict[str, Fit] = {}
        self._calibrations: dict[str, list[Arch]] = {}
        self._sources: dict[tuple[int, int], tuple[Space, BlockSource, str]] = {}
        self._onnx: dict[str, bytes] = {}
        #: CPU runtimes wait for a quiet moment before each reading (see QuietGate)
        self.gate = (
            QuietGate(settings.threads, patience=settings.quiet_wait, shape=self.input_shape)
            if settings.runtime in ("cpu-ort", "cpu-torch") and settings.quiet_wait > 0
            else None
        )
        #: graphs timed by this object: 0 means every figure came from disk
        self.measured = 0

    # -------------------------------------------------------------- entries
    def __len__(self) -> int:
        """Entries, calibration networks included."""
        return len(self._entries)

    @property
    def meter(self) -> LatencyMeter:
        if self._meter is None:
            self._meter = make_lut_meter(self.settings)
        return self._meter

    def _time(self, job: _Job) -> Any:
        """Time one graph; on ORT its export is kept for the next sweep (export costs more)."""
        import torch

        from hwnas.hardware.profile import OrtCpuMeter, onnx_bytes
        from hwnas.hardware.remote import BoardMeter

        self.measured += 1
        meter: Any = self.meter
        torch.manual_seed(0)
        if isinstance(meter, OrtCpuMeter | BoardMeter):
            if job.key not in self._onnx:
                self._onnx[job.key] = onnx_bytes(job.build(), job.shape, meter.batch)
            graph = self._onnx[job.key]
            if isinstance(meter, BoardMeter):
                run = partial(meter.measure_onnx, graph, job.shape)
            else:
                run = partial(meter.measure_onnx, graph)
        else:
            run = partial(meter.measure, job.build(), job.shape)
        return run() if self.gate is None else self.gate.read(run)

    def _record(self, key: str, ms: float, spread: float) -> None:
        self._con.execute(_UPSERT, (key, ms, spread, time.time()))
        old = self._entries.get(key)
        if old is None:
            self._entries[key] = (ms, None, 1)
            return
        best, second, n = old
        if ms < best:
            best, second = ms, best
        elif second is None or ms < second:
            second = ms
        self._entries[key] = (best, second, n + 1)

    def settled(self, key: str) -> bool:
        """Enough readings: ``passes``, and the two fastest agree (or ``max_passes`` reached)."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        best, second, n = entry
        s = self.settings
        if n >= s.max_passes or (n >= s.passes and s.passes == 1):
            return True
        return n >= s.passes and second is not None and second - best <= s.agreement * best

    def _settle(self, jobs: list[_Job]) -> int:
        """Sweep over the unsettled entries until all are settled; returns readings taken.

        Sweeps rather than repeats: one entry's readings are a whole sweep apart, so a burst
        of load spoils at most some of them, and the two fastest then disagree.
        """
        jobs = [j for j in {j.key: j for j in jobs}.values() if not self.settled(j.key)]
        if not jobs:
            return 0
        s = self.settings
        need = sum(max(1, s.passes - self._entries.get(j.key, (0.0, None, 0))[2]) for j in jobs)
        log.info("lookup table %s: %d graphs to time", self.path.name, len(jobs))
        taken = 0
        with progress_bar(need, "lut", self.progress) as bar:
            for _ in range(s.max_passes):
                todo = [j for j in jobs if not self.settled(j.key)]
                if not todo:
                    break
                if taken + len(todo) > bar.total:
                    bar.extend(taken + len(todo) - bar.total)
                for job in todo:
                    t = self._time(job)
                    self._record(job.key, t.latency_ms, t.spread)
                    taken += 1
                    bar.advance()
        self._cost.clear()
        return taken

    def block_ms(self, block: Block) -> float:
        """The block's latency in context (KeyError if an entry is missing)."""
        cost = self._cost.get(block.key)
        if cost is None:
            jobs = _jobs(block)
            if block.first:
                cost = self._entries[jobs[0].key][0]
            else:
                cost = self._entries[jobs[1].key][0] - self._entries[jobs[0].key][0]
            self._cost[block.key] = cost
        return cost

    def sum_ms(self, blocks: list[Block]) -> float:
        """Sum of the blocks' entries, measuring any that are missing."""
        try:
            return sum(self.block_ms(b) for b in blocks)
        except KeyError:
            self._settle([j for b in blocks for j in _jobs(b)])
            return sum(self.block_ms(b) for b in blocks)

    # ---------------------------------------------------------- calibration
    def _source(self, space: Space, num_classes: int) -> tuple[BlockSource, str]:
        """The space's block source and the key of its fit (memoised: predictions are hot)."""
        memo = self._sources.get((id(space), num_classes))
        if memo is None or memo[0] is not space:
            src = block_source(space)
            memo = (space, src, f"{src.blocks_id()}-n{num_classes}-{CALIBRATION}")
            self._sources[(id(space), num_classes)] = memo
        return memo[1], memo[2]

    def _stored_fit(self, sid: str) -> Fit | None:
        if sid not in self._fits:
            row = self._con.execute(
                "SELECT overhead_ms, scale, n, median_rel_error, archs, per_block_ms "
                "FROM block_fits WHERE space=?",
                (sid,),
            ).fetchone()
            if row is None:
                return None
            self._fits[sid] = Fit(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), row[5])
        return self._fits[sid]

    def _calibration(
        self, space: Space, num_classes: int
    ) -> tuple[list[Arch], list[list[Block]], list[_Job]]:
        """The calibration archs (same for every build, see :meth:`_draw_calibration`), their
        blocks and whole-network jobs."""
        src, sid = self._source(space, num_classes)
        archs = self._calibrations.get(sid)
        if archs is None:
            archs = self._draw_calibration(space, src, num_classes)
            self._calibrations[sid] = archs
        blocks = [src.blocks(a, self.input_shape, num_classes) for a in archs]
        nets = [
            _Job(
                f"net|{sid}|{space.arch_hash(a)}",
                self.input_shape,
                partial(space.build, a, self.input_shape, num_classes),
            )
            for a in archs
        ]
        return archs, blocks, nets

    def _draw_calibration(self, space: Space, src: BlockSource, num_classes: int) -> list[Arch]:
        """A third at random (the nets a search mostly meets), a third spread over the number
        of blocks (down to nets of mostly skips: the per-block term) and a third over MACs
        (the smallest and largest nets: the scale), each from the space's least to its most."""
        n, shape = self.settings.calibration, self.input_shape

        def blocks(arch: Arch) -> float:
            return len(src.blocks(arch, shape, num_classes))

        memo: dict[str, float] = {}

        def macs(arch: Arch) -> float:
            """The net's MACs as its blocks' (each counted once, by key: a walk meets the
            same blocks again and again)."""
            import torch

            from hwnas.hardware.analytic import count_macs

            total = 0.0
            for b in src.blocks(arch, shape, num_classes):
                if b.key not in memo:
                    with torch.random.fork_rng(devices=[]):  # building draws weights
                        memo[b.key] = float(count_macs(b.build(), b.input_shape))
                total += memo[b.key]
            return total

        k = n // 3
        drawn = [
            *sample_distinct(space, n - 2 * k, CALIBRATION_SEED),
            *sample_spread(space, k, CALIBRATION_SEED + 1, blocks, walk=300),  # counting is cheap
            *sample_spread(space, k, CALIBRATION_SEED + 2, macs),
        ]
        return list({space.arch_hash(a): a for a in drawn}.values())

    def _fit_now(self, space: Space, num_classes: int) -> Fit:
        """Fit overhead and scale on the calibration networks' current readings; store it."""
        sid = self._source(space, num_classes)[1]
        archs, blocks, nets = self._calibration(space, num_classes)
        sums = [sum(self.block_ms(b) for b in bl) for bl in blocks]
        measured = [self._entries[j.key][0] for j in nets]
        overhead, scale, per_block, err = fit_latency(sums, measured, [len(bl) for bl in blocks])
        hashes = tuple(space.arch_hash(a) for a in archs)
        fit = Fit(overhead, scale, len(archs), err, hashes, per_block)
        self._con.execute(
            "INSERT OR REPLACE INTO block_fits (space, overhead_ms, scale, n, median_rel_error, "
            "archs, per_block_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sid, overhead, scale, fit.n, err, json.dumps(fit.archs), per_block),
        )
        log.info(
            "lookup table fit for %s: overhead %.4f ms, scale %.3f, %.4f ms per block, "
            "median error %.1f %% (%d nets)",
            sid,
            overhead,
            scale,
            per_block,
            100 * err,
            fit.n,
        )
        self._fits[sid] = fit
        return fit

    def fit(self, space: Space, num_classes: int, extra: list[_Job] | None = None) -> Fit:
        """The fit (overhead, scale, per-block term) for ``space``; its calibration networks
        are timed if needed.

        ``extra`` entries are timed in the same sweeps (a full build's blocks), so that the
        networks' readings are spread over the whole build.
        """
        sid = self._source(space, num_classes)[1]
        fit = self._stored_fit(sid)
        if fit is not None and not extra:
            return fit
        _, blocks, nets = self._calibration(space, num_classes)
        jobs = [j for bl in blocks for b in bl for j in _jobs(b)]
        if self._settle([*(extra or []), *jobs, *nets]) == 0 and fit is not None:
            return fit
        return self._fit_now(space, num_classes)

    def refresh(self, space: Space, num_classes: int, archs: list[Arch] | None = None) -> int:
        """One more reading of every entry ``space`` uses, then refit; returns readings.

        The machine's state drifts (a neighbour's job can slow some graphs for minutes), and
        the fastest of readings spread over a longer time is nearer the unloaded figure.
        Interleaving refreshes with other measurements gives both the same chances. Spaces
        that cannot list all their blocks refresh those of the calibration archs and ``archs``.
        """
        src = self._source(space, num_classes)[0]
        cal, blocks, nets = self._calibration(space, num_classes)
        every = src.all_blocks(self.input_shape, num_classes)
        if every is None:
            every = [b for a in archs or [] for b in src.blocks(a, self.input_shape, num_classes)]
        every += [b for bl in blocks for b in bl]
        jobs = list({j.key: j for b in every for j in _jobs(b)}.values()) + nets
        with progress_bar(len(jobs), "lut refresh", self.progress) as bar:
            for job in jobs:
                t = self._time(job)
                self._record(job.key, t.latency_ms, t.spread)
                bar.advance()
        self._cost.clear()
        self._fit_now(space, num_classes)
        return len(jobs)

    # ----------------------------------------------------------- prediction
    def build(self, space: Space, num_classes: int) -> int:
        """Time every block the space can contain (if it can list them), and fit; readings."""
        before = self.measured
        blocks = self._source(space, num_classes)[0].all_blocks(self.input_shape, num_classes)
        self.fit(space, num_classes, extra=[j for b in blocks or [] for j in _jobs(b)])
        return self.measured - before

    def predict(self, space: Space, arch: Arch, num_classes: int) -> float:
        """Predicted end-to-end latency (ms) of ``arch``; missing entries are measured first."""
        src, sid = self._source(space, num_classes)
        fit = self._fits.get(sid) or self.fit(space, num_classes)
        blocks = src.blocks(arch, self.input_shape, num_classes)
        return fit.latency(self.sum_ms(blocks), len(blocks))

    def known(self, space: Space, arch: Arch, num_classes: int) -> float | None:
        """:meth:`predict` from the entries and fit already held, measuring nothing (None: an
        entry or the fit is missing): cheap enough to price every candidate a strategy weighs."""
        src, sid = self._source(space, num_classes)
        fit = self._stored_fit(sid)  # memoised in self._fits
        if fit is None:
            return None
        blocks = src.blocks(arch, self.input_shape, num_classes)
        try:
            total = sum(self.block_ms(b) for b in blocks)
        except KeyError:
            return None
        return fit.latency(total, len(blocks))

    def close(self) -> None:
        self._con.close()


# ------------------------------------------------------------------ cost model
def _num_classes(model: Any) -> int:
    """Class count from the built model's last linear layer (the LUT's head entry needs it)."""
    from torch import nn

    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("lut: cannot tell the class count (the model has no linear layer)")
    return int(last[-1].out_features)


class LutCostModel(CostModel):
    """``latency_ms`` from the lookup table of a ``lut`` target.

    It needs the built model only for the input shape and class count the search's data
    gives; the prediction itself reads the arch.
    """

    needs_model = True

    def __init__(self, cfg: LutTarget) -> None:
        self.cfg = cfg
        self.tables: dict[Shape, LatencyTable] = {}
        self._board: Any = None  # one board connection for every table

    def _board_meter(self) -> Any:
        """The board's meter (made on first need), or None for a runtime of this host."""
        if self.cfg.board is not None and self._board is None:
            self._board = make_lut_meter(self.cfg)
        return self._board

    def check(self) -> None:
        """The tables' directory and this runtime's tables in it are readable, and a board
        answers: refused before a search writes its study, not trial by trial."""
        for path in sorted(table_directory(self.cfg).glob(f"{self.cfg.runtime}-*.sqlite")):
            _connect(path, read_only=True).close()
        if (board := self._board_meter()) is not None:
            board.check()

    def table(self, input_shape: Shape) -> LatencyTable:
        if input_shape not in self.tables:
            meter = self._board_meter()
            self.tables[input_shape] = LatencyTable(self.cfg, input_shape, meter=meter)
        return self.tables[input_shape]

    def costs(self, cand: Candidate) -> dict[str, float]:
        if cand.model is None:
            raise ValueError("lut: needs the built model (for its input shape and classes)")
        table = self.table(tuple(cand.input_shape))  # type: ignore[arg-type]
        return {"latency_ms": table.predict(cand.space, cand.arch, _num_classes(cand.model))}

    @property
    def prices_untrained(self) -> bool:
        return True

    def known(self, cand: Candidate, num_classes: int | None) -> dict[str, float] | None:
        """The table's prediction from the entries it holds; nothing is measured."""
        if num_classes is None:
            return None
        table = self.table(tuple(cand.input_shape))  # type: ignore[arg-type]
        ms = table.known(cand.space, cand.arch, num_classes)
        return None if ms is None else {"latency_ms": ms}

    def close(self) -> None:
        for t in self.tables.values():
            t.close()


# -------------------------------------------------------------------- commands
def _problem(cfg: Problem) -> tuple[Space, Shape, int]:
    from hwnas.data import load_dataset
    from hwnas.space import make_space

    space = make_space(cfg.space)
    block_source(space)  # fail early on a space without blocks
    data = load_dataset(cfg.data, cfg.seed)
    return space, data.input_shape, data.num_classes


def build_table(
    cfg: Problem, progress: bool = True, directory: str | Path | None = None
) -> tuple[LatencyTable, dict[str, Any]]:
    """``hwnas lut build``: the config's space on the config's runtime, all blocks and the fit."""
    settings = lut_settings(cfg)
    space, shape, classes = _problem(cfg)
    table = LatencyTable(settings, shape, directory, progress=progress)
    measured = table.build(space, classes)
    fit = table.fit(space, classes)
    return table, {
        "path": str(table.path),
        "entries": len(table),
        "measured_now": measured,
        "overhead_ms": fit.overhead_ms,
        "scale": fit.scale,
        "per_block_ms": fit.per_block_ms,
        "fit_median_rel_error": fit.median_rel_error,
        "quiet_wait_seconds": table.gate.waited if table.gate else 0.0,
        "fingerprint": table.fingerprint,
    }


#: two fastest readings of an arch within this (relative) of each other: it is settled
SETTLED = 0.05
#: below this noise floor, ``lut eval`` warns that the machine, not the table, is measured
NOISY = 0.9


def evaluate_table(
    cfg: Problem,
    n: int,
    seed: int = 0,
    repeats: int = 1,
    progress: bool = True,
    directory: str | Path | None = None,
    max_repeats: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``hwnas lut eval``: predictions vs. end-to-end measurement on ``n`` held-out archs.

    Ground truth is the config's measured target (its own protocol), or for a ``lut`` target
    a meter with the table's protocol; archs the overhead was fitted on are never drawn.
    With ``repeats`` > 1 the archs are measured in that many sweeps (fastest reading kept),
    and between sweeps the table takes one more reading of each of its entries: truth and
    table then see the same stretch of machine states. With ``max_repeats`` (and ``repeats`` of
    2 or more), an arch whose two fastest readings still differ by more than 5 % is measured
    again, up to that many readings, without further table refreshes: on a machine that drifts
    the tool measures the unsettled archs longer rather than report its noise as the table's
    error. Returns the report and one row per arch.
    """
    import statistics

    from hwnas.hardware.collect import (
        accuracy_report,
        measure_archs,
        measure_random_archs,
        noise_floor,
    )
    from hwnas.hardware.targets import make_meter

    settings = lut_settings(cfg)
    space, shape, classes = _problem(cfg)
    table = LatencyTable(settings, shape, directory, progress=progress)
    fit = table.fit(space, classes)
    meter = make_meter(cfg.target) or make_lut_meter(settings)
    seconds: list[float] = []
    archs: list[Arch] = []
    sweeps: list[list[float]] = []
    # at least two sweeps: the second reading of each arch is the measurement's own noise
    # floor (the table cannot agree with the truth more often than the truth with itself);
    # with repeats 1 the second sweep only measures that, the figures use the first
    for sweep in range(max(repeats, 2)):
        pairs = measure_random_archs(
            space,
            meter,
            shape,
            classes,
            n,
            seed,
            progress=progress,
            exclude=set(fit.archs),
            seconds=seconds if sweep == 0 else None,
            gate=table.gate,
        )
        archs = [a for a, _ in pairs]
        if len(archs) < 2:  # a space this small: (nearly) every arch calibrated the fit
            raise UserError(
                f"lut eval: the space holds {len(archs)} arch(s) besides the "
                f"{len(fit.archs)} the table was fitted on: too few to "
                "judge it by; lower target.calibration or widen the space"
            )
        sweeps.append([ms for _, ms in pairs])
        if sweep < repeats - 1:
            table.refresh(space, classes, archs)
    readings = [sorted(r) for r in zip(*sweeps[: max(repeats, 1)], strict=True)]
    extra = 0
    while max_repeats is not None and repeats + extra < max_repeats:
        todo = [i for i, r in enumerate(readings) if len(r) > 1 and r[1] - r[0] > SETTLED * r[0]]
        if not todo:
            break
        again = measure_archs(
            space, meter, shape, classes, [archs[i] for i in todo], seed, progress, gate=table.gate
        )
        for i, (_, ms) in zip(todo, again, strict=True):
            readings[i] = sorted([*readings[i], ms])
        extra += 1
    best = [r[0] for r in readings]  # the fastest reading of each arch, extra sweeps included
    for arch in archs:  # blocks no arch so far had: measured now, not while timing
        table.predict(space, arch, classes)
    preds, pred_s = [], []
    for arch in archs:
        t0 = time.perf_counter()
        preds.append(table.predict(space, arch, classes))
        pred_s.append(time.perf_counter() - t0)
    report: dict[str, Any] = accuracy_report(preds, best)
    med_p, med_m = statistics.median(pred_s), statistics.median(seconds)
    report.update(
        seconds_per_prediction=med_p,
        seconds_per_measurement=med_m,
        speedup=med_m / med_p if med_p > 0 else float("inf"),
    )
    floor = report["noise_floor_within_10pct"] = noise_floor(sweeps[0], sweeps[1])
    report["extra_sweeps"] = extra
    # with one reading per arch nothing says whether it has settled
    report["settled"] = (
        sum(r[1] - r[0] <= SETTLED * r[0] for r in readings) / len(readings)
        if repeats >= 2
        else None
    )
    if floor is not None and floor < NOISY:
        report["warning"] = (
            f"two end-to-end readings of one arch agree within +-10 % for only {floor:.0%} of "
            f"the archs: this machine's timing drifts (other load, frequency changes), so "
            f"figures on it judge the machine more than the table; measure on a quiet machine"
        )
    rows = [
        {"arch": a, "describe": space.describe(a), "measured_ms": m, "predicted_ms": p}
        for a, m, p in zip(archs, best, preds, strict=True)
    ]
    table.close()
    return report, rows
