"""The decision step of a chunk: what the ledger says is unchanged, what waits (deferred), what is new or
changed, what must be deleted (soft deletes, renamed ids), and what leaves the quarantine.

A mixin of :class:`flows.engine.Syncer` (it reads the run's ledger caches and figures); pure of network
I/O: only the state store is read. The push thread then sends and commits what it returns."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from altcraft_sync import streams as registry
from connectors.state import LedgerEntry
from flows.dependencies import DependencyMixin
from flows.stats import StreamStats
from transforms.payload import Mapped, Payload


@dataclass
class Prepared:
    """A mapped chunk, ready for the pipeline thread to push and commit."""

    entries: list[LedgerEntry]
    quarantined: list[tuple[str, str, Any, list[dict[str, Any]]]]
    cleared: list[tuple[str, str]]
    send: list[Payload]
    deletions: list[tuple[str, Any]]


class DecisionMixin(DependencyMixin):
    """``_process`` and the ledger look-ups it needs."""

    def _process(self, stream: str, mapped: Mapped, stats: StreamStats) -> Prepared:
        """Decide what of a mapped chunk to send (the ledger says what is unchanged). Runs on the run
        thread; its figures are added in one step, as the push thread counts into the same stats."""
        entity = registry.get(stream).entity
        for w in mapped.warnings:
            self.log.warning("%s: %s", stream, w)
            stats.warnings.append(w)
        quarantined = group_quarantine(mapped.quarantine)
        self._count_quarantine(quarantined, stats)
        self._note_seen(entity, mapped, quarantined)
        counts: Counter[str] = Counter(invalid=len(quarantined))
        payloads = mapped.payloads
        t = time.perf_counter()
        known = self.state.known(entity, [p.external_id for p in payloads]) if payloads else {}
        candidates = self._changed(entity, payloads, known, counts, stats)
        blocked = self._blocked(stream, mapped, only=candidates)  # only what would be sent needs checking
        stats.timed("ledger", t)
        entries: list[LedgerEntry] = []
        send: list[Payload] = []
        for i in candidates:
            p = payloads[i]
            if i in blocked:
                entries.append(self._defer(entity, p, blocked[i], stats))
                continue
            send.append(p)
            k = known.get(p.external_id)
            counts["new" if k is None or k.status == "deleted" else "changed"] += 1
        deletions = mapped.deletions + self._renamed(entity, [p for p in payloads if p.external_id not in known])
        cleared = [(entity, ext) for ext, _ in mapped.deletions] + self._requarantine(entity, payloads, quarantined)
        if self.dry_run:
            counts["deleted"] += len(self._delete_targets(entity, deletions))  # would delete
            if entity in registry.depended_on():
                self._would_send.setdefault(entity, set()).update(p.external_id for p in send)
            self._sample(stats, "new", [p for p in send if p.external_id not in known])
            self._sample(stats, "changed", [p for p in send if p.external_id in known])
            send, deletions = [], []
        stats.add(**counts)
        return Prepared(entries, quarantined, cleared, send, deletions)

    def _note_seen(self, entity: str, mapped: Mapped, quarantined: list[Any]) -> None:
        """In a full read (a stream without ``updated_at``), every record the source has: what the pass
        never sees has left the source."""
        seen = self._seen.get(entity)
        if seen is not None:
            seen.add(p.external_id for p in mapped.payloads)
            seen.add(ext for _, ext, _, _ in quarantined)

    def _count_quarantine(self, quarantined: list[Any], stats: StreamStats) -> None:
        for _, _, _, reasons in quarantined:
            for r in reasons:
                key = f"{r['field'] or '*'}: {r['check']}"
                stats.quarantine_reasons[key] = stats.quarantine_reasons.get(key, 0) + 1
        if quarantined:
            self._sample(stats, "invalid", [{"external_id": ext, "reasons": reasons} for _, ext, _, reasons in quarantined])

    def _changed(self, entity: str, payloads: list[Payload], known: dict[str, Any], counts: Counter[str],
                 stats: StreamStats) -> list[int]:
        """Positions of payloads to send: new, changed, or not delivered yet. What the ledger holds with the
        same fingerprint is counted (unchanged, a carrier delivered this run, a permanent rejection that
        stays visible until its data changes) and skipped, unless the run re-sends everything."""
        candidates: list[int] = []
        for i, p in enumerate(payloads):
            k = known.get(p.external_id)
            if self.resend or k is None or k.fingerprint != p.fingerprint or not (k.status == "delivered" or k.permanent):
                candidates.append(i)
            elif (entity, p.external_id) in self._carried:  # new, delivered this run as a carrier
                self._carried.discard((entity, p.external_id))
                counts["delivered"] += 1
                counts["new"] += 1
            elif k.status == "delivered":
                counts["unchanged"] += 1
                if self.dry_run:
                    self._sample(stats, "unchanged", [p.external_id])
            else:
                counts["rejected"] += 1
        return candidates

    def _requarantine(self, entity: str, payloads: list[Payload], quarantined: list[Any]) -> list[tuple[str, str]]:
        """Keep the run's view of the quarantine current: records of this chunk that were quarantined and
        are valid now are cleared (returned), those quarantined now are added."""
        in_quarantine = self._quarantined(entity)
        cleared: list[tuple[str, str]] = []
        if in_quarantine:
            cleared = [(entity, p.external_id) for p in payloads if p.external_id in in_quarantine]
            in_quarantine.difference_update(ext for _, ext in cleared)
        in_quarantine.update(ext for _, ext, _, _ in quarantined)
        self._quarantined_now.setdefault(entity, set()).update(ext for _, ext, _, _ in quarantined)
        return cleared

    def _defer(self, entity: str, p: Payload, ref: str, stats: StreamStats) -> LedgerEntry:
        """A record that waits for ``ref``: not sent, not a rejection; re-read on every run (the ledger's
        pending records) until what it needs is delivered."""
        why = f"waiting for {ref!r}, which Altcraft does not hold yet"
        stats.add(deferred=1)
        self._attempted.add((entity, p.external_id))
        self._sample(stats, "deferred", [{"external_id": p.external_id, "reason": why}])
        return LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, "deferred", None, why)

    def _renamed(self, entity: str, new: list[Payload]) -> list[tuple[str, Any]]:
        """Records whose external id changed for the same source key (a SKU code edited in the shop): the
        old id is deleted in Altcraft with the chunk, or it would stay there for good. A first sync (the
        ledger holds nothing of the entity) skips the lookup."""
        spec = self.config.streams.section(registry.of_entity(entity).name)
        assert spec is not None
        if not new or spec.columns.get("external_id") == spec.primary_key:  # an id that is the key never changes
            return []
        if entity not in self._ledger_has:
            self._ledger_has[entity] = self.state.has_records(entity)
        if not self._ledger_has[entity]:
            return []
        return list(self.state.former_ids(entity, [(p.external_id, p.source_pk) for p in new]))

    def _delete_targets(self, entity: str, deletions: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """The soft-deleted records Altcraft may hold: the ledger's, not yet deleted, and those a dead
        run's in-flight note names (rows never sent need no delete)."""
        if not deletions:
            return []
        known = self.state.known(entity, [ext for ext, _ in deletions])
        maybe_sent = self._maybe_sent(entity)
        return [(ext, pk) for ext, pk in deletions
                if (known[ext].status != "deleted" if ext in known else ext in maybe_sent)]

    def _maybe_sent(self, entity: str) -> set[str]:
        """Ids named by in-flight notes of runs that died between Altcraft's answer and the commit (loaded
        once per run): Altcraft may hold them though the ledger does not, so a soft delete reaches them."""
        if entity not in self._in_flight_ids:
            self._in_flight_ids[entity] = {ext for ext, _ in self.state.unsettled(entity)[1]}
        return self._in_flight_ids[entity]

    def _quarantined(self, entity: str) -> set[str]:
        """The entity's quarantined external_ids (loaded once per run, kept current): only those need a
        delete when they turn valid, instead of a delete per valid record."""
        if entity not in self._quarantine_ids:
            self._quarantine_ids[entity] = self.state.quarantined_ids(entity)
        return self._quarantine_ids[entity]


def group_quarantine(q: pd.DataFrame) -> list[tuple[str, str, Any, list[dict[str, Any]]]]:
    """Quarantine rows grouped per record: (entity, external_id, source_pk, [reasons])."""
    if q.empty:
        return []
    out: dict[tuple[str, str], tuple[str, str, Any, list[dict[str, Any]]]] = {}
    for entity, ext, pk, check, fld, value in zip(q["entity"], q["external_id"], q["source_pk"], q["check"],
                                                  q["field"], q["value"]):
        key = (entity, str(ext))
        if key not in out:
            out[key] = (entity, str(ext), pk, [])
        out[key][3].append({"check": check, "field": fld, "value": None if value is None or value != value else value})
    return list(out.values())
