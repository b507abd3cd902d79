"""The sync-state store (SQLAlchemy; ``SYNC_STATE_URL``, default a SQLite file under ``.altcraft-sync/``).

Holds what makes incremental runs correct (``docs/sync-correctness.md``):

- ``watermarks``: per stream and cursor, the keyset position ``(updated_at, pk)`` in its native form.
- ``ledger``: per entity and external_id, the fingerprint of the last payload sent and its outcome
  (delivered / rejected / failed / deleted), attempts and Altcraft's error, and the digest of the raw rows
  a delivery came from. Unchanged re-reads cost no API call (nor a map); anything not delivered stays
  eligible for retry.
- ``quarantine``: records that failed the contract, with every reason and the digest of the failing rows.
- ``runs`` and ``run_streams``: the run history with per-stream figures.
- ``locks``: one runner per stream, with a stale-lock timeout.
- ``backfill_windows``: a backfill's per-window progress (resumable).

A chunk's watermark, ledger and quarantine rows are written in one transaction, after Altcraft answered
for every record of the chunk: the watermark never passes a row that is neither delivered nor recorded.
The schema is created on first use; ``schema_version`` tells later versions what to migrate.

The store is one class, :class:`StateStore`, put together from one part per aggregate, each a module:
``ledger`` (watermarks, the chunk transaction, ledger and quarantine), ``notes`` (in-flight notes),
``locks`` (stream locks and dead owners), ``runs`` (run history and backfill windows), ``people`` (profile
records, their Altcraft ids and what was sent for them), over ``base`` (the
connection, schema, retries and upsert) and ``schema`` (the tables and record types).
"""

from __future__ import annotations

from connectors.state.ledger import LedgerStore
from connectors.state.locks import StreamLocks, abandon, lock_owner
from connectors.state.notes import InFlightNotes
from connectors.state.people import LedgerRow, PeopleLedger
from connectors.state.runs import RunHistory
from connectors.state.schema import MAY_HOLD, RETRYABLE, Known, LedgerEntry

__all__ = ["MAY_HOLD", "RETRYABLE", "Known", "LedgerEntry", "LedgerRow", "StateStore", "abandon", "lock_owner"]


class StateStore(LedgerStore, InFlightNotes, StreamLocks, RunHistory, PeopleLedger):
    """The sync-state store: every aggregate behind one object, on one connection."""
