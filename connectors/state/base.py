"""What every part of the state store shares: the connection (and, for SQLite, the file beside it that
holds the in-flight notes), the schema, the retry of transient errors, and the dialect's upsert."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from altcraft_sync.batching import batched
from altcraft_sync.config import StateSettings
from altcraft_sync.errors import StateError
from altcraft_sync.keys import canonical_key
from connectors.dbretry import RetryPolicy, first_line, retrying
from connectors.dialect import Excluded, SQLite, dialect_of
from connectors.state.schema import (
    ADDED_COLUMNS,
    RECONSIDERED,
    SCHEMA_VERSION,
    ledger,
    metadata,
    notes_metadata,
    schema_version,
)

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


def missing_state_file(settings: StateSettings) -> str | None:
    """The SQLite file ``state.url`` names when it does not exist yet: opening the store would create it
    empty, so a command that only looks (``check``) says so instead of creating it."""
    try:
        url = sa.make_url(settings.url.get_secret_value())
    except sa.exc.ArgumentError:
        return None  # opening the store says what is wrong with it
    return SQLite().missing_file(url) if url.get_backend_name() == "sqlite" else None


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
        self.sql = dialect_of(self.engine)
        self.dialect = self.sql.name
        self.sql.tune_state(self.engine)
        self.notes = self.engine  # where the in-flight notes live
        notes_url = self.sql.notes_url(url)
        if notes_url is not None:
            self.notes = sa.create_engine(notes_url, future=True)
            self.sql.tune_state(self.notes)
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
            elif version < SCHEMA_VERSION:  # the columns of each later version, NULL for every existing record
                later = range(version + 1, SCHEMA_VERSION + 1)
                for table, name, kind in (c for v in later for c in ADDED_COLUMNS[v]):
                    if name not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
                        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
                again = [e for v in later for e in RECONSIDERED.get(v, ())]
                if again:
                    conn.execute(ledger.update().where(ledger.c.entity.in_(again), ledger.c.status == "rejected",
                                                       ledger.c.permanent).values(permanent=False))
                conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.display_url} has schema version {version}, newer than this "
                    f"altcraft-sync ({SCHEMA_VERSION}): upgrade altcraft-sync"
                )

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
                update: list[str], extra: Excluded | None = None) -> None:
        for part in batched(rows, 2000):
            self.sql.upsert(conn, table, part, keys, update, extra)


def _pk(value: Any) -> str | None:
    """A source key as stored: its canonical text (``1443.0`` from a float column is ``"1443"``)."""
    return canonical_key(value)
