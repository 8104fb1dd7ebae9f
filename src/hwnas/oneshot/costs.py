"""Per-choice costs C(i, j) of a supernet space: what the resource loss weighs.

The space lists, per position, the block each pick adds (:meth:`PerChoiceCosts.choice_blocks`);
a cost here is additive over blocks: latency from a lookup table timed on a runtime (the
table's fitted ``overhead + scale * sum + per_block * blocks``: a pick's cost is its entry,
scaled, plus the per-block term; a skip without a block, nothing), latency or energy from a
datasheet device model (a sum over layers, so exact per block), MACs counted by PyTorch's
FLOP counter, or parameters. Memory peaks are not additive and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.core.errors import UserError
from hwnas.core.metrics import base_name

if TYPE_CHECKING:
    from hwnas.hardware.config import DeviceTarget, LutTarget
    from hwnas.space.base import Space
    from hwnas.space.capabilities import Block, Shape

ADDITIVE = ("latency_ms", "energy_mj", "macs", "params")
#: the metric name of a cost table of zeros (a strategy without a resource loss)
NO_COST = "none"


@dataclass
class ChoiceCosts:
    """``fixed`` (every arch's share) and ``table[j][i]`` (what pick ``i`` at ``j`` adds)."""

    metric: str
    fixed: float
    table: list[list[float]]

    def of(self, picks: list[int]) -> float:
        """The cost of the arch picking ``picks`` (the table's prediction)."""
        return self.fixed + sum(row[i] for row, i in zip(self.table, picks, strict=True))

    def cheapest(self) -> float:
        return self.fixed + sum(min(row) for row in self.table)

    def dearest(self) -> float:
        return self.fixed + sum(max(row) for row in self.table)

    def uniform(self) -> float:
        """E[C] when every pick is equally likely (theta at zero)."""
        return self.fixed + sum(sum(row) / len(row) for row in self.table)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "fixed": self.fixed, "table": self.table}


def check_metric(metric: str) -> None:
    if base_name(metric) not in ADDITIVE:
        raise UserError(
            f"strategy.cost_metric: {metric} is not additive over blocks; "
            f"use one of {', '.join(ADDITIVE)} (latency as latency_ms or latency_ms@label; "
            "energy_mj from a device model)"
        )


def _analytic(block: Block, metric: str) -> float:
    module = block.build()
    if metric == "params":
        return float(sum(p.numel() for p in module.parameters()))
    from hwnas.hardware.analytic import count_macs

    return float(count_macs(module, block.input_shape))


def _counter(kind: str, device: DeviceTarget | None) -> tuple[Callable[[Block], float], float]:
    """How a block is priced without timing it, and what a whole net adds once: MACs and
    params counted; latency and energy by a device model (its per-inference latency overhead
    added once; its energy is a sum over layers alone)."""
    if kind in ("macs", "params"):
        return (lambda b: _analytic(b, kind)), 0.0
    if device is None:
        raise UserError(f"strategy.cost_metric: {kind} needs a device model to price blocks")
    from hwnas.hardware.device import DeviceCostModel, estimate

    model = DeviceCostModel(device)
    once = 1e3 * model.spec.overheads.per_inference_s.value if kind == "latency_ms" else 0.0

    def priced(b: Block) -> float:
        est = estimate(b.build(), b.input_shape, model.spec, model.precision)
        return float(est.metrics()[kind]) - once

    return priced, once


def choice_costs(
    space: Space,
    metric: str,
    input_shape: Shape,
    num_classes: int,
    lut: LutTarget | None = None,
    progress: bool = False,
    device: DeviceTarget | None = None,
) -> ChoiceCosts:
    """The per-choice costs of ``space`` (with per-choice costs) for ``metric``; a latency metric needs
    ``lut``, the table settings of the runtime it is timed on (entries are timed once and
    kept on disk, shared with the ``lut`` target and ``hwnas lut``), or ``device``, a
    datasheet model whose roofline latency is a sum over layers, so over blocks, exactly."""
    check_metric(metric)
    fixed_blocks, per_pick = space.choice_blocks(input_shape, num_classes)  # type: ignore[attr-defined]
    kind = base_name(metric)
    if kind != "latency_ms" or device is not None:
        memo: dict[str, float] = {}
        price, overhead = _counter(kind, device)

        def cost(b: Block | None) -> float:
            if b is None:
                return 0.0
            if b.key not in memo:
                memo[b.key] = price(b)
            return memo[b.key]

        return ChoiceCosts(
            metric,
            overhead + sum(cost(b) for b in fixed_blocks),
            [[cost(b) for b in row] for row in per_pick],
        )
    if lut is None:
        raise UserError(f"strategy.cost_metric: {metric} needs a runtime to time blocks on")
    from hwnas.hardware.lut import LatencyTable

    table = LatencyTable(lut, input_shape, progress=progress)
    try:
        fit = table.fit(space, num_classes)
        every = [b for row in per_pick for b in row if b is not None]
        table.sum_ms([*fixed_blocks, *every])  # times any block still missing
        fixed = fit.latency(sum(table.block_ms(b) for b in fixed_blocks), len(fixed_blocks))
        return ChoiceCosts(metric, fixed, [[_lat(fit, table, b) for b in row] for row in per_pick])
    finally:
        table.close()


def _lat(fit: Any, table: Any, block: Block | None) -> float:
    """A pick's latency: its entry, scaled, plus what a block costs in a network (a skip
    without a block: nothing); a block timed as a hair faster than its adapter alone (noise
    around zero) costs 0, never less: a negative cost would pay the search to pick it."""
    if block is None:
        return 0.0
    return max(0.0, fit.scale * table.block_ms(block) + fit.per_block_ms)
