"""Ground truth for latency models: measure random archs end to end, and score predictions.

Both the lookup table and the learned predictor are judged the same way, against archs they
never saw, so the sampling and the metrics live here, apart from either model.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np

from hwnas.space.capabilities import Evolvable, supports

if TYPE_CHECKING:
    from hwnas.hardware.profile import LatencyMeter
    from hwnas.space.base import Arch, Space


class _Reading(Protocol):
    @property
    def latency_ms(self) -> float: ...


T = TypeVar("T", bound=_Reading)


def canary_timer(shape: tuple[int, int, int], mid: int, threads: int = 1) -> Callable[[], float]:
    """A function timing (ms, on ONNX Runtime) an MBConv-like graph on input ``shape``:
    1x1 conv to ``mid`` channels, 3x3 depthwise, 1x1 back, ReLU6 between. The quiet gate's
    canary is the small one; a diagnosis can time one the size of the graphs it measures."""
    import torch
    from torch import nn

    from hwnas.hardware.profile import onnx_bytes, ort_session, time_callable

    torch.manual_seed(0)
    c = shape[0]
    graph = nn.Sequential(
        nn.Conv2d(c, mid, 1), nn.ReLU6(), nn.Conv2d(mid, mid, 3, 1, 1, groups=mid), nn.ReLU6()
    )
    graph.append(nn.Conv2d(mid, c, 1))
    sess = ort_session(onnx_bytes(graph, shape), threads)
    binding = sess.io_binding()
    binding.bind_cpu_input(sess.get_inputs()[0].name, np.zeros((1, *shape), np.float32))
    binding.bind_output(sess.get_outputs()[0].name)
    run = lambda: sess.run_with_iobinding(binding)  # noqa: E731
    return lambda: time_callable(run, 5, 40, 4).latency_ms


class QuietGate:
    """Waits for a quiet moment of a shared CPU before each reading.

    On this kind of host a neighbour's job (e.g. on the sibling hyper-thread) slows
    medium-sized graphs 1.5-2x for seconds to minutes, and readings taken then agree with
    each other, so repeating them does not help. A canary graph is timed (about a
    millisecond) before each reading; while it is more than ``tolerance`` slower than the
    fastest it has been, the gate waits and looks again. After ``patience`` seconds it gives
    up and stops gating for ``relax`` seconds, so a long busy spell slows a build by at most
    a few percent.

    Given the ``shape`` of the inputs it gates readings for, the canary takes that input size
    (16 channels, a 96-wide middle): on the GPU machine's 16-core Xeon the small 8x8x8 canary
    flagged 16 of 31 undisturbed rounds and missed a 1.7x slowdown of a CIFAR-sized net that
    a canary at 32x32 caught (8 of 31 flagged; ``benchmarks/lut_diag.py``, 40 rounds). Each
    look costs ~3 ms at 32x32 instead of ~0.3 ms.
    """

    def __init__(
        self,
        threads: int = 1,
        tolerance: float = 0.10,
        patience: float = 3.0,
        relax: float = 30.0,
        poll: float = 0.2,
        shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.shape = shape
        self.threads, self.tolerance, self.patience = threads, tolerance, patience
        self.relax, self.poll = relax, poll
        self.best = math.inf
        self.waited = 0.0
        self.timeouts = 0
        self.retaken = 0
        self._relaxed_until = 0.0
        self._probe: Any = None

    def _canary(self) -> Any:
        """The timing function of the gate's canary: an MBConv-like graph at the gated
        readings' input size, or a small one (8x8x8) without a shape."""
        if self.shape is None:
            return canary_timer((8, 8, 8), 24, self.threads)
        return canary_timer((16, self.shape[1], self.shape[2]), 96, self.threads)

    def _quiet(self) -> bool:
        """One canary reading: is the machine at its best speed right now?"""
        if self._probe is None:
            self._probe = self._canary()
        ms = self._probe()
        self.best = min(self.best, ms)
        return bool(ms <= self.best * (1 + self.tolerance))

    def wait(self) -> None:
        """Return at a quiet moment, or after ``patience`` seconds (then relax for a while)."""
        import time

        start = time.monotonic()
        if start < self._relaxed_until:
            return
        while not self._quiet():
            now = time.monotonic()
            if now - start > self.patience:
                self.timeouts += 1
                self._relaxed_until = now + self.relax
                break
            time.sleep(self.poll)
        self.waited += time.monotonic() - start

    def read(self, measure: Callable[[], T], attempts: int = 3) -> T:
        """``measure()`` between two quiet canary readings; a reading the canary suggests was
        slowed is taken again (up to ``attempts``); returns the fastest taken."""
        import time

        best: T | None = None
        for _ in range(attempts):
            self.wait()
            t = measure()
            if best is None or t.latency_ms < best.latency_ms:
                best = t
            if time.monotonic() < self._relaxed_until or self._quiet():
                break
            self.retaken += 1
        assert best is not None
        return best


def sample_distinct(space: Space, n: int, seed: int, exclude: set[str] | None = None) -> list[Arch]:
    """Up to ``n`` random archs with distinct ``arch_hash`` (fewer only if the space is smaller).

    ``exclude`` holds hashes that must not be drawn (e.g. the archs a model was fitted on).
    """
    rng = random.Random(seed)
    seen = set(exclude or ())
    out: list[Arch] = []
    misses = 0
    while len(out) < n and misses < 1000 + 20 * n:
        arch = space.sample(rng)
        h = space.arch_hash(arch)
        if h in seen:
            misses += 1
            continue
        seen.add(h)
        out.append(arch)
    return out


def sample_spread(
    space: Space, n: int, seed: int, size: Callable[[Arch], float], walk: int = 30
) -> list[Arch]:
    """Up to ``n`` distinct archs spread evenly over ``size`` (e.g. a net's number of blocks),
    from the smallest the space reaches to the largest.

    Random draws land in the middle of most spaces' range -- a random FBNet net skips ~2 of
    its 22 blocks -- so the candidates are a random pool of ``3 n`` plus two walks by mutation
    from its first arch, one taking each step that makes ``size`` smaller, one larger, each
    ending after ``walk`` steps in a row that do not; of them, the nearest to ``n`` evenly
    spaced sizes are taken. Without mutation (not :class:`Evolvable`): the pool alone.
    Deterministic for a seed."""
    rng = random.Random(seed)
    pool = sample_distinct(space, 3 * n, seed)
    if len(pool) <= n:
        return pool
    sized: dict[str, tuple[float, Arch]] = {space.arch_hash(a): (size(a), a) for a in pool}
    for direction in (-1.0, 1.0) if supports(space, Evolvable) else ():
        arch, idle = pool[0], 0
        here = sized[space.arch_hash(arch)][0]
        while idle < walk:
            child = cast(Evolvable, space).mutate(arch, rng)
            h = space.arch_hash(child)
            if h not in sized:
                sized[h] = (size(child), child)
            if (sized[h][0] - here) * direction > 0:
                arch, here, idle = child, sized[h][0], 0
            else:
                idle += 1
    ranked = sorted(sized.values(), key=lambda t: t[0])
    lo, hi = ranked[0][0], ranked[-1][0]
    chosen: list[int] = []
    for i in range(n):
        goal = lo + (hi - lo) * i / max(n - 1, 1)
        free = [j for j in range(len(ranked)) if j not in chosen]
        chosen.append(min(free, key=lambda j: (abs(ranked[j][0] - goal), j)))
    return [ranked[j][1] for j in sorted(chosen)]


def measure_random_archs(
    space: Space,
    meter: LatencyMeter,
    input_shape: tuple[int, int, int],
    num_classes: int,
    n: int,
    seed: int,
    progress: bool = True,
    exclude: set[str] | None = None,
    **measure_kw: Any,
) -> list[tuple[Arch, float]]:
    """``n`` distinct random archs of ``space`` and their end-to-end latency (ms) on ``meter``.

    ``exclude``: arch hashes never to draw (e.g. a model's training archs); ``measure_kw``
    (``repeats``, ``seconds``, ``max_repeats``, ``agreement``, ``gate``) go to
    :func:`measure_archs`.
    """
    archs = sample_distinct(space, n, seed, exclude)
    return measure_archs(
        space, meter, input_shape, num_classes, archs, seed, progress, **measure_kw
    )


def measure_archs(
    space: Space,
    meter: LatencyMeter,
    input_shape: tuple[int, int, int],
    num_classes: int,
    archs: list[Arch],
    seed: int,
    progress: bool = True,
    repeats: int = 1,
    seconds: list[float] | None = None,
    max_repeats: int | None = None,
    agreement: float = 0.05,
    gate: QuietGate | None = None,
) -> list[tuple[Arch, float]]:
    """``archs`` and their end-to-end latency (ms) on ``meter``. ``repeats`` > 1
    measures every arch again in later sweeps and keeps the fastest reading, so load that
    slows one sweep does not stick; with ``max_repeats``, archs whose two fastest readings
    still differ by more than ``agreement`` (relative) get further sweeps, up to that many.
    ``seconds``, if given, receives each arch's cost of one measurement (build, export,
    timing), as a search would pay it. ``gate``: wait for a quiet moment before each reading.
    """
    import time

    import torch

    readings: list[list[float]] = [[] for _ in archs]
    most = max(repeats, max_repeats or repeats)

    def settled(i: int) -> bool:
        r = sorted(readings[i])
        if len(r) >= most or (len(r) >= repeats and repeats == 1):
            return True
        return len(r) >= repeats and r[1] - r[0] <= agreement * r[0]

    with _bar(len(archs) * repeats, "measure", progress) as bar:
        for sweep in range(most):
            todo = [i for i in range(len(archs)) if not settled(i)]
            if not todo:
                break
            if sweep >= repeats:
                bar.extend(len(todo))
            for i in todo:
                t0 = time.perf_counter()
                torch.manual_seed(seed + i)  # weights don't change latency; the run repeats
                model = space.build(archs[i], input_shape, num_classes)
                if gate is None:
                    reading = meter.measure(model, input_shape)
                else:
                    waited = gate.waited
                    reading = gate.read(partial(meter.measure, model, input_shape))
                    t0 += gate.waited - waited  # waiting is not what a search pays
                readings[i].append(float(reading.latency_ms))
                if sweep == 0 and seconds is not None:
                    seconds.append(time.perf_counter() - t0)
                bar.advance()
    return [(a, min(r)) for a, r in zip(archs, readings, strict=True)]


class _bar:
    """A Rich progress bar on stderr (or nothing): ``with _bar(n, label, on) as bar``."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _bar:
        if self.enabled:
            from rich.console import Console

            from hwnas.progress import make_progress

            self.progress = make_progress(self.label, Console(stderr=True))
            self.task = self.progress.add_task(self.label, total=self.total)
            self.progress.start()
        return self

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def extend(self, n: int) -> None:
        """More work than first counted (e.g. readings that must be repeated)."""
        self.total += n
        if self.progress is not None:
            self.progress.update(self.task, total=self.total)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def progress_bar(total: int, label: str, enabled: bool = True) -> _bar:
    """Context manager for a bar with ``advance()`` and ``extend(n)``; silent if not enabled."""
    return _bar(total, label, enabled)


def noise_floor(first: list[float], second: list[float]) -> float | None:
    """Share of archs whose two end-to-end readings agree within +-10 %: how often the
    measurement agrees with itself, which no table or predictor can beat by much."""
    agree = [abs(a / b - 1) <= 0.10 for a, b in zip(first, second, strict=True) if b > 0]
    return sum(agree) / len(agree) if agree else None


def accuracy_report(pred: list[float], meas: list[float]) -> dict[str, float | None]:
    """How well predicted latencies match measured ones (the issue's four figures, plus n).

    ``within_10pct``: share with |pred - meas| <= 10 % of meas; ``kendall_tau``: rank
    agreement (tau-b); ``rmse_ms``; ``mape``: mean |pred - meas| / meas (a fraction).
    """
    from scipy.stats import kendalltau

    p, m = np.asarray(pred, float), np.asarray(meas, float)
    if p.shape != m.shape or p.size == 0:
        raise ValueError("pred and meas must be non-empty and of equal length")
    rel = np.abs(p - m) / m
    tau = float(kendalltau(p, m).statistic) if p.size > 1 else math.nan
    return {
        "n": int(p.size),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "kendall_tau": tau if math.isfinite(tau) else None,  # JSON has no NaN
        "rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))),
        "mape": float(np.mean(rel)),
    }
