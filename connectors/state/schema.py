"""The state database's tables and the record types read from and written to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 4
"""2: the ledger's ``altcraft_id`` and ``owner`` columns; 3: ``raw_digest`` in the ledger and the quarantine
(each added to an older database in place, NULL for every existing record: see :data:`ADDED_COLUMNS`);
4: no new column, categories rejected for good are looked at again (:data:`RECONSIDERED`)."""
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
    sa.Column("altcraft_id", sa.String(64)),
    sa.Column("owner", sa.String(255)),
    sa.Column("raw_digest", sa.BigInteger),
    sa.Index("ix_ledger_status", "entity", "status"),
)
"""``altcraft_id``: Altcraft's own id of the record when its answer gives one (a profile's ``profile_id``).
``owner``: the ledger id of the profile a record was sent for (an order's buyer, ``email:<address>``), so
``forget`` finds the orders the ledger sent for a person. Both keep their last known value when an outcome
brings none.
``raw_digest``: the digest of the source rows a delivered record's payload was mapped from
(``transforms.digest``), so a re-read of unchanged rows skips mapping; NULL for anything else, and for a
record delivered before version 3 (always mapped)."""
quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("source_pk", sa.String(255)),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("raw_digest", sa.BigInteger),
)
"""``raw_digest``: the digest of the source rows that failed the contract (``transforms.digest``): a re-read
of the same rows is still invalid without being mapped again. NULL before version 3 (always mapped)."""
ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    2: (("ledger", "altcraft_id", "VARCHAR(64)"), ("ledger", "owner", "VARCHAR(255)")),
    3: (("ledger", "raw_digest", "BIGINT"), ("quarantine", "raw_digest", "BIGINT")),
    4: (),
}
"""The columns each schema version added to tables an older version created: (table, column, SQL type)."""
RECONSIDERED: dict[int, tuple[str, ...]] = {4: ("category",)}
"""Per schema version, the entities whose permanent rejections an older database turns retryable once.

4, categories: before it, a subcategory sent in a request without its parent (the parent quarantined, in a
later page, or read by the cursor while the child came from the ledger) was refused (Altcraft needs the
parent first), isolated, and recorded as rejected for good: it never arrived, even after its parent did,
and nothing but a change in the shop would send it again. Made retryable, the next sync's retry pass sends
each such category once more, after or with its parent (``engine.carriers``); one refused for another
reason is refused again and recorded as before. A category sends no message to anybody."""
waiting = sa.Table(
    "waiting", metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)
"""Since when each deferred record has waited (its first deferral): ``sync.max_defer`` is counted from it.
Written with the ledger in the chunk transaction; a record's row goes when it is no longer deferred. A
table of its own (not a ledger column) so an existing state database gets it from ``create_all``."""
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
"""Ledger statuses of records the backlog counts and a retry may re-send."""
MAY_HOLD = ("delivered", *RETRYABLE)
"""Ledger statuses of records Altcraft may hold (a failed send may have reached it): what reconcile deletes
when it left the source (a delete of an id Altcraft does not hold is harmless)."""


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
    altcraft_id: str | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    fingerprint: str | None
    status: str
    permanent: bool
    attempts: int
    source_pk: str | None = None
    raw_digest: int | None = None

