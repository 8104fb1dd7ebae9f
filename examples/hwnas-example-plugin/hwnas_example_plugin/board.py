"""``example-board``: a datasheet model of an imaginary microcontroller.

The "ExampleBoard M4" runs a convolution at a sustained ``macs_per_ms`` multiply-accumulates
per millisecond and spends ``overhead_ms`` per inference on everything else, so::

    latency_ms = overhead_ms + MACs / macs_per_ms

Its ``sram_bytes`` become a ``peak_memory_bytes`` constraint (hwnas's fp32 figure of the peak
live activations, so a conservative bound for an int8 deployment): candidates that cannot fit
are pruned before they are trained.

The kind is registered with the decorator on the *factory*: ``register(name, Config)`` above
the class that builds the cost model from its config section.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hwnas.core.registry import cost_models
from hwnas.hardware.base import Candidate, CostModel
from hwnas.hardware.config import CostModelConfig


class ExampleBoardConfig(CostModelConfig):
    """Example plugin board (imaginary MCU): latency = overhead_ms + MACs / macs_per_ms."""

    name: Literal["example-board"] = "example-board"
    #: a model's figures, not readings: no use training a latency predictor on them
    learnable: ClassVar[bool] = False

    macs_per_ms: float = Field(
        50_000.0,
        gt=0,
        description="Sustained multiply-accumulates per millisecond (100 MHz at 0.5 MAC/cycle).",
    )
    overhead_ms: float = Field(
        0.05, ge=0, description="Fixed cost of one inference (runtime dispatch, input copy)."
    )
    sram_bytes: int | None = Field(
        512 * 1024,
        ge=1,
        description="SRAM for activations: adds `peak_memory_bytes <= sram_bytes` to the "
        "constraints (null: no limit).",
    )

    def produces(self) -> set[str] | None:
        # declared up front, so a config whose objectives or constraints need a metric no
        # source gives is refused before the search starts
        return {"latency_ms"}

    def capacities(self) -> dict[str, float]:
        return {} if self.sram_bytes is None else {"peak_memory_bytes": float(self.sram_bytes)}


def latency_ms(cfg: ExampleBoardConfig, macs: float) -> float:
    """The board's latency of a network of ``macs`` multiply-accumulates (batch 1)."""
    return cfg.overhead_ms + macs / cfg.macs_per_ms


@cost_models.register("example-board", ExampleBoardConfig)
class ExampleBoard(CostModel):
    """Latency of a built candidate on the example board; deterministic, nothing is timed."""

    needs_model: ClassVar[bool] = True  # counts the MACs of the built torch module

    def __init__(self, cfg: ExampleBoardConfig) -> None:
        self.cfg = cfg

    def costs(self, cand: Candidate) -> dict[str, float]:
        if cand.model is None:
            raise ValueError("example-board needs the built model")
        # imported here: torch is loaded only when a candidate is costed, not with the plugin
        from hwnas.hardware.analytic import count_macs

        macs = count_macs(cand.model, cand.input_shape)
        return {"latency_ms": latency_ms(self.cfg, macs)}
