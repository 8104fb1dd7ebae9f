"""Tables of published measurements (NAS-Bench-201, HW-NAS-Bench, ...) and the table target.

Nothing about a particular table is hard-coded: the path, the column holding the arch key
and the metric columns (with a scale) come from config, so another table or device works
without code changes. A table is parsed once per process (stdlib csv, gzip by suffix) and
answers a query with one dict lookup. No torch here: ``hwnas show`` uses it for the true front.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from hwnas.core.errors import UserError
from hwnas.hardware.base import Candidate, CostModel
from hwnas.hardware.config import TableColumn


class TableError(UserError):
    """The table or one of its configured columns is unusable."""


class Table:
    """Rows of a CSV table keyed by one column."""

    def __init__(
        self, path: str | Path, key_column: str, where: str = "table", path_key: str = ""
    ) -> None:
        """``path_key``: the key that set the file, where not ``{where}.path`` (a table
        target reads the estimator's table unless it names its own)."""
        self.path = Path(path).expanduser()
        self.where = where
        pk = path_key or f"{where}.path"
        if self.path.is_dir():
            raise TableError(f"{pk}: {self.path} is a directory, not a CSV table")
        if not self.path.is_file():
            raise TableError(f"{pk}: {self.path} does not exist")
        try:
            opener = gzip.open if self.path.suffix == ".gz" else open
            with opener(self.path, "rt", newline="") as fh:  # type: ignore[operator]
                reader = csv.DictReader(fh if isinstance(fh, io.TextIOBase) else fh)
                self.columns = list(reader.fieldnames or [])
                if key_column not in self.columns:
                    raise TableError(
                        f"{where}.arch_column: {key_column!r} not in {self.path.name} "
                        f"(columns: {', '.join(self.columns)})"
                    )
                self.rows: dict[str, dict[str, str]] = {}
                #: (line, row) of each row for an arch already listed that differs from the
                #: first: refused by :meth:`check` where it differs in a column that is read
                self.repeats: list[tuple[int, dict[str, str]]] = []
                for row in reader:
                    if self.rows.setdefault(row[key_column], row) != row:
                        self.repeats.append((reader.line_num, row))
        except (OSError, csv.Error, UnicodeDecodeError, EOFError) as exc:
            raise TableError(f"{pk}: {self.path} is not a readable CSV table ({exc})") from None
        self.key_column = key_column
        if not self.rows:
            raise TableError(f"{pk}: {self.path} has no rows")

    def check(self, columns: dict[str, TableColumn], where: str) -> None:
        for name, col in columns.items():
            if col.column not in self.columns:
                raise TableError(
                    f"{where}.{name}: column {col.column!r} not in {self.path.name} "
                    f"(columns: {', '.join(self.columns)})"
                )
        read = [col.column for col in columns.values()]
        clashes = [
            (line, row)
            for line, row in self.repeats
            if any(row[c] != self.rows[row[self.key_column]][c] for c in read)
        ]
        if clashes:  # a lookup took the first row's figures, silently
            line, row = clashes[0]
            raise TableError(
                f"{where}: {self.path.name} has {len(clashes)} more row(s) for an arch already "
                f"listed, with other figures (e.g. {row[self.key_column][:60]!r} again at line "
                f"{line}): one row per arch (average repeated runs first)"
            )

    def lookup(self, key: str, columns: dict[str, TableColumn]) -> dict[str, float]:
        row = self.rows.get(key)
        if row is None:
            raise KeyError(f"{key!r} is not in {self.path.name}")
        out = {}
        for name, col in columns.items():
            try:
                out[name] = float(row[col.column]) * col.scale
            except ValueError:
                out[name] = math.nan
        return out

    def all_values(self, columns: dict[str, TableColumn]) -> list[dict[str, float]]:
        return [self.lookup(k, columns) for k in self.rows]


@lru_cache(maxsize=8)
def load_table(path: str, key_column: str, where: str = "table", path_key: str = "") -> Table:
    return Table(path, key_column, where, path_key)


class TableCostModel(CostModel):
    """The ``tabular`` target: deployment costs looked up by the arch's table key."""

    needs_model = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        # the file may be the estimator's, set there by the user: errors name that key
        path_key = getattr(cfg, "path_key", "")
        self.table = load_table(str(cfg.path), cfg.arch_column, "target", path_key)
        self.table.check(cfg.metrics, "target.metrics")

    def costs(self, cand: Candidate) -> dict[str, float]:
        return self.table.lookup(cand.key, self.cfg.metrics)

    def enumerate(self) -> dict[str, dict[str, float]] | None:
        return {k: self.table.lookup(k, self.cfg.metrics) for k in self.table.rows}
