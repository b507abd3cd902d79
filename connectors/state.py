"""The sync-state store (SQLAlchemy; ``SYNC_STATE_URL``, default a SQLite file under ``.altcraft-sync/``).

Holds what makes incremental runs correct (``../shared/design/sync-correctness.md``):

- ``watermarks``: per stream and cursor, the keyset position ``(updated_at, pk)`` in its native form.
- ``ledger``: per entity and external_id, the fingerprint of the last payload sent and its outcome
  (delivered / rejected / failed / deleted), attempts and Altcraft's error. Unchanged re-reads cost no
  API call; anything not delivered stays eligible for retry.
- ``quarantine``: records that failed the contract, with every reason.
- ``runs`` and ``run_streams``: the run history with per-stream figures.
- ``locks``: one runner per stream, with a stale-lock timeout.
- ``backfill_windows``: a backfill's per-window progress (resumable).

A chunk's watermark, ledger and quarantine rows are written in one transaction, after Altcraft answered
for every record of the chunk: the watermark never passes a row that is neither delivered nor recorded.
The schema is created on first use; ``schema_version`` tells later versions what to migrate.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from altcraft_sync.config import StateSettings
from altcraft_sync.errors import StateError, StreamLocked
from connectors.dbretry import RetryPolicy, first_line, retrying
from connectors.shop_db import Cursor

P = ParamSpec("P")
R = TypeVar("R")
SCHEMA_VERSION = 1
metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
watermarks = sa.Table(
    "watermarks", metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("cursor", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("source_pk", sa.String(255)),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_text", sa.Text),
    sa.Column("permanent", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Index("ix_ledger_status", "entity", "status"),
)
quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("source_pk", sa.String(255)),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64)),
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("message", sa.Text),
)
run_streams = sa.Table(
    "run_streams", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("figures", sa.Text, nullable=False),
)
locks = sa.Table(
    "locks", metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)
backfill_windows = sa.Table(
    "backfill_windows", metadata,
    sa.Column("backfill_id", sa.String(200), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("window_start", sa.String(64), primary_key=True),
    sa.Column("window_end", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("figures", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

notes_metadata = sa.MetaData()
in_flight = sa.Table(
    "in_flight",
    notes_metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("records", sa.Text, nullable=False),  # JSON [[external_id, source_pk], ...]
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""Batches about to be sent whose outcome is not committed yet (a write-ahead note, one row a batch).

A run that dies between Altcraft's answer and the chunk commit leaves Altcraft holding records the
ledger does not know. The watermark did not move, so the next run sends them again and the ledger
learns them; but a row hard-deleted in between is never read again, and only this note still says it
may be in Altcraft (``Syncer.reconcile`` deletes it there).

A SQLite state keeps these notes in a file of their own beside it (``<state>.in-flight``): a note is
written just before a push, while the previous chunk's commit holds the state file's one write lock,
and waiting for it cost ~70 ms a chunk (the push no longer overlapped the commit). A note is removed
after its chunk's commit, not in it; one left by a crash in between names records the ledger already
has, and reconcile deleting such a record again only when it left the source is harmless."""

RETRYABLE = ("failed", "rejected", "deferred")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entity: str
    external_id: str
    source_pk: Any
    fingerprint: str | None
    status: str
    error_code: int | None = None
    error_text: str | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Known:
    fingerprint: str | None
    status: str
    permanent: bool
    attempts: int
    source_pk: str | None = None


def _retried(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A state operation (one read or one whole transaction) re-run on transient database errors
    (:mod:`connectors.dbretry`); what still fails becomes one ``StateError`` line naming the operation and
    the cause (the chained exception keeps the traceback for the debug log)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            store = args[0]
            assert isinstance(store, StateStore)
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


class StateStore:
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
            elif version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.display_url} has schema version {version}, newer than this "
                    f"altcraft-sync ({SCHEMA_VERSION}): upgrade altcraft-sync"
                )

    # --- watermarks ------------------------------------------------------------------------------
    @_retried("watermark read")
    def get_watermark(self, stream: str, cursor: str) -> Cursor | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(watermarks.c.value).where(watermarks.c.stream == stream, watermarks.c.cursor == cursor)
            ).scalar()
        return Cursor.from_json(value) if value else None

    @_retried("watermark read")
    def all_watermarks(self) -> dict[tuple[str, str], tuple[Cursor, datetime | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(watermarks)).all()
        return {(r.stream, r.cursor): (Cursor.from_json(r.value), _aware(r.updated_at)) for r in rows}

    # --- the chunk commit --------------------------------------------------------------------------
    @_retried("chunk commit")
    def commit_chunk(
        self,
        *,
        stream: str,
        cursors: dict[str, Cursor] | None = None,
        entries: Sequence[LedgerEntry] = (),
        quarantined: Sequence[tuple[str, str, Any, list[dict[str, Any]]]] = (),
        cleared: Sequence[tuple[str, str]] = (),
        run_id: str | None = None,
        lock_owner: str | None = None,
    ) -> None:
        """One transaction: ledger outcomes, quarantine changes, the stream's new watermark(s), and a
        refresh of the stream lock (the heartbeat that tells a live run from a dead one)."""
        ts = now()
        with self.engine.begin() as conn:
            if lock_owner:
                conn.execute(locks.update().where(locks.c.stream == stream, locks.c.owner == lock_owner).values(acquired_at=ts))
            if entries:
                self._upsert_ledger(conn, entries, ts)
            if quarantined:
                rows = [
                    {"entity": e, "external_id": x, "source_pk": _pk(pk), "reasons": orjson.dumps(r).decode(),
                     "first_seen": ts, "last_seen": ts, "run_id": run_id}
                    for e, x, pk, r in quarantined
                ]
                self._upsert(conn, quarantine, rows, ["entity", "external_id"],
                             ["source_pk", "reasons", "last_seen", "run_id"])
            cleared = list(cleared)
            for start in range(0, len(cleared), 500):
                part = cleared[start:start + 500]
                conn.execute(quarantine.delete().where(sa.tuple_(quarantine.c.entity, quarantine.c.external_id).in_(part)))
            for name, cur in (cursors or {}).items():
                self._upsert(conn, watermarks, [{"stream": stream, "cursor": name, "value": cur.to_json(), "updated_at": ts}],
                             ["stream", "cursor"], ["value", "updated_at"])

    def _upsert_ledger(self, conn: sa.Connection, entries: Sequence[LedgerEntry], ts: datetime) -> None:
        """Upsert outcomes; ``attempts`` counts sends since the last delivery (reset on delivery)."""
        if self.dialect in ("sqlite", "postgresql"):
            return self._upsert_ledger_fast(conn, entries, ts)
        rows = [
            {"entity": e.entity, "external_id": e.external_id, "source_pk": _pk(e.source_pk), "fingerprint": e.fingerprint,
             "status": e.status, "error_code": e.error_code, "error_text": e.error_text, "permanent": e.permanent,
             "attempts": 0 if e.status in ("delivered", "deleted") else 1, "updated_at": ts,
             "delivered_at": ts if e.status == "delivered" else None}
            for e in entries
        ]
        self._upsert(conn, ledger, rows, ["entity", "external_id"],
                     ["source_pk", "fingerprint", "status", "error_code", "error_text", "permanent", "updated_at"],
                     extra=lambda ins: {
                         "attempts": sa.case((sa.or_(ins.status == "delivered", ins.status == "deleted"), 0),
                                     else_=ledger.c.attempts + 1),
                         "delivered_at": sa.func.coalesce(ins.delivered_at, ledger.c.delivered_at),
                     })

    def _upsert_ledger_fast(self, conn: sa.Connection, entries: Sequence[LedgerEntry], ts: datetime) -> None:
        """The same upsert as one hand-written statement on the DBAPI cursor: the per-row parameter
        processing of a Core executemany cost ~40 us a record, as much as the insert itself. The SQL
        names only this module's own tables and columns; every value is a bound parameter."""
        stamp: str | datetime
        if self.dialect == "sqlite":
            mark, stamp = "?", ts.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            mark, stamp = "%s", ts
        sql = (
            "INSERT INTO ledger (entity, external_id, source_pk, fingerprint, status, error_code, error_text, "
            "permanent, attempts, updated_at, delivered_at) VALUES (" + ", ".join([mark] * 11) + ") "
            "ON CONFLICT (entity, external_id) DO UPDATE SET source_pk = excluded.source_pk, "
            "fingerprint = excluded.fingerprint, status = excluded.status, error_code = excluded.error_code, "
            "error_text = excluded.error_text, permanent = excluded.permanent, updated_at = excluded.updated_at, "
            "attempts = CASE WHEN excluded.status IN ('delivered', 'deleted') THEN 0 ELSE ledger.attempts + 1 END, "
            "delivered_at = COALESCE(excluded.delivered_at, ledger.delivered_at)"
        )
        rows = [
            (e.entity, e.external_id, _pk(e.source_pk), e.fingerprint, e.status, e.error_code, e.error_text,
             bool(e.permanent), 0 if e.status in ("delivered", "deleted") else 1, stamp,
             stamp if e.status == "delivered" else None)
            for e in entries
        ]
        conn.exec_driver_sql(sql, rows)

    @_retried("quarantine read")
    def quarantined_keys(self, entity: str) -> list[tuple[str, str | None]]:
        """(external_id, source_pk) of the entity's quarantined records."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quarantine.c.external_id, quarantine.c.source_pk)
                                .where(quarantine.c.entity == entity)).all()
        return [(r.external_id, r.source_pk) for r in rows]

    @_retried("quarantine read")
    def quarantined_ids(self, entity: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(quarantine.c.external_id).where(quarantine.c.entity == entity)).scalars())

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

    # --- ledger reads ------------------------------------------------------------------------------
    @_retried("ledger read")
    def known(self, entity: str, external_ids: Sequence[str]) -> dict[str, Known]:
        out: dict[str, Known] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(external_ids), 900):
                part = list(external_ids[start:start + 900])
                rows = conn.execute(
                    sa.select(ledger.c.external_id, ledger.c.fingerprint, ledger.c.status, ledger.c.permanent,
                              ledger.c.attempts, ledger.c.source_pk)
                    .where(ledger.c.entity == entity, ledger.c.external_id.in_(part))
                ).all()
                for r in rows:
                    out[r.external_id] = Known(r.fingerprint, r.status, bool(r.permanent), r.attempts, r.source_pk)
        return out

    @_retried("ledger read")
    def pending(self, entity: str, limit: int = 100_000) -> list[tuple[str, str]]:
        """(external_id, source_pk) of records to retry: failed, deferred (waiting for what they depend
        on), or rejected with a non-permanent error."""
        # No ORDER BY in SQL: with one, SQLite walks the whole (entity, external_id) key to avoid a sort
        # instead of using the (entity, status) index, 2 s per stream at 1M ledger rows; the few pending
        # rows are sorted here.
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ledger.c.external_id, ledger.c.source_pk)
                .where(ledger.c.entity == entity, ledger.c.status.in_(("failed", "rejected", "deferred")),
                       sa.or_(ledger.c.status == "failed", sa.not_(ledger.c.permanent)))
                .limit(limit)
            ).all()
        return sorted((r.external_id, r.source_pk) for r in rows)

    # --- batches in flight -------------------------------------------------------------------------
    @_retried("ledger read")
    def delivered_among(self, entity: str, external_ids: Sequence[str]) -> set[str]:
        """Which of ``external_ids`` Altcraft holds according to the ledger (dependency checks)."""
        out: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(external_ids), 900):
                part = list(external_ids[start:start + 900])
                out.update(conn.execute(sa.select(ledger.c.external_id).where(
                    ledger.c.entity == entity, ledger.c.external_id.in_(part), ledger.c.status == "delivered")).scalars())
        return out

    @_retried("ledger read")
    def delivered_set(self, entity: str) -> set[str]:
        """The external ids of every record of ``entity`` Altcraft holds according to the ledger (for
        dependency checks: a catalogue's size, not the orders')."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(ledger.c.external_id).where(
                ledger.c.entity == entity, ledger.c.status == "delivered")).scalars())

    @_retried("ledger read")
    def has_records(self, entity: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(ledger.c.entity == entity).limit(1)).first() is not None

    @_retried("ledger read")
    def former_ids(self, entity: str, records: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
        """(old external_id, source_pk) of records the ledger knows under another external_id for the same
        source key (a renamed SKU code): Altcraft still holds them under the old id. There is no index on
        ``source_pk`` (a second random-key index cost 6 CPU-s per 1M ledger writes, measured): this reads
        the entity's range of the ledger, so callers ask only for new records of streams whose external
        id is not their primary key."""
        by_pk = {_pk(pk): ext for ext, pk in records}
        out: list[tuple[str, str]] = []
        keys = list(by_pk)
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 900):
                rows = conn.execute(sa.select(ledger.c.external_id, ledger.c.source_pk).where(
                    ledger.c.entity == entity, ledger.c.source_pk.in_(keys[start:start + 900]),
                    ledger.c.status != "deleted")).all()
                out += [(r.external_id, r.source_pk) for r in rows if r.external_id != by_pk[r.source_pk]]
        return out

    @_retried("ledger read")
    def delivered_keys(self, entity: str, limit: int) -> list[str]:
        """Source keys of up to ``limit`` records Altcraft holds according to the ledger (carriers)."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                sa.select(ledger.c.source_pk).where(ledger.c.entity == entity, ledger.c.status == "delivered",
                                                    ledger.c.source_pk.is_not(None)).limit(limit)).scalars())

    @_retried("in-flight note")
    def begin_send(self, batch_id: str, entity: str, records: Sequence[tuple[str, Any]]) -> None:
        """Note, committed before the first request, that these (external_id, source_pk) are being sent."""
        with self.notes.begin() as conn:
            conn.execute(in_flight.insert().values(
                batch_id=batch_id, entity=entity, created_at=now(),
                records=orjson.dumps([[ext, _pk(pk)] for ext, pk in records]).decode()))

    @_retried("in-flight read")
    def unsettled(self, entity: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Notes left by runs that died before committing a batch's outcome: their ids, and the records
        Altcraft may hold without the ledger knowing."""
        with self.notes.connect() as conn:
            rows = conn.execute(sa.select(in_flight.c.batch_id, in_flight.c.records).where(in_flight.c.entity == entity)).all()
        return [r.batch_id for r in rows], [(ext, pk) for r in rows for ext, pk in orjson.loads(r.records)]

    @_retried("in-flight clean-up")
    def settle(self, batch_ids: Sequence[str]) -> None:
        """Remove notes whose outcomes are committed (or, in reconcile, acted on)."""
        if not batch_ids:
            return
        with self.notes.begin() as conn:
            for start in range(0, len(batch_ids), 500):
                conn.execute(in_flight.delete().where(in_flight.c.batch_id.in_(batch_ids[start:start + 500])))

    def delivered_ids(self, entity: str, statuses: Sequence[str] = ("delivered", *RETRYABLE)) -> Iterable[tuple[str, str]]:
        """(external_id, source_pk) of everything Altcraft may hold or the backlog counts (reconcile):
        delivered, and failed, rejected or deferred records (a delete of an absent id is harmless); or of
        the records with ``statuses``. Streamed: memory stays flat in the ledger's size."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10_000).execute(
                sa.select(ledger.c.external_id, ledger.c.source_pk)
                .where(ledger.c.entity == entity, ledger.c.status.in_(list(statuses))))
            for part in result.partitions():
                yield from ((r.external_id, r.source_pk) for r in part)

    @_retried("backlog read")
    def summary(self) -> dict[str, Any]:
        """Backlog figures for ``status``: ledger by entity and status, quarantine by entity."""
        with self.engine.connect() as conn:
            led = conn.execute(
                sa.select(ledger.c.entity, ledger.c.status, ledger.c.permanent, sa.func.count())
                .group_by(ledger.c.entity, ledger.c.status, ledger.c.permanent)
            ).all()
            quar = conn.execute(sa.select(quarantine.c.entity, sa.func.count()).group_by(quarantine.c.entity)).all()
        ledger_counts: dict[str, dict[str, int]] = {}
        for entity, status, permanent, count in led:
            key = f"{status}-permanent" if status == "rejected" and permanent else status
            ledger_counts.setdefault(entity, {})[key] = ledger_counts.get(entity, {}).get(key, 0) + count
        return {"ledger": ledger_counts, "quarantine": dict(quar)}

    @_retried("quarantine read")
    def quarantine_rows(self, limit: int = 100_000, entity: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(quarantine).order_by(quarantine.c.last_seen.desc()).limit(limit)
        if entity is not None:
            query = query.where(quarantine.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{**r._asdict(), "reasons": orjson.loads(r.reasons), "last_seen": _aware(r.last_seen)} for r in rows]

    @_retried("ledger read")
    def rejected_rows(self, limit: int = 100_000, entity: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows not delivered: rejected, failed and deferred, newest first."""
        query = sa.select(ledger).where(ledger.c.status.in_(RETRYABLE)).order_by(ledger.c.updated_at.desc()).limit(limit)
        if entity is not None:
            query = query.where(ledger.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{**r._asdict(), "updated_at": _aware(r.updated_at)} for r in rows]

    # --- runs --------------------------------------------------------------------------------------
    @_retried("run start")
    def start_run(self, run_id: str, kind: str) -> None:
        """Record a run as running, its owner in ``message`` until it ends. Runs left ``running`` by an
        owner that is gone (killed, or its state database failed when it ended) are closed as failed
        first, so the history never shows a dead run as running."""
        with self.engine.begin() as conn:
            left = conn.execute(sa.select(runs.c.run_id, runs.c.message).where(runs.c.status == "running")).all()
            for r in left:
                if r.message and _owner_is_dead(r.message):
                    conn.execute(runs.update().where(runs.c.run_id == r.run_id).values(
                        status="failed", ended_at=now(),
                        message="interrupted: the run ended without recording its outcome"))
            conn.execute(runs.insert().values(run_id=run_id, kind=kind, started_at=now(), status="running",
                                              message=lock_owner(run_id)))

    @_retried("run end")
    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(ended_at=now(), status=status, message=message))

    @_retried("run figures")
    def record_stream(self, run_id: str, stream: str, figures: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            self._upsert(
                conn,
                run_streams,
                [{"run_id": run_id, "stream": stream, "figures": orjson.dumps(figures, default=str).decode()}],
                ["run_id", "stream"],
                ["figures"],
            )

    @_retried("run history read")
    def last_runs(self, n: int = 10) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(n)).all()
            ids = [r.run_id for r in rows]
            streams = conn.execute(sa.select(run_streams).where(run_streams.c.run_id.in_(ids))).all() if ids else []
        by_run: dict[str, dict[str, Any]] = {}
        for s in streams:
            by_run.setdefault(s.run_id, {})[s.stream] = orjson.loads(s.figures)
        return [{**r._asdict(), "started_at": _aware(r.started_at), "ended_at": _aware(r.ended_at),
                 "streams": by_run.get(r.run_id, {})} for r in rows]

    # --- locks -------------------------------------------------------------------------------------
    def acquire_lock(self, stream: str, owner: str, wait_seconds: float = 0) -> None:
        """Take the stream's lock; with ``wait_seconds``, wait for a live holder to finish first."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return self._try_lock(stream, owner)
            except StreamLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(5.0, max(0.05, deadline - time.monotonic())))

    @_retried("stream lock")
    def _try_lock(self, stream: str, owner: str) -> None:
        """Take the stream's lock, or raise ``StreamLocked``.

        A held lock is taken over when its run is dead: its process is gone on this host (owners are
        ``run@host:pid``), or it has not been refreshed (every chunk commit refreshes it) for
        ``stale_lock_seconds``."""
        ts = now()
        stale_before = ts - timedelta(seconds=self.settings.stale_lock_seconds)
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.acquired_at < stale_before))
            held = conn.execute(sa.select(locks.c.owner).where(locks.c.stream == stream)).scalar()
            if held is not None and _owner_is_dead(held):
                conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.owner == held))
            try:
                conn.execute(locks.insert().values(stream=stream, owner=owner, acquired_at=ts))
            except IntegrityError:
                held = conn.execute(sa.select(locks.c.owner, locks.c.acquired_at).where(locks.c.stream == stream)).first()
                who = f"{held.owner} since {_aware(held.acquired_at):%Y-%m-%d %H:%M:%S} UTC" if held else "another run"
                raise StreamLocked(f"stream {stream!r} is being synced by {who}; runs of one stream never overlap") from None

    @_retried("lock release")
    def release_lock(self, stream: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.owner == owner))

    # --- backfill progress -------------------------------------------------------------------------
    @_retried("backfill read")
    def window_status(self, backfill_id: str, stream: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(backfill_windows.c.window_start, backfill_windows.c.status)
                .where(backfill_windows.c.backfill_id == backfill_id, backfill_windows.c.stream == stream)
            ).all()
        return {r.window_start: r.status for r in rows}

    @_retried("backfill progress")
    def mark_window(self, backfill_id: str, stream: str, start: str, end: str, status: str,
                    figures: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, backfill_windows, [{
                "backfill_id": backfill_id, "stream": stream, "window_start": start, "window_end": end,
                "status": status, "figures": orjson.dumps(figures or {}, default=str).decode(), "updated_at": now(),
            }], ["backfill_id", "stream", "window_start"], ["window_end", "status", "figures", "updated_at"])

    @_retried("backfill reset")
    def reset_backfill(self, backfill_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(backfill_windows.delete().where(backfill_windows.c.backfill_id == backfill_id))


_ABANDONED: set[str] = set()
"""Owners (``run@host:pid``) in this process whose run ended without being able to release its lock or
close its run row (the state database failed at the end). The process is alive, so only this set tells a
later run in the same process (a worker, a test) that the owner is gone."""


def lock_owner(run_id: str) -> str:
    """``run@host:pid``: lets a later run on the same host see that a crashed owner is gone."""
    return f"{run_id}@{socket.gethostname()}:{os.getpid()}"


def abandon(owner: str) -> None:
    """Mark ``owner``'s run as ended although its lock or run row could not be written."""
    _ABANDONED.add(owner)


def _owner_is_dead(owner: str) -> bool:
    if owner in _ABANDONED:
        return True
    _, _, where = owner.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's run: only the stale timeout can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _pk(value: Any) -> str | None:
    return None if value is None else str(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never block the committing thread), and room for the ledger's write pattern: a chunk's
    records land at random places of the (entity, external_id) key, so each commit dirties thousands of
    index pages. With SQLite's defaults (2 MB page cache, a checkpoint every 1,000 WAL pages) a page was
    written to the WAL and checkpointed back into the file several times a chunk: 20 us a record at 1M
    ledger rows. A 16 MB cache and checkpoints every ~80 MB of WAL halve that (measured: 20.2 -> 11.7 s
    for 1M shuffled records, system time 9.4 -> 2.8 s); ``journal_size_limit`` shrinks the WAL file back
    after a checkpoint so the state directory does not keep the high-water mark."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-16384")
    cur.execute("PRAGMA wal_autocheckpoint=20000")
    cur.execute("PRAGMA journal_size_limit=67108864")
    cur.close()


