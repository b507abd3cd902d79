"""The ledger's view of people: which profile records a shop customer has, the Altcraft profile ids the
imports returned, and the records (orders) the ledger sent for a profile. Read by ``forget`` and ``verify``;
``forget`` writes its deletions through the chunk transaction like every other outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from connectors.state.base import StoreBase, _retried
from connectors.state.schema import ledger


@dataclass(frozen=True, slots=True)
class LedgerRow:
    entity: str
    external_id: str
    source_pk: str | None
    status: str
    altcraft_id: str | None
    owner: str | None


def _rows(result: Sequence[sa.Row]) -> list[LedgerRow]:
    return [LedgerRow(r.entity, r.external_id, r.source_pk, r.status, r.altcraft_id, r.owner) for r in result]


_COLUMNS = (ledger.c.entity, ledger.c.external_id, ledger.c.source_pk, ledger.c.status, ledger.c.altcraft_id,
            ledger.c.owner)


class PeopleLedger(StoreBase):
    @_retried("ledger read")
    def people(self, entities: Sequence[str], who: str) -> list[LedgerRow]:
        """The profile records of ``entities`` whose shop key or profile key is ``who`` (a customer id, or
        ``email:<address>`` / ``phone:<number>``)."""
        with self.engine.connect() as conn:
            return _rows(conn.execute(sa.select(*_COLUMNS).where(
                ledger.c.entity.in_(list(entities)),
                sa.or_(ledger.c.source_pk == who, ledger.c.external_id == who))
                .order_by(ledger.c.entity, ledger.c.external_id)).all())

    @_retried("ledger read")
    def owned(self, entity: str, owners: Sequence[str]) -> list[LedgerRow]:
        """Records of ``entity`` the ledger sent for any of the profiles ``owners`` and has not deleted.
        ``owner`` has no index (a second random-key index slows every commit): this reads the entity's range
        of the ledger, which is fine for an explicit, rare request."""
        if not owners:
            return []
        with self.engine.connect() as conn:
            return _rows(conn.execute(sa.select(*_COLUMNS).where(
                ledger.c.entity == entity, ledger.c.owner.in_(list(owners)), ledger.c.status != "deleted")
                .order_by(ledger.c.external_id)).all())

    @_retried("ledger read")
    def altcraft_ids(self, entity: str) -> dict[str, str]:
        """external_id -> Altcraft's id of every delivered record of ``entity`` that has one."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(ledger.c.external_id, ledger.c.altcraft_id).where(
                ledger.c.entity == entity, ledger.c.status == "delivered", ledger.c.altcraft_id.is_not(None))).all())
