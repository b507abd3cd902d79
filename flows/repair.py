"""Repair: re-sending what the ledger holds as not delivered, and deleting what left the source.

A mixin of :class:`flows.engine.Syncer`: retries go through the same pipeline as any chunk; reconcile reads
every source key (opt-in) and deletes in Altcraft what vanished."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

from altcraft_sync import streams as registry
from connectors.state import LedgerEntry
from flows.dispatch import DispatchMixin
from flows.stats import StreamStats
from transforms.payload import deleted_mask
from transforms.values import ids, pylist


class RepairMixin(DispatchMixin):
    """``reconcile`` and the retry pass of every stream run."""

    def reconcile(self, stream: str) -> StreamStats:
        """Delete in Altcraft what the ledger says is there but the source no longer has (hard deletes).

        Opt-in: it reads every source key (in pages; keys only) and every ledger key of the entity. Never
        a re-send: only ids that vanished are deleted, in batches. Categories cannot be deleted through the
        API (api.md §1.2), so they are only reported."""
        stats = StreamStats(stream)
        self.state.acquire_lock(stream, self.owner)
        try:
            present: set[str] = set()
            for frame in self.source.iter_keys(stream):
                if "_deleted" in frame:
                    frame = frame[~deleted_mask(frame)]
                present.update(pylist(ids(frame["external_id"])))
            stats.extracted = len(present)
            self._remove_vanished(stream, lambda ids: [i for i in ids if i not in present], stats, unsettled=True)
        finally:
            self._release(stream)
        return stats

    def _remove_vanished(self, stream: str, missing: Callable[[list[str]], list[str]], stats: StreamStats, *,
                         unsettled: bool) -> None:
        """Delete in Altcraft what the ledger holds but the source no longer has (``missing`` answers, for a
        batch of external ids, those the source does not have), in batches. What Altcraft cannot delete
        (categories, api.md §1.2) is reported and marked deleted in the ledger, so it is reported once and
        sent again if it comes back. ``unsettled`` adds the records of batches a dead run sent without
        committing their outcome: Altcraft may hold them unknown to the ledger, and one hard-deleted since
        is never read again. Quarantined records that left the source leave the backlog."""
        entity = registry.get(stream).entity
        vanished: dict[str, str] = {}
        for part in batched(self.state.delivered_ids(entity), 5000):
            keys = dict(part)
            vanished.update((ext, keys[ext]) for ext in missing(list(keys)))
        batches: list[str] = []
        if unsettled:
            batches, maybe_sent = self.state.unsettled(entity)
            keys = dict(maybe_sent)
            for ext in missing(list(keys)):
                vanished.setdefault(ext, keys[ext])
        if vanished:
            self.log.info("%s: %d records left the source", stream, len(vanished))
        if vanished and registry.get(stream).delete_method is None:
            stats.warnings.append(f"{len(vanished)} {stream} left the source; Altcraft has no delete method for them")
            self._sample(stats, "vanished", sorted(vanished))
            if not self.dry_run:
                why = "left the source; Altcraft has no delete method for it"
                self.state.commit_chunk(stream=stream, lock_owner=self.owner, run_id=self.run_id, entries=[
                    LedgerEntry(entity, ext, pk, None, "deleted", None, why) for ext, pk in vanished.items()])
        elif vanished and self.dry_run:
            stats.add(deleted=len(vanished))
            self._sample(stats, "deleted", list(vanished))
        elif vanished:
            targets, size = list(vanished.items()), self.config.altcraft.batch_size
            for start in range(0, len(targets), size):
                entries = self._delete(stream, entity, targets[start:start + size], stats, only_known=False)
                self.state.commit_chunk(stream=stream, entries=entries, run_id=self.run_id, lock_owner=self.owner)
        gone = sorted(missing(sorted(self.state.quarantined_ids(entity))))
        if gone and not self.dry_run:
            self.state.commit_chunk(stream=stream, cleared=[(entity, ext) for ext in gone], lock_owner=self.owner)
        if batches and not self.dry_run:
            self.state.settle(batches)

    def _retry_pending(self, stream: str, stats: StreamStats) -> None:
        entity = registry.get(stream).entity
        pending = [(ext, pk) for ext, pk in self.state.pending(entity) if (entity, ext) not in self._attempted]
        if not pending:
            return
        cast = self._pk_cast(stream)
        keys = [cast(pk) for _, pk in pending]
        self.log.info("%s: retrying %d records that were not delivered", stream, len(keys))
        for start in range(0, len(keys), self.config.source.chunk_size):
            parents = self.source.fetch_by_keys(stream, keys[start:start + self.config.source.chunk_size])
            stats.add(retried=len(parents))
            if not parents.empty:
                self._process_commit(stream, parents, stats, None, stream)

    def _heal_quarantine(self, stream: str, stats: StreamStats) -> None:
        """Re-read, by key, the records quarantined before this run that this run did not quarantine again:
        a fix in a joined table (a customer's e-mail) moves no ``updated_at`` of theirs, so no cursor would
        ever read them again. Valid ones go out and leave the quarantine; the others stay, counted as
        ``still_invalid`` (the backlog, not this run's failures: the failure threshold does not count them).
        Cost: one keyed read and one map per quarantined record per run, in chunks."""
        entity = registry.get(stream).entity
        again = self._quarantined_now.get(entity, set())
        keys = [(ext, pk) for ext, pk in self.state.quarantined_keys(entity) if ext not in again and pk is not None]
        if not keys:
            return
        cast = self._pk_cast(stream)
        healing = StreamStats(stream)
        self.log.info("%s: re-reading %d quarantined records", stream, len(keys))
        size = self.config.source.chunk_size
        for start in range(0, len(keys), size):
            parents = self.source.fetch_by_keys(stream, [cast(pk) for _, pk in keys[start:start + size]])
            if not parents.empty:
                self._process_commit(stream, parents, healing, None, stream)
        self.drain()
        names = ("delivered", "rejected", "failed", "deferred", "deleted", "new", "changed", "requests")
        stats.add(still_invalid=healing.invalid, **{name: getattr(healing, name) for name in names})
        for kind, items in healing.samples.items():
            if kind != "invalid":
                stats.samples.setdefault(kind, []).extend(items[: 5 - len(stats.samples.get(kind, []))])


T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (itertools.batched arrives in Python 3.12)."""
    it = iter(items)
    while part := list(islice(it, size)):
        yield part
