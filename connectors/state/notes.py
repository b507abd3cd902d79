"""In-flight notes: a write-ahead note of each batch about to be sent (see ``schema.in_flight`` for why)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from altcraft_sync.batching import batched
from connectors.state.base import StoreBase, _pk, _retried, now
from connectors.state.schema import in_flight


class InFlightNotes(StoreBase):
    """Noted before a push, removed after its chunk's commit; what a dead run left is read by reconcile."""

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
            for part in batched(batch_ids, 500):
                conn.execute(in_flight.delete().where(in_flight.c.batch_id.in_(part)))
