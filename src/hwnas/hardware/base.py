"""The cost-model interface: every way of getting deployment cost answers the same call.

A search may draw its metrics from several sources at once: the ``target`` section and each
entry of ``costs`` (e.g. SRAM from a device model, latency from a learned predictor). Each
source is a :class:`CostModel`; the evaluator asks them in order, and a later source's metric
replaces an earlier one's of the same name. ``provides`` in the config keeps only the named
metrics of a source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from torch import nn

    from hwnas.hardware.config import CostModelConfig
    from hwnas.space.base import Arch, Space


@dataclass
class Candidate:
    """What a cost model may look at: the arch (always) and the built module (if any)."""

    arch: Arch
    space: Space
    input_shape: tuple[int, int, int]
    model: nn.Module | None = None

    @property
    def key(self) -> str:
        """The arch's table key (e.g. an NB201 arch string)."""
        return self.space.key(self.arch)


class CostModel(ABC):
    """One source of deployment metrics (``latency_ms``, ``energy_mj``, ``peak_sram_bytes``...)."""

    #: False when the cost comes from the arch alone (a table, a predictor on the encoding):
    #: then a search that only uses such sources never builds a torch module.
    needs_model: ClassVar[bool] = True
    #: measures on this machine: readings taken while other trials train here may be inflated
    local: ClassVar[bool] = False
    #: its figures follow from the built net alone, cheaply and always alike (a count, a
    #: datasheet model): a strategy may build a candidate to see whether it fits
    counts: ClassVar[bool] = False
    #: a reading that breaks a constraint is taken again (noise only ever adds time)
    retry_on_violation: ClassVar[bool] = False

    @abstractmethod
    def costs(self, cand: Candidate) -> dict[str, float]:
        """Metrics for one candidate. Raise ``KeyError`` for an arch the source doesn't know."""

    @property
    def prices_untrained(self) -> bool:
        """Whether :meth:`known` can answer for an arch that is not built (a strategy may then
        weigh the candidates it has not tried by their cost)."""
        return not self.needs_model

    def known(self, cand: Candidate, num_classes: int | None) -> dict[str, float] | None:
        """The metrics of an arch that is not built, read from what the source already holds,
        never measured (None: it cannot tell so cheaply). A source that reads the arch alone
        answers with :meth:`costs`."""
        return None if self.needs_model else self.costs(cand)

    def remeasure(self, cand: Candidate) -> dict[str, float] | None:
        """A fresh reading (no cache) of a source whose figures are noisy measurements, so
        the front can be re-timed; None for deterministic sources (tables, models)."""
        return None

    def enumerate(self) -> dict[str, dict[str, float]] | None:
        """Metrics of every arch by table key, where the source knows them all (a table)."""
        return None

    def check(self) -> None:  # noqa: B027 - optional hook
        """Refuse, with a one-line UserError, a source that cannot measure anything (a
        remote board that does not answer); called once before a search writes its study,
        so a run that would fail every trial never starts."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or processes the model holds."""


def select(
    metrics: dict[str, Any], provides: list[str] | None, label: str | None = None
) -> dict[str, Any]:
    """Keep only ``provides`` (all when None); with a ``label``, name them ``metric@label``."""
    kept = dict(metrics) if provides is None else {k: metrics[k] for k in provides if k in metrics}
    return {f"{k}@{label}": v for k, v in kept.items()} if label else kept


class Problem(Protocol):
    """The sections a hardware command (``hwnas lut build``, ``hwnas predictor collect``) reads
    of a run's config: what to build, on which data, measured where -- not the search."""

    seed: int
    space: Any
    data: Any
    target: CostModelConfig
    costs: list[CostModelConfig]
