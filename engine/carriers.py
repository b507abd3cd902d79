"""Sending root definitions and categories with a real record (see :mod:`engine.roots` for why and which).

A carrier is read, mapped and checked like any record of its stream, and its outcome is recorded in the
ledger with the definitions or categories it carried."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

import orjson

from altcraft_sync import streams as registry
from altcraft_sync.wording import plural
from connectors.altcraft import Outcome
from connectors.state import Known, LedgerEntry
from engine import roots
from engine.commit import Committer
from engine.context import RunContext
from engine.dependencies import Dependencies
from engine.outcomes import deferred_entry, definition_entry, sent_entry
from engine.reader import RecordReader
from engine.stats import StreamStats
from transforms.category_tree import parents_first, under_waiting
from transforms.payload import Payload

CARRIER_CANDIDATES = 20
"""Rows read to find one valid record that carries definitions or categories."""


class Carriers:
    """Definitions before a stream's first record; categories with a product or SKU."""

    def __init__(self, ctx: RunContext, dependencies: Dependencies, reader: RecordReader, committer: Committer) -> None:
        self.ctx, self.dependencies, self.reader, self.committer = ctx, dependencies, reader, committer
        self._changed_at: dict[str, float] = {}
        """The change time of each carrier found (orders: for the trigger window)."""
        self._categories_held: set[str] = set()
        """Categories this run delivered (their commit may still be on its way to the ledger)."""

    def send_definitions(self, stream: str, stats: StreamStats) -> None:
        """Send the custom field / line status definitions ``stream`` uses that the ledger does not hold
        as delivered with the same fingerprint, with one carrier record of the stream, before any record of
        the stream goes out. A run where they did not change sends nothing for them."""
        ctx = self.ctx
        due = self.due_definitions(stream)
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
        entries.append(self.carrier_entry(entity, carrier, outcome, resent, stats))
        self.committer.commit(stream, entries=entries, settle=[batch])

    def due_definitions(self, stream: str) -> list[roots.Definition]:
        """The definitions ``stream`` carries that the ledger does not hold as delivered, as they are now."""
        ctx = self.ctx
        defs = roots.definitions_for(ctx.config, stream, list(ctx.source.entities))
        known: dict[tuple[str, str], Known] = {}
        for entity in {d.entity for d in defs}:
            known.update({(entity, k): v for k, v in ctx.state.known(entity, [d.external_id for d in defs
                                                                             if d.entity == entity]).items()})
        return [d for d in defs if not _holds(known.get((d.entity, d.external_id)), d.fingerprint)]

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
        """Categories go with one product (or SKU) per request (:meth:`AltcraftClient.import_categories`),
        parents before children. A category whose parent Altcraft does not hold and this request does not
        create waits as deferred while that parent can still arrive (:meth:`_tree_order`). With no product
        or SKU to carry them they wait too, and go out on a later run once one exists. The categories the
        ledger holds as waiting go along when some of ``send`` wait or lack a carrier
        (:meth:`_waiting_categories`): a parent, or the category a carrier names, may be among them."""
        ctx = self.ctx
        spec = registry.get(stream)
        entity = spec.entity
        carrier_stream = roots.carrier_of(spec.root_key, list(ctx.source.entities))
        go, waiting = self._tree_order(stream, send)
        found = None
        if carrier_stream:
            self.dependencies.forget(carrier_stream)  # categories this run delivered since its index was loaded count
            found = self.carrier(carrier_stream, {p.external_id for p in go}) if go else None
            extra = self._waiting_categories(stream, send) if waiting or found is None else []
            if extra:  # what waits may wait for these, or for a carrier that names one of them
                wider, wider_waiting = self._tree_order(stream, send + extra)
                wider_found = self.carrier(carrier_stream, {p.external_id for p in wider}) if wider else None
                if wider_found is not None:
                    ctx.log.info("%s: %s that waited go along", stream, plural(len(extra), "category", "categories"))
                    stats.add(extracted=len(extra), retried=len(extra))
                    go, waiting, found = wider, wider_waiting, wider_found
        if found is None or carrier_stream is None:
            why = "waiting for a product or SKU to carry it (Altcraft takes categories only with one)"
            return self._deferred(entity, waiting + [(p, why) for p in go], stats)
        entries = self._deferred(entity, waiting, stats)
        carrier, resent = found
        method = registry.get(carrier_stream).import_method
        assert method is not None
        # the carrier's own definitions go in the same request, so they precede the record that uses them
        due = self.due_definitions(carrier_stream)
        report = ctx.need_client().import_categories(go, carrier=carrier, method=method, roots=roots.roots_body(due))
        sent = [sent_entry(entity, p, report.outcomes[p.external_id]) for p in go]
        for e in sent:
            if e.status != "delivered":
                ctx.log.warning("%s %s %s by Altcraft: %s %s", entity, e.external_id,
                                "refused" if e.status == "rejected" else "not taken", e.error_code, e.error_text)
        ctx.memory.attempted.update((entity, e.external_id) for e in sent if e.status != "delivered")
        self._categories_held.update(e.external_id for e in sent if e.status == "delivered")
        counts = {status: sum(e.status == status for e in sent) for status in ("delivered", "rejected", "failed")}
        stats.add(requests=report.requests, **counts)
        entries += sent
        if due and counts["delivered"]:  # a request carrying them was accepted
            entries += [definition_entry(d.entity, d.external_id, d.fingerprint) for d in due]
        if report.carrier is not None:
            entries.append(self.carrier_entry(registry.get(carrier_stream).entity, carrier, report.carrier, resent,
                                              stats))
        return entries

    def _deferred(self, entity: str, waiting: list[tuple[Payload, str]], stats: StreamStats) -> list[LedgerEntry]:
        """Ledger entries of categories that wait; not tried again in this run's retry pass."""
        if not waiting:
            return []
        stats.add(deferred=len(waiting))
        self.ctx.memory.attempted.update((entity, p.external_id) for p, _ in waiting)
        self.ctx.sample(stats, "deferred", [{"external_id": p.external_id, "reason": why} for p, why in waiting])
        return [deferred_entry(entity, p, why) for p, why in waiting]

    def _tree_order(self, stream: str, send: list[Payload]) -> tuple[list[Payload], list[tuple[Payload, str]]]:
        """``send`` with every parent before its children (:func:`transforms.category_tree.parents_first`), and
        the categories that wait, each with why: a parent Altcraft does not hold, not in ``send``, that can
        still arrive (the rules of :mod:`engine.waiting`: quarantined, waiting, in the shop and not sent
        yet; for at most ``sync.max_defer``), or a parent that waits itself. A parent that will never
        arrive blocks nothing: the category goes, and Altcraft's answer is what the ledger says."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        ids = [p.external_id for p in send]
        parents = [_parent(p) for p in send]
        outside = sorted({x for x in parents if x is not None} - set(ids) - self._categories_held)
        known = ctx.state.known(entity, outside) if outside else {}
        held = self._categories_held | {ext for ext, k in known.items() if k.status == "delivered"}
        order, orphans = parents_first(ids, parents, held)
        if not ctx.config.sync.wait_for_dependencies:
            return [send[i] for i in order], []
        decisions = self.dependencies.desk.decide(
            stream, {i: [x] for i, x in orphans.items()}, {i: ids[i] for i in orphans}, datetime.now(UTC),
            within=True, quarantined_now=ctx.memory.quarantined_now.get(entity, ()))
        wait = {i: d.reason for i, d in decisions.items() if d.wait}
        for i, parent in under_waiting(order, ids, parents, wait).items():
            wait[i] = f"waiting for its parent {parent!r}, which waits itself"
        return [send[i] for i in order if i not in wait], [(send[i], wait[i]) for i in order if i in wait]

    def _waiting_categories(self, stream: str, send: list[Payload]) -> list[Payload]:
        """The stream's categories the ledger holds as waiting or failed (not those of ``send``, nor any this
        run tried or delivered), read and mapped again. When every product that could carry ``send`` names
        one of them, they go in the same request, parents first; without them nothing would ever carry
        either (a category read by the cursor, its siblings waiting in the ledger since a night without
        products)."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        skip = {p.external_id for p in send} | self._categories_held
        keys = [pk for ext, pk in ctx.state.pending(entity)
                if ext not in skip and (entity, ext) not in ctx.memory.attempted]
        mapped = self.reader.by_ledger_keys(stream, keys) if keys else None
        return [] if mapped is None else [p for p in mapped.payloads if p.external_id not in skip]

    def carrier_entry(self, entity: str, carrier: Payload, outcome: Outcome, resent: bool,
                      stats: StreamStats) -> LedgerEntry:
        """The carrier's ledger entry. A new carrier that was delivered is counted as delivered when its own
        stream reads it (and finds it unchanged), so a run's figures add up. A refused carrier counts: as a
        rejection of this run, and in the ledger as not delivered, so its own stream sends it again (a
        refusal that is not its data's fault, an unknown field or category, is never permanent)."""
        if outcome.status == "delivered":
            if not resent:
                self.ctx.memory.carried.add((entity, carrier.external_id))
            return sent_entry(entity, carrier, outcome)
        stats.add(rejected=1)
        stats.warnings.append(f"{entity} {carrier.external_id}, sent to carry definitions or categories, was not "
                              f"taken by Altcraft ({outcome.code} {outcome.text}); it is sent again with its stream")
        self.ctx.log.warning("%s %s (a carrier) not taken by Altcraft: %s %s", entity, carrier.external_id,
                             outcome.code, outcome.text)
        return sent_entry(entity, carrier, outcome)


def _parent(p: Payload) -> str | None:
    """The parent a category's record names (categories are few: reading their bytes back is cheap)."""
    parent = orjson.loads(p.data).get("parent_external_id")
    return None if parent is None else str(parent)


def _holds(known: Known | None, fingerprint: str) -> bool:
    """Whether the ledger says Altcraft holds this exact version."""
    return known is not None and known.status == "delivered" and known.fingerprint == fingerprint
