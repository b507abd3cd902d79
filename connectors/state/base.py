"""What every part of the state store shares: the connection (and, for SQLite, the file beside it that
holds the in-flight notes), the schema, the retry of transient errors, and the dialect's upsert."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError

from altcraft_sync.config import StateSettings
from altcraft_sync.errors import StateError
from connectors.dbretry import RetryPolicy, first_line, retrying
from connectors.state.schema import LEDGER_V2_COLUMNS, SCHEMA_VERSION, metadata, notes_metadata, schema_version

P = ParamSpec("P")
R = TypeVar("R")


def _retried(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A state operation (one read or one whole transaction) re-run on transient database errors
    (:mod:`connectors.dbretry`); what still fails becomes one ``StateError`` line naming the operation and
    the cause (the chained exception keeps the traceback for the debug log)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            store = args[0]
            assert isinstance(store, StoreBase)
            try:
                return retrying(store.retry, f"state database {what}", lambda: fn(*args, **kwargs))
            except SQLAlchemyError as err:
                raise StateError(f"state database {store.display_url}: {what} failed: {first_line(err)}") from err

        return run

    return wrap


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes even for timezone=True columns; they were written as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class StoreBase:
    """The connection, the schema and the upsert the aggregates build on."""

    def __init__(self, settings: StateSettings) -> None:
        self.settings = settings
        url = settings.url.get_secret_value()
        self.display_url = settings.display_url()
        r = settings.retry
        self.retry = RetryPolicy(r.max_attempts, r.max_retry_seconds, r.backoff_initial, r.backoff_max)
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as err:
            raise StateError(f"state.url: cannot use {self.display_url}: {type(err).__name__}: {first_line(err)}") from None
        self.dialect = self.engine.dialect.name
        self.notes = self.engine  # where the in-flight notes live
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if not url.startswith("sqlite:///:memory:") and url != "sqlite://":
                self.notes = sa.create_engine(f"{url}.in-flight", future=True)
                sa.event.listen(self.notes, "connect", _sqlite_pragmas)
        self._ensure_schema()

    def close(self) -> None:
        self.engine.dispose()
        if self.notes is not self.engine:
            self.notes.dispose()

    def _ensure_schema(self) -> None:
        try:
            retrying(self.retry, "state database schema", self._create_schema)
        except SQLAlchemyError as err:
            raise StateError(f"state database {self.display_url} is unusable: {first_line(err)}") from err

    def _create_schema(self) -> None:
        metadata.create_all(self.engine)
        notes_metadata.create_all(self.notes)
        with self.engine.begin() as conn:
            version = conn.execute(sa.select(schema_version.c.version)).scalar()
            if version is None:
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            elif version == 1:  # 1 -> 2: the ledger's altcraft_id and owner, NULL for every existing record
                for name, kind in LEDGER_V2_COLUMNS:
                    conn.execute(sa.text(f"ALTER TABLE ledger ADD COLUMN {name} {kind}"))
                conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.display_url} has schema version {version}, newer than this "
                    f"altcraft-sync ({SCHEMA_VERSION}): upgrade altcraft-sync"
                )

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
                update: list[str], extra: Any = None) -> None:
        for start in range(0, len(rows), 2000):
            part = rows[start:start + 2000]
            if self.dialect in ("sqlite", "postgresql"):
                ins = (sqlite_dialect if self.dialect == "sqlite" else pg_dialect).insert(table)
                values = {c: ins.excluded[c] for c in update}
                if extra:
                    values.update(extra(ins.excluded))
                conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=values), part)
            elif self.dialect in ("mysql", "mariadb"):
                ins = mysql_dialect.insert(table)
                values = {c: ins.inserted[c] for c in update}
                if extra:
                    values.update(extra(ins.inserted))
                conn.execute(ins.on_duplicate_key_update(values), part)
            else:  # portable fallback: delete + insert in the same transaction
                for row in part:
                    conn.execute(table.delete().where(*[table.c[k] == row[k] for k in keys]))
                conn.execute(table.insert(), part)


def _pk(value: Any) -> str | None:
    return None if value is None else str(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never block the committing thread), and room for the ledger's write pattern: a chunk's
    records land at random places of the (entity, external_id) key, so each commit dirties thousands of
    index pages. With SQLite's defaults (2 MB page cache, a checkpoint every 1,000 WAL pages) a page was
    written to the WAL and checkpointed back into the file several times a chunk: 20 us a record at 1M
    ledger rows. A 16 MB cache and checkpoints every ~80 MB of WAL halve that (measured: 20.2 -> 11.7 s
    for 1M shuffled records, system time 9.4 -> 2.8 s); ``journal_size_limit`` shrinks the WAL file back
    after a checkpoint so the state directory does not keep the high-water mark. The cache is 4 MB since:
    each connection of the pool (the run thread's reads, the commit thread's writes) fills its own as the
    ledger grows, so a 1M-order sync's memory rose by 30 MB over the run; at 4 MB it stays flat (265-272
    MB) and the sync took 107.8 s instead of 105.7 s: the checkpoint interval was most of the gain."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-4096")
    cur.execute("PRAGMA wal_autocheckpoint=20000")
    cur.execute("PRAGMA journal_size_limit=67108864")
    cur.close()


