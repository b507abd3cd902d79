"""Sending root definitions and categories with a real record (see :mod:`flows.roots` for why and which).

A mixin of :class:`flows.engine.Syncer`: a carrier is read, mapped and checked like any record of its
stream, and its outcome is recorded in the ledger with the definitions or categories it carried."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from altcraft_sync import streams as registry
from connectors.altcraft import Outcome
from connectors.state import LedgerEntry
from flows import roots
from flows.decide import DecisionMixin
from flows.mapping import fetch_and_map
from flows.stats import StreamStats
from transforms.payload import Payload

CARRIER_CANDIDATES = 20
"""Rows read to find one valid record that carries definitions or categories."""


class CarrierMixin(DecisionMixin):
    """Definitions before a stream's first record; categories with a product or SKU."""

    def _send_definitions(self, stream: str, stats: StreamStats) -> None:
        """Send the custom field / line status definitions ``stream`` uses that the ledger does not hold
        as delivered with the same fingerprint, with one carrier record of the stream, before any record of
        the stream goes out. A run where they did not change sends nothing for them."""
        defs = roots.definitions_for(self.config, stream, list(self.source.entities))
        if not defs:
            return
        known: dict[tuple[str, str], Any] = {}
        for entity in {d.entity for d in defs}:
            known.update({(entity, k): v for k, v in self.state.known(entity, [d.external_id for d in defs
                                                                              if d.entity == entity]).items()})
        due = [d for d in defs if not _holds(known.get((d.entity, d.external_id)), d.fingerprint)]
        if not due:
            return
        assert self.client is not None
        found = self._carrier(stream)
        if found is None:
            stats.warnings.append(f"{len(due)} definitions wait for a {registry.get(stream).entity} to carry them "
                                  "(Altcraft takes definitions only with a record)")
            return
        carrier, resent = found
        spec = registry.get(stream)
        entity = spec.entity
        assert spec.import_method is not None  # only streams with an import carry (flows.roots)
        batch = uuid.uuid4().hex
        self.state.begin_send(batch, entity, [(carrier.external_id, carrier.source_pk)])
        roots_body: dict[str, Any] = roots.roots_body(due)
        if spec.takes_skip_triggers:  # a re-sent, unchanged order must not fire a customer's trigger again
            roots_body["skip_triggers"] = True if resent else self.skip_triggers
        outcome = self.client.import_with_roots(spec.import_method, carrier, roots_body)
        stats.add(requests=1)
        self.log.info("%s: sent %d definitions with %s %s", stream, len(due), entity, carrier.external_id)
        entries = [LedgerEntry(d.entity, d.external_id, None, d.fingerprint, "delivered") for d in due]
        entries.append(self._carrier_entry(entity, carrier, outcome, resent))
        self.state.commit_chunk(stream=stream, entries=entries, run_id=self.run_id, lock_owner=self.owner)
        self.state.settle([batch])

    def _carrier(self, stream: str, sending: Collection[str] = ()) -> tuple[Payload, bool] | None:
        """One real record of ``stream`` to carry root definitions or categories, and whether it is a
        re-send: a record the ledger holds as delivered (sent again unchanged, an idempotent upsert), or,
        before anything of the stream was delivered, the first valid row of the source. None when the
        stream has no valid row at all."""
        cast = self._pk_cast(stream)
        delivered = self.state.delivered_keys(registry.get(stream).entity, CARRIER_CANDIDATES)
        first_page = None if delivered else next(self.source.iter_keys(stream, limit=CARRIER_CANDIDATES), None)
        keys = delivered or ([] if first_page is None else first_page["_pk"].tolist())
        if not keys:
            return None
        parents = self.source.fetch_by_keys(stream, [cast(k) for k in keys])
        if parents.empty:
            return None
        mapped = fetch_and_map(self._mapping_spec(stream), parents, self._child_entity(stream), self.source).mapped
        blocked = self._blocked(stream, mapped, sending)  # a carrier Altcraft would refuse as unknown is no carrier
        usable = [p for i, p in enumerate(mapped.payloads) if i not in blocked]
        return (usable[0], bool(delivered)) if usable else None

    def _push_categories(self, stream: str, send: list[Payload], stats: StreamStats) -> list[LedgerEntry]:
        """Categories go with one product (or SKU) per request (:meth:`AltcraftClient.import_categories`).
        With no product or SKU to carry them they wait in the ledger as deferred, and go out on a later
        run once one exists."""
        assert self.client is not None
        entity = registry.get(stream).entity
        carrier_stream = roots.category_carrier(list(self.source.entities))
        found = self._carrier(carrier_stream, {p.external_id for p in send}) if carrier_stream else None
        if found is None or carrier_stream is None:
            stats.add(deferred=len(send))
            self._attempted.update((entity, p.external_id) for p in send)  # not again in this run's retry
            why = "waiting for a product or SKU to carry it (Altcraft takes categories only with one)"
            self._sample(stats, "deferred", [{"external_id": p.external_id, "reason": why} for p in send])
            return [LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, "deferred", None, why)
                    for p in send]
        carrier, resent = found
        method = registry.get(carrier_stream).import_method
        assert method is not None
        report = self.client.import_categories(send, carrier=carrier, method=method)
        entries = [outcome_entry(entity, p, report.outcomes[p.external_id]) for p in send]
        for e in entries:
            if e.status != "delivered":
                self.log.warning("%s %s rejected by Altcraft: %s %s", entity, e.external_id, e.error_code, e.error_text)
        delivered = sum(e.status == "delivered" for e in entries)
        stats.add(requests=report.requests, delivered=delivered, rejected=len(entries) - delivered)
        if report.carrier is not None:
            entries.append(self._carrier_entry(registry.get(carrier_stream).entity, carrier, report.carrier, resent))
        return entries

    def _carrier_entry(self, entity: str, carrier: Payload, outcome: Outcome, resent: bool) -> LedgerEntry:
        """The carrier's ledger entry. A new carrier that was delivered is counted as delivered when its own
        stream reads it (and finds it unchanged), so a run's figures add up."""
        if not resent and outcome.status == "delivered":
            self._carried.add((entity, carrier.external_id))
        return outcome_entry(entity, carrier, outcome)


def _holds(known: Any, fingerprint: str) -> bool:
    """Whether the ledger says Altcraft holds this exact version."""
    return known is not None and known.status == "delivered" and known.fingerprint == fingerprint


def outcome_entry(entity: str, p: Payload, o: Outcome) -> LedgerEntry:
    return LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, o.status, o.code or None, o.text or None,
                       o.permanent)
