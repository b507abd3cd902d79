"""Sending root definitions and categories with a real record (see :mod:`engine.roots` for why and which).

A carrier is read, mapped and checked like any record of its stream, and its outcome is recorded in the
ledger with the definitions or categories it carried."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from altcraft_sync import streams as registry
from connectors.altcraft import Outcome
from connectors.state import Known, LedgerEntry
from engine import roots
from engine.commit import Committer
from engine.context import RunContext
from engine.dependencies import Dependencies
from engine.outcomes import deferred_entry, definition_entry, sent_entry
from engine.reader import RecordReader
from engine.stats import StreamStats
from transforms.payload import Payload

CARRIER_CANDIDATES = 20
"""Rows read to find one valid record that carries definitions or categories."""


class Carriers:
    """Definitions before a stream's first record; categories with a product or SKU."""

    def __init__(self, ctx: RunContext, dependencies: Dependencies, reader: RecordReader, committer: Committer) -> None:
        self.ctx, self.dependencies, self.reader, self.committer = ctx, dependencies, reader, committer
        self._changed_at: dict[str, float] = {}
        """The change time of each carrier found (orders: for the trigger window)."""

    def send_definitions(self, stream: str, stats: StreamStats) -> None:
        """Send the custom field / line status definitions ``stream`` uses that the ledger does not hold
        as delivered with the same fingerprint, with one carrier record of the stream, before any record of
        the stream goes out. A run where they did not change sends nothing for them."""
        ctx = self.ctx
        defs = roots.definitions_for(ctx.config, stream, list(ctx.source.entities))
        if not defs:
            return
        known: dict[tuple[str, str], Known] = {}
        for entity in {d.entity for d in defs}:
            known.update({(entity, k): v for k, v in ctx.state.known(entity, [d.external_id for d in defs
                                                                             if d.entity == entity]).items()})
        due = [d for d in defs if not _holds(known.get((d.entity, d.external_id)), d.fingerprint)]
        if not due:
            return
        client = ctx.need_client()
        found = self.carrier(stream)
        if found is None:
            stats.warnings.append(f"{len(due)} definitions wait for a {registry.get(stream).entity} to carry them "
                                  "(Altcraft takes definitions only with a record)")
            return
        carrier, resent = found
        spec = registry.get(stream)
        entity = spec.entity
        assert spec.import_method is not None  # only streams with an import carry (engine.roots)
        batch = uuid.uuid4().hex
        ctx.state.begin_send(batch, entity, [(carrier.external_id, carrier.source_pk)])
        roots_body: dict[str, object] = dict(roots.roots_body(due))
        if spec.takes_skip_triggers:  # a re-sent, unchanged order must not fire a customer's trigger again,
            cutoff = ctx.memory.trigger_cutoff  # nor an old one a first time (the trigger window)
            old = cutoff is not None and not self._changed_at.get(carrier.external_id, float("nan")) >= cutoff
            roots_body["skip_triggers"] = True if resent or old else ctx.options.skip_triggers
        outcome = client.import_with_roots(spec.import_method, carrier, roots_body)
        stats.add(requests=1)
        ctx.log.info("%s: sent %d definitions with %s %s", stream, len(due), entity, carrier.external_id)
        entries = [definition_entry(d.entity, d.external_id, d.fingerprint) for d in due]
        entries.append(self.carrier_entry(entity, carrier, outcome, resent))
        self.committer.commit(stream, entries=entries, settle=[batch])

    def carrier(self, stream: str, sending: Collection[str] = ()) -> tuple[Payload, bool] | None:
        """One real record of ``stream`` to carry root definitions or categories, and whether it is a
        re-send: a record the ledger holds as delivered (sent again unchanged, an idempotent upsert), or,
        before anything of the stream was delivered, the first valid row of the source. None when the
        stream has no valid row at all."""
        ctx = self.ctx
        delivered = ctx.state.delivered_keys(registry.get(stream).entity, CARRIER_CANDIDATES)
        if delivered:
            mapped = self.reader.by_ledger_keys(stream, delivered)
        else:
            first_page = next(ctx.source.iter_keys(stream, limit=CARRIER_CANDIDATES), None)
            mapped = None if first_page is None else self.reader.mapped(stream, first_page["_pk"].tolist())
        if mapped is None:
            return None
        blocked = self.dependencies.blocked(stream, mapped, sending)  # a carrier Altcraft would refuse is no carrier
        usable = [i for i in range(len(mapped.payloads)) if i not in blocked]
        if not usable:
            return None
        if mapped.changed_at is not None:
            self._changed_at[mapped.payloads[usable[0]].external_id] = float(mapped.changed_at[usable[0]])
        return mapped.payloads[usable[0]], bool(delivered)

    def push_categories(self, stream: str, send: list[Payload], stats: StreamStats) -> list[LedgerEntry]:
        """Categories go with one product (or SKU) per request (:meth:`AltcraftClient.import_categories`).
        With no product or SKU to carry them they wait in the ledger as deferred, and go out on a later
        run once one exists."""
        ctx = self.ctx
        client = ctx.need_client()
        spec = registry.get(stream)
        entity = spec.entity
        carrier_stream = roots.carrier_of(spec.root_key, list(ctx.source.entities))
        found = self.carrier(carrier_stream, {p.external_id for p in send}) if carrier_stream else None
        if found is None or carrier_stream is None:
            stats.add(deferred=len(send))
            ctx.memory.attempted.update((entity, p.external_id) for p in send)  # not again in this run's retry
            why = "waiting for a product or SKU to carry it (Altcraft takes categories only with one)"
            ctx.sample(stats, "deferred", [{"external_id": p.external_id, "reason": why} for p in send])
            return [deferred_entry(entity, p, why) for p in send]
        carrier, resent = found
        method = registry.get(carrier_stream).import_method
        assert method is not None
        report = client.import_categories(send, carrier=carrier, method=method)
        entries = [sent_entry(entity, p, report.outcomes[p.external_id]) for p in send]
        for e in entries:
            if e.status != "delivered":
                ctx.log.warning("%s %s rejected by Altcraft: %s %s", entity, e.external_id, e.error_code, e.error_text)
        delivered = sum(e.status == "delivered" for e in entries)
        stats.add(requests=report.requests, delivered=delivered, rejected=len(entries) - delivered)
        if report.carrier is not None:
            entries.append(self.carrier_entry(registry.get(carrier_stream).entity, carrier, report.carrier, resent))
        return entries

    def carrier_entry(self, entity: str, carrier: Payload, outcome: Outcome, resent: bool) -> LedgerEntry:
        """The carrier's ledger entry. A new carrier that was delivered is counted as delivered when its own
        stream reads it (and finds it unchanged), so a run's figures add up."""
        if not resent and outcome.status == "delivered":
            self.ctx.memory.carried.add((entity, carrier.external_id))
        return sent_entry(entity, carrier, outcome)


def _holds(known: Known | None, fingerprint: str) -> bool:
    """Whether the ledger says Altcraft holds this exact version."""
    return known is not None and known.status == "delivered" and known.fingerprint == fingerprint
