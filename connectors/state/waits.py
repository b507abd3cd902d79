"""Since when deferred records have waited (the ``waiting`` table): ``sync.max_defer`` is counted from a
record's first deferral, which the ledger's ``updated_at`` (moved by every re-deferral) cannot tell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from connectors.state.base import StoreBase, _aware, _retried
from connectors.state.schema import LedgerEntry, waiting


class WaitingRecords(StoreBase):
    """``waiting_since`` (reads) and ``_track_waiting`` (inside the chunk transaction)."""

    _waiting_entities: set[str] | None = None
    """Entities with rows in ``waiting`` (loaded once, kept current by this store's commits): a commit of an
    entity with none deletes nothing, so a run where nothing waits pays nothing."""

    @_retried("waiting read")
    def waiting_since(self, entity: str, external_ids: Sequence[str]) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(external_ids), 900):
                part = list(external_ids[start:start + 900])
                rows = conn.execute(sa.select(waiting.c.external_id, waiting.c.since)
                                    .where(waiting.c.entity == entity, waiting.c.external_id.in_(part))).all()
                for r in rows:
                    since = _aware(r.since)
                    assert since is not None
                    out[r.external_id] = since
        return out

    def _track_waiting(self, conn: sa.Connection, entries: Sequence[LedgerEntry], ts: datetime) -> None:
        """A deferred record starts waiting (its first deferral is kept); any other outcome ends it."""
        if self._waiting_entities is None:
            self._waiting_entities = set(conn.execute(sa.select(waiting.c.entity).distinct()).scalars())
        deferred = [(e.entity, e.external_id) for e in entries if e.status == "deferred"]
        over = [(e.entity, e.external_id) for e in entries
                if e.status != "deferred" and e.entity in self._waiting_entities]
        for start in range(0, len(over), 500):
            conn.execute(waiting.delete().where(sa.tuple_(waiting.c.entity, waiting.c.external_id)
                                                .in_(over[start:start + 500])))
        if deferred:
            present: set[tuple[str, str]] = set()
            for start in range(0, len(deferred), 500):
                part = deferred[start:start + 500]
                present.update((r.entity, r.external_id) for r in conn.execute(
                    sa.select(waiting.c.entity, waiting.c.external_id).where(
                        sa.tuple_(waiting.c.entity, waiting.c.external_id).in_(part))))
            new = [{"entity": e, "external_id": x, "since": ts} for e, x in dict.fromkeys(deferred) if (e, x) not in present]
            if new:
                conn.execute(waiting.insert(), new)
            self._waiting_entities.update(e for e, _ in deferred)
