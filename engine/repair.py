"""Repair: re-sending what the ledger holds as not delivered, and deleting what left the source.

Retries go through the same pipeline as any chunk (its two operations are handed in as a
:class:`ChunkFeed`); reconcile reads every source key (opt-in) and deletes in Altcraft what vanished. The
coordinator holds the stream's lock around each of these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.batching import batched
from altcraft_sync.cursor import PK, Cursor
from altcraft_sync.keys import canonical_key
from altcraft_sync.wording import plural
from connectors.state import MAY_HOLD
from engine.commit import Committer
from engine.context import RunContext
from engine.dispatch import Dispatcher
from engine.outcomes import undeletable_entry
from engine.stats import StreamStats
from transforms.payload import deleted_mask
from transforms.values import ids, pylist


class ChunkFeed(Protocol):
    """The pipeline operations repair feeds (:class:`engine.pipeline.Pipeline` has them)."""

    def process_commit(self, stream: str, parents: pd.DataFrame, stats: StreamStats, cursor: Cursor | None,
                       cursor_name: str) -> None: ...

    def drain(self) -> None: ...


class Repair:
    """``reconcile``, the retry pass and the quarantine re-read of every stream run, and removing what a
    full read did not see."""

    def __init__(self, ctx: RunContext, feed: ChunkFeed, dispatcher: Dispatcher, committer: Committer) -> None:
        self.ctx, self.feed, self.dispatcher, self.committer = ctx, feed, dispatcher, committer

    def reconcile(self, stream: str) -> StreamStats:
        """Delete in Altcraft what the ledger says is there but the source no longer has (hard deletes).

        Opt-in: it reads every source key (in pages; keys only) and every ledger key of the entity. Never
        a re-send: only ids that vanished are deleted, in batches. Categories cannot be deleted through the
        API (docs/altcraft-api.md §1.2), so they are only reported."""
        stats = StreamStats(stream)
        if registry.get(stream).profiles:
            return self._people_left(stream, stats)
        present: set[str] = set()
        for frame in self.ctx.source.iter_keys(stream):
            if "_deleted" in frame:
                frame = frame[~deleted_mask(frame)]
            present.update(pylist(ids(frame["external_id"])))
        stats.extracted = len(present)
        self.remove_vanished(stream, lambda ids: [i for i in ids if i not in present], stats, unsettled=True)
        return stats

    def _people_left(self, stream: str, stats: StreamStats) -> StreamStats:
        """Reconcile of a profile stream: deleting a person is explicit, never a side effect of a sync
        (``forget``), so the people whose shop rows are gone are only reported, by their shop key. A
        profile's external id is its matching key, which the mapping makes; the ledger keeps the shop
        key beside it, so the comparison is on shop keys."""
        present: set[str] = set()
        for frame in self.ctx.source.iter_keys(stream):
            if "_deleted" in frame:
                frame = frame[~deleted_mask(frame)]
            present.update(k for k in map(canonical_key, frame[PK].tolist()) if k is not None)
        stats.extracted = len(present)
        entity = registry.get(stream).entity
        left = sorted({pk for _, pk in self.ctx.state.ids_with_status(entity, MAY_HOLD)
                       if pk is not None and pk not in present})
        if left:
            self._report_people_left(stream, left, stats)
        return stats

    def _report_people_left(self, stream: str, keys: list[str], stats: StreamStats) -> None:
        stats.warnings.append(f"{len(keys):,} left the shop (e.g. {keys[0]}); their profiles stay in Altcraft "
                              "until `altcraft-sync forget --customer ID` deletes them")
        self.ctx.sample(stats, "left the shop", keys)

    def remove_vanished(self, stream: str, missing: Callable[[list[str]], list[str]], stats: StreamStats, *,
                         unsettled: bool) -> None:
        """Delete in Altcraft what the ledger holds but the source no longer has (``missing`` answers, for a
        batch of external ids, those the source does not have), in batches. What Altcraft cannot delete
        (categories, docs/altcraft-api.md §1.2) is reported and marked deleted in the ledger, so it is reported once and
        sent again if it comes back. ``unsettled`` adds the records of batches a dead run sent without
        committing their outcome: Altcraft may hold them unknown to the ledger, and one hard-deleted since
        is never read again. Quarantined records that left the source leave the backlog."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        vanished: dict[str, str] = {}
        for part in batched(ctx.state.ids_with_status(entity, MAY_HOLD), 5000):
            keys = dict(part)
            vanished.update((ext, keys[ext]) for ext in missing(list(keys)))
        if registry.get(stream).profiles:  # people are deleted by `forget` only
            if vanished:
                self._report_people_left(stream, sorted(str(pk) for pk in vanished.values()), stats)
            return
        batches: list[str] = []
        if unsettled:
            batches, maybe_sent = ctx.state.unsettled(entity)
            keys = dict(maybe_sent)
            for ext in missing(list(keys)):
                vanished.setdefault(ext, keys[ext])
        if vanished:
            ctx.log.info("%s: %s left the source", stream, plural(len(vanished), "record"))
        if vanished and registry.get(stream).delete_method is None:
            stats.warnings.append(f"{len(vanished)} {stream} left the source; Altcraft has no delete method for them")
            ctx.sample(stats, "vanished", sorted(vanished))
            self.committer.commit(stream, entries=[undeletable_entry(entity, ext, pk) for ext, pk in vanished.items()])
        elif vanished and ctx.dry_run:
            stats.add(deleted=len(vanished))
            ctx.sample(stats, "deleted", list(vanished))
        elif vanished:
            targets = list(vanished.items())
            for part in batched(targets, ctx.config.altcraft.batch_size):
                self.committer.commit(stream, entries=self.dispatcher.delete(stream, part, stats, only_known=False))
        gone = sorted(missing(sorted(ctx.state.quarantined_ids(entity))))
        if gone:
            self.committer.commit(stream, cleared=[(entity, ext) for ext in gone])
        if batches and not ctx.dry_run:
            ctx.state.settle(batches)

    def retry_pending(self, stream: str, stats: StreamStats) -> None:
        """Re-read by key and send again what the ledger holds as failed, retryably rejected or deferred
        (not what this run already tried)."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        pending = [(ext, pk) for ext, pk in ctx.state.pending(entity) if (entity, ext) not in ctx.memory.attempted]
        if not pending:
            return
        keys = ctx.source_keys(stream, [pk for _, pk in pending])
        if not keys:
            return
        ctx.log.info("%s: retrying %s that were not delivered", stream, plural(len(keys), "record"))
        for part in batched(keys, ctx.config.source.chunk_size):
            parents = ctx.source.fetch_by_keys(stream, part)
            stats.add(retried=len(parents))
            if not parents.empty:
                self.feed.process_commit(stream, parents, stats, None, stream)

    def heal_quarantine(self, stream: str, stats: StreamStats) -> None:
        """Re-read, by key, the records quarantined before this run that this run did not quarantine again:
        a fix in a joined table (a customer's e-mail) moves no ``updated_at`` of theirs, so no cursor would
        ever read them again. Valid ones go out and leave the quarantine; the others stay, counted as
        ``still_invalid`` (the backlog, not this run's failures: the failure threshold does not count them).
        Cost: one keyed read per quarantined record per run, in chunks; only records whose raw rows changed
        since they were quarantined are mapped (the pipeline skips the others, ``transforms.digest``)."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        again = ctx.memory.quarantined_now.get(entity, set())
        keys = ctx.source_keys(stream, [pk for ext, pk in ctx.state.quarantined_keys(entity) if ext not in again])
        if not keys:
            return
        healing = StreamStats(stream)
        ctx.log.info("%s: re-reading %d quarantined records", stream, len(keys))
        for part in batched(keys, ctx.config.source.chunk_size):
            parents = ctx.source.fetch_by_keys(stream, part)
            if not parents.empty:
                self.feed.process_commit(stream, parents, healing, None, stream)
        self.feed.drain()
        names = ("delivered", "rejected", "failed", "deferred", "deleted", "new", "changed", "requests")
        stats.add(still_invalid=healing.invalid + healing.still_invalid, **{name: getattr(healing, name) for name in names})
        for kind, items in healing.samples.items():
            if kind != "invalid":
                stats.samples.setdefault(kind, []).extend(items[: 5 - len(stats.samples.get(kind, []))])
