"""The estimator interface: how good a candidate is, reported epoch by epoch.

An estimator mirrors a cost model: given a candidate (arch, space, built module), a fidelity
and optionally warm-start weights already loaded into the module, it returns task metrics and
a per-epoch curve. It calls ``report(epoch, metrics)`` after every epoch; when that returns
True (a pruner's stop rule fired) it stops at once and says at which epoch. Training, table
lookups and, later, supernet weights and zero-cost proxies are estimators; each is registered
in :data:`hwnas.core.registry.estimators` and built from its own config section plus the
task (:class:`Task`).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas.core.fidelity import Fidelity

if TYPE_CHECKING:
    from hwnas.data import Dataset
    from hwnas.hardware.base import Candidate


#: called after each epoch with its metrics (``accuracy``, ``val_loss``...); True = stop now
Report = Callable[[int, dict[str, float]], bool]


@dataclass
class Task:
    """What an estimator learns from: the dataset (None for tables), where to train, and the
    data section's batching and augmentation."""

    dataset: Dataset | None = None
    device: str = "cpu"
    batch_size: int = 64
    augment: bool = False
    flip: bool = True
    #: the space's nets are made for the fast GPU recipe (``recipe: auto`` asks)
    fast_nets: bool = False


@dataclass
class Estimate:
    metrics: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
    stopped_at_epoch: int | None = None  # set when a stop rule ended it early


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (any recipe): the trial is recorded as failed."""


@dataclass
class TrainResult:
    """What one training returns (any recipe): final validation accuracy and loss, seconds of
    training steps, the per-epoch curve, the epoch a stop rule ended it at (if one did) and,
    for a training paused before its schedule's end, what resuming it needs
    (:mod:`hwnas.estimate.resume`)."""

    accuracy: float
    val_loss: float
    train_seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    stopped_at_epoch: int | None = None
    resume_state: dict[str, Any] | None = None


class EstimateFailed(RuntimeError):
    """The candidate cannot be estimated (diverged, out of memory): a failed trial."""


class Estimator(ABC):
    """One way of estimating task performance."""

    #: candidates must be built as torch modules (not for a table)
    needs_model: ClassVar[bool] = True
    #: ``recipe`` fields a proposal may override per trial (NASH's learning rates)
    recipe_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: Any, task: Task | None = None) -> None:
        self.cfg = cfg
        self.task = task or Task()

    @property
    def name(self) -> str:
        return str(self.cfg.name)

    def default_fidelity(self) -> Fidelity:
        """The fidelity a proposal gets when it asks for none."""
        return Fidelity()

    def warnings(self) -> list[str]:
        """What in this set-up will likely make every estimate worthless (said before the
        search spends its budget, not found out from a front at chance)."""
        return []

    def fidelity(self, requested: Fidelity | None = None) -> Fidelity:
        return (requested or Fidelity()).merged(self.default_fidelity())

    def identity(self) -> str:
        """Name and a hash of the recipe (the section without its fidelity fields): two
        trials with the same arch, identity and fidelity are the same evaluation."""
        recipe = self.cfg.model_dump(mode="json", exclude=self._not_identity())
        blob = json.dumps(recipe, sort_keys=True)
        return f"{self.name}:{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    def _not_identity(self) -> set[str]:
        """Keys that do not make two evaluations differ: the fidelity's (part of the trial
        key on their own) and, in subclasses, new keys at the value that left results as
        they were (so studies begun before them keep their trial keys)."""
        return set(self._fidelity_keys())

    def _fidelity_keys(self) -> list[str]:
        return [
            k for k in ("epochs", "data_fraction", "resolution") if k in type(self.cfg).model_fields
        ]

    @abstractmethod
    def estimate(
        self,
        cand: Candidate,
        fidelity: Fidelity,
        *,
        seed: int,
        report: Report | None = None,
        weights_path: Path | None = None,
        recipe: dict[str, Any] | None = None,
        start: Path | None = None,
    ) -> Estimate:
        """Task metrics of one candidate; raise KeyError for an arch a table lacks and
        :class:`EstimateFailed` for a candidate that cannot be estimated. ``start`` is the
        weights file the candidate's model was loaded from (a warm start, a morphism); None
        when the model is at its initialisation."""

    def test(self, cand: Candidate, weights_path: Path) -> dict[str, float]:
        """Test metrics of a final model (the test split never guides the search)."""
        return {}

    def check(self, space: Any, input_shape: Any, num_classes: int | None) -> None:
        """Refuse, as a one-line :class:`~hwnas.core.errors.UserError`, a run this estimator
        cannot serve (before anything is written); by default every run is fine."""
        return None

    def search_space(self, space: Any) -> Any:
        """The part of ``space`` a strategy should propose from when this estimator scores
        its archs: all of it by default; an estimator that can score only some archs (a
        supernet's paths) narrows it, so no proposal is wasted as a failed trial."""
        return space

    def enumerate(self) -> dict[str, dict[str, float]] | None:
        """Search metrics of every arch by table key, where the estimator knows them all (a
        table): then a search can be scored against the true front."""
        return None
