"""The ``tabular`` estimator: accuracy looked up in a table of published results.

No training, no torch: a trial costs a dict lookup. The test accuracy column is read for the
final models only.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.core.fidelity import Fidelity
from hwnas.estimate.base import Estimate, Estimator, Report, Task
from hwnas.hardware.tabular import Table, TableError, load_table
from hwnas.space.base import InvalidArch

if TYPE_CHECKING:
    from hwnas.hardware.base import Candidate
    from hwnas.hardware.config import TableColumn


def _keyed_by(space: Any, key: str) -> bool:
    """Whether ``key`` is a table key of ``space``'s kind (its string form, or JSON)."""
    try:
        space.from_key(key)
    except InvalidArch:
        return False
    return True


class TableEstimator(Estimator):
    needs_model = False

    def __init__(self, cfg: Any, task: Task | None = None) -> None:
        super().__init__(cfg, task)
        self._table: Table | None = None

    def _not_identity(self) -> set[str]:
        return super()._not_identity() | (set() if self.cfg.noise else {"noise"})

    @property
    def columns(self) -> dict[str, TableColumn]:
        """Search-time columns (never the test accuracy)."""
        return {"accuracy": self.cfg.accuracy, **self.cfg.metrics}

    @property
    def table(self) -> Table:
        if self._table is None:
            table = load_table(str(self.cfg.path), self.cfg.arch_column, "estimator")
            table.check(self.columns, "estimator")
            if self.cfg.test_accuracy is not None:
                table.check({"test_accuracy": self.cfg.test_accuracy}, "estimator")
            self._table = table
        return self._table

    def check(self, space: Any, input_shape: Any, num_classes: int | None) -> None:
        """The table and its columns are read now, before the study is written: a misnamed
        column is refused at start, not by the first trial; so are accuracies outside 0-1
        (a scale left at 1 on a table of percentages showed `val 9009.47%`) and a space whose
        archs the table does not hold (every trial failed `... not in table`)."""
        table = self.table
        for name in ("accuracy", "test_accuracy"):
            col = getattr(self.cfg, name)
            if col is None:
                continue
            top = max((v for r in table.all_values({name: col}) if (v := r[name]) == v), default=0)
            if top > 1.0:
                raise TableError(
                    f"estimator.{name}: {col.column} x {col.scale:g} reaches {top:.4g}, and "
                    f"an accuracy is a fraction 0-1 (percentages: scale 0.01)"
                )
        if space is None:
            return
        rows = list(itertools.islice(table.rows, 50))
        if not any(_keyed_by(space, k) for k in rows):
            raise TableError(
                f"estimator: {table.path.name}'s {self.cfg.arch_column} values (e.g. "
                f"{rows[0][:60]!r}) are no keys of the {space.name} space's archs: the space "
                "or arch_column does not match the table"
            )

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
        values = self.table.lookup(cand.key, self.columns)
        if self.cfg.noise and "accuracy" in values:  # one training run's spread, seeded
            draw = random.Random(f"{seed}:{cand.key}").gauss(0.0, self.cfg.noise)
            values = {**values, "accuracy": values["accuracy"] + draw}
        return Estimate(values)

    def test(self, cand: Candidate, weights_path: Path) -> dict[str, float]:
        if self.cfg.test_accuracy is None:
            return {}
        return self.table.lookup(cand.key, {"test_accuracy": self.cfg.test_accuracy})

    def enumerate(self) -> dict[str, dict[str, float]] | None:
        return {k: self.table.lookup(k, self.columns) for k in self.table.rows}
