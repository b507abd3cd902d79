"""Altcraft's answer for a record turned into its ledger entry: the only place that does it.

Sends (imports, carriers, categories, verify's repair) and deletes all record their outcome through these
functions, so what "delivered", "rejected" or "deleted" means in the ledger is written down once."""

from __future__ import annotations

from connectors.altcraft import Outcome
from connectors.state import LedgerEntry
from engine.context import Key
from transforms.payload import Payload


def sent_entry(entity: str, p: Payload, o: Outcome) -> LedgerEntry:
    """The ledger entry of a sent record: its fingerprint with Altcraft's verdict, the id Altcraft gave it
    (a profile's ``profile_id``) and the profile it was sent for (an order's buyer)."""
    return LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, o.status, o.code or None, o.text or None,
                       o.permanent, o.altcraft_id, p.owner)


def deleted_entry(entity: str, external_id: str, source_pk: Key | None, o: Outcome) -> LedgerEntry:
    """The ledger entry of a delete: ``deleted`` when Altcraft took it (an id it did not hold counts as
    done), else the failure, to be tried again."""
    status = "deleted" if o.status == "delivered" else o.status
    return LedgerEntry(entity, external_id, source_pk, None, status, o.code or None, o.text or None, o.permanent)


def deferred_entry(entity: str, p: Payload, why: str) -> LedgerEntry:
    """A record that waits (for what it refers to, or for a carrier): not sent, not a rejection."""
    return LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, "deferred", None, why, owner=p.owner)


def definition_entry(entity: str, external_id: str, fingerprint: str) -> LedgerEntry:
    """A root definition Altcraft took with its carrier."""
    return LedgerEntry(entity, external_id, None, fingerprint, "delivered")


def undeletable_entry(entity: str, external_id: str, source_pk: Key | None) -> LedgerEntry:
    """A record that left the source which Altcraft has no delete method for: marked deleted so it is
    reported once and sent again if it comes back."""
    return LedgerEntry(entity, external_id, source_pk, None, "deleted", None,
                       "left the source; Altcraft has no delete method for it")
