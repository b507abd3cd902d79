"""The sync engine's coordinator: one stream, chunk by chunk. Plain Python (no Prefect), so the flows only
wire it and report, and its behaviour is tested without a Prefect server.

For each chunk: extract (keyset page, :mod:`engine.planner`) -> map + validate (transforms, maybe in a map
worker) -> decide (:mod:`engine.decide`: unchanged, deferred by :mod:`engine.dependencies`, to send, to
delete) -> push (:mod:`engine.dispatch`) -> record every outcome and the chunk's watermark in one state
transaction (:mod:`engine.pipeline`). A chunk is committed only after Altcraft answered for each of its
records, so a killed run resumes at its last committed chunk and the watermark never passes a row that is
neither delivered nor recorded.

Before a stream's first record its new or changed definitions go out with a carrier record
(:mod:`engine.carriers`); after the cursors, records whose last send failed, was rejected with a retryable
error or was deferred are re-read by key and sent again (:mod:`engine.repair`): the ledger never hides a
failure. Permanent rejections wait until their data changes.

:class:`Syncer` builds the parts around one :class:`engine.context.RunContext`, holds the stream locks and
keeps the order of a stream's steps; it names no stream.
"""

from __future__ import annotations

from datetime import datetime

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.durations import describe
from altcraft_sync.errors import SyncError
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore, abandon
from engine.carriers import Carriers
from engine.commit import Committer
from engine.context import Log, RunContext, RunOptions
from engine.decide import Decider
from engine.dependencies import Dependencies
from engine.dispatch import Dispatcher
from engine.ledger_view import LedgerView
from engine.mapping import ChunkMapper
from engine.pipeline import Pipeline
from engine.planner import WORKERS_AFTER_FULL_PAGES, Planner, Window
from engine.reader import RecordReader
from engine.repair import Repair
from engine.seen import SeenIds
from engine.stats import ProgressHook, StreamStats

__all__ = ["WORKERS_AFTER_FULL_PAGES", "Parts", "ProgressHook", "StreamStats", "Syncer"]

def trigger_cutoff(window: float | None, stream: str, db_now: datetime) -> float | None:
    """Unix time before which a change of ``stream``'s records is history (sent with ``skip_triggers``):
    the database clock minus ``sync.trigger_window``; None when there is no window or the stream's import
    takes no ``skip_triggers``."""
    if window is None or not registry.get(stream).takes_skip_triggers:
        return None
    return db_now.timestamp() - window


def run_notes(stats: StreamStats, window: float | None) -> list[str]:
    """What a stream run did besides its figures, for its summary line."""
    notes = []
    if stats.without_triggers and window is not None:
        notes.append(f"{stats.without_triggers:,} sent without triggers (older than {describe(window)})")
    if stats.stand_ins:
        notes.append(f"{stats.stand_ins:,} unavailable stand-in products sent for items deleted in the shop or "
                     "refused by Altcraft")
    return notes


class Parts:
    """The engine's parts around one context, each given the parts it calls (no part knows the others'
    internals; verify builds only the ones it needs)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.committer = Committer(ctx)
        self.dependencies = Dependencies(ctx)
        self.ledger = LedgerView(ctx)
        self.decider = Decider(ctx, self.dependencies, self.ledger)
        self.reader = RecordReader(ctx)
        self.carriers = Carriers(ctx, self.dependencies, self.reader, self.committer)
        self.dispatcher = Dispatcher(ctx, self.carriers, self.ledger)
        self.pipeline = Pipeline(ctx, self.decider, self.dispatcher, self.committer)
        self.repair = Repair(ctx, self.pipeline, self.dispatcher, self.committer)
        self.planner = Planner(ctx, self.pipeline, self.committer)


class Syncer:
    """Runs streams for one run. ``client`` may be ``None`` only for dry runs. ``close()`` (or ``with``)
    stops its threads and map workers."""

    def __init__(self, config: Config, source: ShopSource, state: StateStore, client: AltcraftClient | None, *,
                 run_id: str, dry_run: bool = False, skip_triggers: bool = False, on_progress: ProgressHook | None = None,
                 log: Log | None = None, resend: bool = False, lock_wait_seconds: float = 0) -> None:
        options = RunOptions(run_id=run_id, dry_run=dry_run, skip_triggers=skip_triggers, resend=resend,
                             lock_wait_seconds=lock_wait_seconds)
        self.ctx = RunContext(config, source, state, client, options)
        if log is not None:
            self.ctx.log = log
        if on_progress is not None:
            self.ctx.on_progress = on_progress
        self.parts = Parts(self.ctx)

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the hosts of a run set and read ----------------------------------------------------------
    @property
    def dry_run(self) -> bool:
        return self.ctx.dry_run

    @property
    def log(self) -> Log:
        return self.ctx.log

    @log.setter
    def log(self, log: Log) -> None:
        self.ctx.log = log

    @property
    def on_progress(self) -> ProgressHook:
        return self.ctx.on_progress

    @on_progress.setter
    def on_progress(self, fn: ProgressHook) -> None:
        self.ctx.on_progress = fn

    @property
    def count_totals(self) -> bool:
        return self.ctx.count_totals

    @count_totals.setter
    def count_totals(self, wanted: bool) -> None:
        self.ctx.count_totals = wanted

    @property
    def mapper(self) -> ChunkMapper:
        return self.parts.pipeline.mapper

    def close(self) -> None:
        """Finish nothing more: stop the map workers and the push and commit threads."""
        self.parts.pipeline.close()

    # --- entry points --------------------------------------------------------------------------------
    def sync_stream(self, stream: str, *, window: Window | None = None) -> StreamStats:
        """Sync one stream incrementally from its watermark, or, with ``window=(since, until)`` (aware
        datetimes), re-send that range without touching the watermark (backfills)."""
        ctx, p = self.ctx, self.parts
        stats = StreamStats(stream)
        entity = registry.get(stream).entity
        self._acquire(stream, ctx.options.lock_wait_seconds)
        p.dependencies.forget(stream)
        try:
            db_now = ctx.source.db_now()  # before the definitions: their carrier is an order too
            ctx.memory.trigger_cutoff = trigger_cutoff(ctx.config.sync.trigger_window, stream, db_now)
            for name in ctx.config.enabled_streams():  # what the state held before this run sent anything: a
                p.ledger.held_at_start(registry.get(name).entity)  # carrier (a product carries categories) is new
            if not ctx.dry_run:
                p.carriers.send_definitions(stream, stats)
            full_pass = not p.planner.has_ts(stream)
            if full_pass:
                ctx.memory.seen[entity] = SeenIds()
            for cursor_name in p.planner.cursors(stream):
                p.planner.sync_cursor(p.planner.plan(stream, cursor_name, window, db_now), stats)
            if window is None and not ctx.dry_run:
                p.repair.retry_pending(stream, stats)
                p.pipeline.drain()
                p.repair.heal_quarantine(stream, stats)
            if full_pass and window is None:  # everything was read: what was not seen left the source
                p.repair.remove_vanished(stream, ctx.memory.seen[entity].missing, stats, unsettled=False)
            p.planner.lag(stream, stats)
            stats.notes += run_notes(stats, ctx.config.sync.trigger_window)
        finally:
            seen = ctx.memory.seen.pop(entity, None)
            if seen is not None:
                seen.close()
            p.pipeline.abandon()
            p.pipeline.mapper.shutdown()
            self._release(stream)
        return stats

    def retry(self, stream: str) -> StreamStats:
        """Re-send only what the ledger holds as failed or retryably rejected (``altcraft-sync retry``)."""
        p = self.parts
        stats = StreamStats(stream)
        self._acquire(stream)
        p.dependencies.forget(stream)
        try:
            p.carriers.send_definitions(stream, stats)
            p.repair.retry_pending(stream, stats)
            p.pipeline.drain()
        finally:
            p.pipeline.abandon()
            self._release(stream)
        return stats

    def reconcile(self, stream: str) -> StreamStats:
        """Delete in Altcraft what the ledger holds but the source no longer has (:meth:`Repair.reconcile`).
        Locked even in a dry run: it reads every ledger key of the stream, which a writer would move."""
        self._acquire(stream, locks_dry_run=True)
        try:
            return self.parts.repair.reconcile(stream)
        finally:
            self._release(stream, locks_dry_run=True)

    # --- locks -----------------------------------------------------------------------------------------
    def _acquire(self, stream: str, wait_seconds: float = 0, *, locks_dry_run: bool = False) -> None:
        """Take the stream's lock (a dry run of a sync writes nothing and takes none)."""
        if locks_dry_run or not self.ctx.dry_run:
            self.ctx.state.acquire_lock(stream, self.ctx.owner, wait_seconds=wait_seconds)

    def _release(self, stream: str, *, locks_dry_run: bool = False) -> None:
        """Release the stream's lock without hiding the error that ended the stream: if the state database
        cannot take even this, the owner is marked ended in this process and the next run takes over."""
        if self.ctx.dry_run and not locks_dry_run:
            return
        try:
            self.ctx.state.release_lock(stream, self.ctx.owner)
        except SyncError as err:
            self.ctx.log.error("%s: could not release the stream lock: %s", stream, err)
            abandon(self.ctx.owner)
