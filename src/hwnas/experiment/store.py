"""The study store: one SQLite file per experiment, durable after every trial.

Each trial is one row, committed in the same transaction as the strategy's state, so after a
crash (even ``kill -9``) the file holds a consistent picture: finished trials are final, and a
trial still marked ``running`` is re-run on resume. Imports no torch: ``hwnas show`` is fast.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.core.errors import UserError

#: 2: trials carry their fidelity, stage and identity key (arch + estimator + fidelity); a
#: version-1 study is upgraded in place when a search opens it, and read as is by `show`
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    arch_hash TEXT NOT NULL,
    arch TEXT NOT NULL,
    describe TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'pruned')),
    metrics TEXT NOT NULL DEFAULT '{}',
    curve TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    seed INTEGER NOT NULL,
    parent_id INTEGER,
    info TEXT NOT NULL DEFAULT '{}',
    started_at REAL,
    finished_at REAL,
    fidelity TEXT NOT NULL DEFAULT '{}',
    stage TEXT NOT NULL DEFAULT 'search',
    trial_key TEXT
);
CREATE INDEX IF NOT EXISTS trials_hash ON trials (arch_hash);
"""

#: columns added by schema 2 (a version-1 study is upgraded by adding them)
_V2_COLUMNS = [
    ("fidelity", "TEXT NOT NULL DEFAULT '{}'"),
    ("stage", "TEXT NOT NULL DEFAULT 'search'"),
    ("trial_key", "TEXT"),
]
STAGES = ("search", "derived", "final")


class StoreError(UserError):
    """The study file cannot be used (corrupt, foreign, or from a newer hwnas)."""


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps(value: Any) -> str:
    try:  # fast path: most values hold no NaN/inf
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_clean(value), sort_keys=True, allow_nan=False)


@dataclass
class Trial:
    id: int
    arch: dict[str, Any]
    arch_hash: str
    status: str
    seed: int
    describe: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    parent_id: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    stage: str = "search"
    key: str | None = None  # arch + estimator identity + fidelity

    @property
    def stopped_at_epoch(self) -> int | None:
        return self.info.get("stopped_at_epoch")

    @property
    def prune_reason(self) -> str | None:
        return self.info.get("prune_reason") if self.status == "pruned" else None

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape (``hwnas show --json``)."""
        out = {
            "id": self.id,
            "status": self.status,
            "arch": self.arch,
            "arch_hash": self.arch_hash,
            "describe": self.describe,
            "metrics": self.metrics,
            "error": self.error,
            "parent_id": self.parent_id,
            "seed": self.seed,
            "info": self.info,
            "curve": self.curve,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "fidelity": self.fidelity,
            "stage": self.stage,
        }
        if self.status == "pruned":
            out["prune_reason"] = self.prune_reason or "constraint"
        if self.stopped_at_epoch is not None:
            out["stopped_at_epoch"] = self.stopped_at_epoch
        return out


_COLUMNS = (
    "id, arch_hash, arch, describe, status, metrics, curve, error, seed, parent_id, info, "
    "started_at, finished_at, fidelity, stage, trial_key"
)
#: what a version-1 study is read as (its trials ran at the estimator's settings, in search)
_V1_COLUMNS = _COLUMNS.replace("fidelity, stage, trial_key", "'{}', 'search', NULL")
#: the columns every study has had since schema 1 (later ones are added by the upgrade)
_V1_NAMES = {c.strip() for c in _COLUMNS.split(",")} - {"fidelity", "stage", "trial_key"}


def _row_to_trial(row: tuple[Any, ...]) -> Trial:
    return Trial(
        id=row[0],
        arch_hash=row[1],
        arch=json.loads(row[2]),
        describe=row[3],
        status=row[4],
        metrics=json.loads(row[5]),
        curve=json.loads(row[6]),
        error=row[7],
        seed=row[8],
        parent_id=row[9],
        info=json.loads(row[10]),
        started_at=row[11],
        finished_at=row[12],
        fidelity=json.loads(row[13]),
        stage=row[14],
        key=row[15],
    )


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection. A WAL study needs its ``-shm`` file; in a directory nobody may
    write (a read-only mount, an archive) that cannot be made, so the file is then opened as
    immutable: no writer can be at work in such a place."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK):
            raise
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


def holds_tables(path: Path) -> bool:
    """Whether the SQLite file at ``path`` has any table: a creation that died before the
    schema was written leaves an empty database, which is no study (and no other's)."""
    try:
        db = _connect_readonly(path)
        try:
            return db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return True  # not a database at all: let Store say so


class Store:
    """SQLite-backed trial store of one experiment directory."""

    FILENAME = "study.db"

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        """``readonly``: open to read only (``show``, ``report``, ``export``, a check): the
        file is not touched, so a study can be read beside its writer or from a read-only
        place, and a corrupt one is left as it was found."""
        self.path = Path(path)
        if (readonly or not create) and not self.path.is_file():
            raise StoreError(f"{self.path}: no study here (missing {self.FILENAME})")
        create = create and not readonly
        try:
            if readonly:
                self.db = _connect_readonly(self.path)
            else:
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives the process being killed (kill -9); only an
                # OS crash could lose the last commits, and it costs no fsync per trial
                self.db.execute("PRAGMA synchronous=NORMAL")
            tables = {
                r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables and not {"meta", "trials"} <= tables:
                raise StoreError(
                    f"{self.path}: not an hwnas study (tables: {', '.join(sorted(tables))})"
                )
            if "trials" in tables:
                cols = {r[1] for r in self.db.execute("PRAGMA table_info(trials)")}
                lacking = sorted(_V1_NAMES - cols)
                if lacking:
                    raise StoreError(
                        f"{self.path}: not an hwnas study (its trials lack {', '.join(lacking)})"
                    )
            if create:
                self.db.executescript(_SCHEMA)
                self.db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            version = self.get_meta("schema_version")
            try:
                self.version = int(version) if version is not None else SCHEMA_VERSION
            except ValueError:
                raise StoreError(f"{self.path}: unreadable schema_version {version!r}") from None
            if self.version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer hwnas (schema {self.version}, this one "
                    f"reads up to {SCHEMA_VERSION}); upgrade hwnas (pip install -U hwnas)"
                )
            if self.version < 1:
                raise StoreError(f"{self.path}: schema {self.version} is not an hwnas study")
            if create and self.version < SCHEMA_VERSION:
                self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a readable study database ({exc})") from None

    def _upgrade(self) -> None:
        """Version 1 -> 2: add the fidelity, stage and key columns (keys are filled by the
        search that opened it, which knows its estimator)."""
        with self.transaction() as db:
            have = {r[1] for r in db.execute("PRAGMA table_info(trials)")}
            for name, decl in _V2_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE trials ADD COLUMN {name} {decl}")
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
        self.version = SCHEMA_VERSION

    @property
    def _columns(self) -> str:
        return _COLUMNS if self.version >= 2 else _V1_COLUMNS

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -------------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def get_meta_json(self, key: str) -> Any:
        raw = self.get_meta(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            raise StoreError(f"{self.path}: its stored {key!r} is not readable JSON") from None

    def set_meta(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, dumps(value)),
        )

    # ------------------------------------------------------------------ trials
    def next_id(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM trials").fetchone()
        return int(row[0])

    def start_trial(
        self,
        trial: Trial,
        strategy_state: dict[str, Any] | None = None,
    ) -> None:
        """Record a trial as running, together with the strategy state after its ask."""
        trial.started_at = trial.started_at or time.time()
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO trials ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    trial.id,
                    trial.arch_hash,
                    dumps(trial.arch),
                    trial.describe,
                    "running",
                    dumps(trial.metrics),
                    dumps(trial.curve),
                    trial.error,
                    trial.seed,
                    trial.parent_id,
                    dumps(trial.info),
                    trial.started_at,
                    None,
                    dumps(trial.fidelity),
                    trial.stage,
                    trial.key,
                ),
            )
            if strategy_state is not None:
                self.set_meta("strategy_state", strategy_state, db)

    def restart_trial(self, trial: Trial) -> None:
        """Mark a trial that is run again (interrupted, or a final run that failed) as running
        from now: its wall time must not span the pause before the new run, nor keep the
        finish time of the run that failed."""
        trial.status, trial.error = "running", None
        trial.started_at, trial.finished_at = time.time(), None
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET status=?, error=NULL, started_at=?, finished_at=NULL WHERE id=?",
                (trial.status, trial.started_at, trial.id),
            )

    def finish_trial(
        self,
        trial: Trial,
        strategy_state: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Make a trial's outcome durable, with the strategy state after its tell and any
        other ``meta`` entries, in one transaction."""
        trial.finished_at = trial.finished_at or time.time()
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET status=?, metrics=?, curve=?, error=?, info=?, finished_at=?, "
                "fidelity=?, trial_key=? WHERE id=?",
                (
                    trial.status,
                    dumps(trial.metrics),
                    dumps(trial.curve),
                    trial.error,
                    dumps(trial.info),
                    trial.finished_at,
                    dumps(trial.fidelity),
                    trial.key,
                    trial.id,
                ),
            )
            if strategy_state is not None:
                self.set_meta("strategy_state", strategy_state, db)
            for key, value in (meta or {}).items():
                self.set_meta(key, value, db)

    def set_identity(self, trial: Trial) -> None:
        """Store a trial's fidelity, stage and key (filled in for a study from schema 1)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE trials SET fidelity=?, stage=?, trial_key=? WHERE id=?",
                (dumps(trial.fidelity), trial.stage, trial.key, trial.id),
            )

    def update_metrics(self, trial_id: int, metrics: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE trials SET metrics=? WHERE id=?", (dumps(metrics), trial_id))

    def trials(self, status: str | None = None) -> list[Trial]:
        try:
            if status is None:
                rows = self.db.execute(f"SELECT {self._columns} FROM trials ORDER BY id").fetchall()
            else:
                rows = self.db.execute(
                    f"SELECT {self._columns} FROM trials WHERE status=? ORDER BY id", (status,)
                ).fetchall()
            return [_row_to_trial(r) for r in rows]
        except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path}: unreadable trials ({exc})") from None

    def trial(self, trial_id: int) -> Trial | None:
        row = self.db.execute(
            f"SELECT {self._columns} FROM trials WHERE id=?", (trial_id,)
        ).fetchone()
        return None if row is None else _row_to_trial(row)

    def by_hash(self, arch_hash: str) -> Trial | None:
        """The finished trial that evaluated this network, if any."""
        row = self.db.execute(
            f"SELECT {self._columns} FROM trials WHERE arch_hash=? AND status != 'running' "
            "ORDER BY id LIMIT 1",
            (arch_hash,),
        ).fetchone()
        return None if row is None else _row_to_trial(row)

    def count_finished(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()
        return int(row[0])

    def delete_trial(self, trial_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM trials WHERE id=?", (trial_id,))
