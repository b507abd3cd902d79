"""Sending a chunk to Altcraft: the import and delete method of each stream, and the ledger entry of every
outcome. A mixin of :class:`flows.engine.Syncer`, run on its push thread."""

from __future__ import annotations

from typing import Any

from connectors.state import LedgerEntry
from flows.stats import StreamStats
from transforms.payload import Payload


class DispatchMixin:
    """``_push`` (imports) and ``_delete`` (deletes) with their figures."""

    def _push(self, stream: str, entity: str, send: list[Payload], stats: StreamStats) -> list[LedgerEntry]:
        assert self.client is not None
        if stream == "orders":
            report = self.client.import_orders(send, skip_triggers=self.skip_triggers)
        elif stream == "skus":
            report = self.client.import_skus(send)
        elif stream == "products":
            report = self.client.import_products(send)
        else:
            return self._push_categories(send, stats)
        stats.requests += report.requests
        entries = []
        for p in send:
            o = report.outcomes[p.external_id]
            if o.status != "delivered":  # only what may be pending: memory stays flat in N
                self._attempted.add((entity, p.external_id))
            entries.append(LedgerEntry(entity, p.external_id, p.source_pk, p.fingerprint, o.status,
                                       o.code or None, o.text or None, o.permanent))
            if o.status == "delivered":
                stats.delivered += 1
            elif o.status == "rejected":
                stats.rejected += 1
                self.log.warning("%s %s rejected by Altcraft: %s %s", entity, p.external_id, o.code, o.text)
            else:
                stats.failed += 1
        if stats.rejected or stats.failed:
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
        ext_ids = [ext for ext, _ in targets]
        if stream == "orders":
            report = self.client.delete_orders(ext_ids)
        elif stream == "skus":
            report = self.client.delete_skus(ext_ids)
        elif stream == "products":
            report = self.client.delete_products(ext_ids)
        else:
            return []  # Altcraft has no category delete method (api.md §1.2)
        stats.requests += report.requests
        out = []
        for ext, pk in targets:
            o = report.outcomes[ext]
            if o.status == "delivered":
                stats.deleted += 1
            out.append(LedgerEntry(entity, ext, pk, None, "deleted" if o.status == "delivered" else o.status,
                                   o.code or None, o.text or None, o.permanent))
        return out
