"""Sending a chunk to Altcraft: the import and delete method of each stream, and the ledger entry of every
outcome. A mixin of :class:`flows.engine.Syncer`, run on its push thread."""

from __future__ import annotations

from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.streams import StreamSpec
from connectors.state import LedgerEntry
from flows.carriers import CarrierMixin
from flows.stats import StreamStats
from transforms.payload import Payload


def import_root(spec: StreamSpec, skip_triggers: bool) -> dict[str, Any]:
    """The root options of the stream's import request."""
    return {"skip_triggers": skip_triggers} if spec.takes_skip_triggers else {}


class DispatchMixin(CarrierMixin):
    """``_push`` (imports) and ``_delete`` (deletes) with their figures."""

    def _push(self, stream: str, entity: str, send: list[Payload], stats: StreamStats) -> list[LedgerEntry]:
        assert self.client is not None
        spec = registry.get(stream)
        if spec.import_method is None:  # carried at the root of another stream's import (categories)
            return self._push_categories(stream, send, stats)
        report = self.client.import_records(spec.import_method, send, root=import_root(spec, self.skip_triggers))
        counts = {"delivered": 0, "rejected": 0, "failed": 0}
        entries = []
        for p in send:
            o = report.outcomes[p.external_id]
            if o.status != "delivered":  # only what may be pending: memory stays flat in N
                self._attempted.add((entity, p.external_id))
            entries.append(LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, o.status,
                                       o.code or None, o.text or None, o.permanent))
            counts[o.status if o.status in counts else "failed"] += 1
            if o.status == "rejected":
                self.log.warning("%s %s rejected by Altcraft: %s %s", entity, p.external_id, o.code, o.text)
        stats.add(requests=report.requests, **counts)
        if counts["rejected"] or counts["failed"]:
            self._sample(stats, "rejected", [
                {"external_id": e.external_id, "code": e.error_code, "error": e.error_text}
                for e in entries if e.status != "delivered"])
        return entries

    def _delete(self, stream: str, entity: str, deletions: list[tuple[str, Any]], stats: StreamStats,
                only_known: bool = True) -> list[LedgerEntry]:
        """Delete in Altcraft what the ledger says is there; rows never sent need nothing. Reconcile also
        deletes what may have been sent unknown to the ledger (``only_known=False``): a delete of an id
        Altcraft does not hold counts as done."""
        targets = self._delete_targets(entity, deletions) if only_known else deletions
        if not targets or self.dry_run:
            return []
        assert self.client is not None
        spec = registry.get(stream)
        if spec.delete_method is None:
            return []  # Altcraft cannot delete them (categories have no delete method, api.md §1.2)
        report = self.client.delete_records(spec.delete_method, [ext for ext, _ in targets],
                                            one_by_one=spec.delete_one_by_one)
        out = []
        for ext, pk in targets:
            o = report.outcomes[ext]
            out.append(LedgerEntry(entity, ext, pk, None, "deleted" if o.status == "delivered" else o.status,
                                   o.code or None, o.text or None, o.permanent))
        stats.add(requests=report.requests, deleted=sum(e.status == "deleted" for e in out))
        return out
