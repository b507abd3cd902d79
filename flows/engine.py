"""The sync engine's coordinator: one stream, chunk by chunk. Plain Python (no Prefect), so the flows only
wire it and report, and its behaviour is unit-tested without a Prefect server.

For each chunk: extract (keyset page) -> map + validate (transforms, maybe in a map worker) -> decide
(:mod:`flows.decide`: unchanged, deferred by :mod:`flows.dependencies`, to send, to delete) -> push
(:mod:`flows.dispatch`) -> record every outcome and the chunk's watermark in one state transaction. A
chunk is committed only after Altcraft answered for each of its records, so a killed run resumes at its
last committed chunk and the watermark never passes a row that is neither delivered nor recorded.

Each stream has a cursor per source table: orders have ``orders`` and ``orders.lines`` (a line-only change
makes its order eligible), SKUs have ``skus`` and ``skus.regional``. Before a stream's first record its
new or changed definitions go out with a carrier record (:mod:`flows.carriers`); after the cursors,
records whose last send failed, was rejected with a retryable error or was deferred are re-read by key and
sent again (:mod:`flows.repair`): the ledger never hides a failure. Permanent rejections wait until their
data changes.

Where each concern lives: this module is the coordinator (locks, the order of the steps of a stream). The
engine below it is a stack of layers (:mod:`flows.run_state`): :mod:`flows.planner` (cursors, bounds,
the read loop, lag) over :mod:`flows.pipeline` (map -> decide -> push -> commit, in chunk order) over
repair, dispatch, carriers, decisions and dependencies.
"""

from __future__ import annotations

from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.errors import SyncError
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore, abandon
from flows.planner import WORKERS_AFTER_FULL_PAGES, CursorPlanner, show_cursor
from flows.run_state import Log
from flows.seen import SeenIds
from flows.stats import Progress, StreamStats

__all__ = ["WORKERS_AFTER_FULL_PAGES", "Progress", "StreamStats", "Syncer"]


class Syncer(CursorPlanner):
    """Runs streams for one run (the top of the layer stack). ``client`` may be ``None`` only for dry
    runs. ``close()`` (or ``with``) stops its threads and map workers."""

    def __init__(self, config: Config, source: ShopSource, state: StateStore, client: AltcraftClient | None, *,
                 run_id: str, dry_run: bool = False, skip_triggers: bool = False, on_progress: Progress | None = None,
                 log: Log | None = None, resend: bool = False, lock_wait_seconds: float = 0) -> None:
        super().__init__(config, source, state, client, run_id=run_id, dry_run=dry_run, skip_triggers=skip_triggers,
                         on_progress=on_progress, log=log, resend=resend, lock_wait_seconds=lock_wait_seconds)

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- entry points --------------------------------------------------------------------------------
    def sync_stream(self, stream: str, *, window: tuple[Any, Any] | None = None) -> StreamStats:
        """Sync one stream incrementally from its watermark, or, with ``window=(since, until)`` (aware
        datetimes), re-send that range without touching the watermark (backfills)."""
        stats = StreamStats(stream)
        if not self.dry_run:
            self.state.acquire_lock(stream, self.owner, wait_seconds=self.lock_wait_seconds)
        self._delivered_refs.pop(stream, None)  # what earlier streams delivered since it was loaded counts
        try:
            if not self.dry_run:
                self._send_definitions(stream, stats)
            db_now = self.source.db_now()
            full_pass = not self._has_ts(stream)
            if full_pass:
                self._seen[registry.get(stream).entity] = SeenIds()
            for cursor_name in self._cursors(stream):
                self._sync_cursor(stream, cursor_name, window, db_now, stats)
            if window is None and not self.dry_run:
                self._retry_pending(stream, stats)
                self.drain()
                self._heal_quarantine(stream, stats)
            if full_pass and window is None:  # everything was read: what was not seen left the source
                self._remove_vanished(stream, self._seen[registry.get(stream).entity].missing, stats, unsettled=False)
            self._lag(stream, stats)
        finally:
            seen = self._seen.pop(registry.get(stream).entity, None)
            if seen is not None:
                seen.close()
            self._abandon()
            self.mapper.shutdown()
            if not self.dry_run:
                self._release(stream)
        return stats

    def retry(self, stream: str) -> StreamStats:
        """Re-send only what the ledger holds as failed or retryably rejected (``altcraft-sync retry``)."""
        stats = StreamStats(stream)
        self.state.acquire_lock(stream, self.owner)
        self._delivered_refs.pop(stream, None)
        try:
            self._send_definitions(stream, stats)
            self._retry_pending(stream, stats)
            self.drain()
        finally:
            self._abandon()
            self._release(stream)
        return stats

    # --- steps -----------------------------------------------------------------------------------------
    def _sync_cursor(self, stream: str, cursor_name: str, window: tuple[Any, Any] | None, db_now: Any,
                     stats: StreamStats) -> None:
        """Read one cursor's range through the pipeline and record where it stands (a dry run commits
        nothing: its watermark stays where it was)."""
        wm, start, upper = self._bounds(stream, cursor_name, window, db_now)
        stats.watermark_before[cursor_name] = show_cursor(wm)
        self._positions[cursor_name] = wm
        if cursor_name == stream:
            self._parent_range = (start, upper)
        keep = window is None and self._has_ts(cursor_name)  # a full read has no watermark
        last = self._run_cursor(stream, cursor_name, start, upper, wm, stats, commit_watermark=keep)
        self.drain()
        read_in_full = not self._has_ts(cursor_name)  # no position to keep
        stats.watermark_after[cursor_name] = (stats.watermark_before[cursor_name] if self.dry_run or read_in_full
                                              else show_cursor(last))
        if keep and not self.dry_run:
            stats.stale = stats.stale or self.source.has_rows_between(cursor_name, last, upper)

    def _release(self, stream: str) -> None:
        """Release the stream's lock without hiding the error that ended the stream: if the state database
        cannot take even this, the owner is marked ended in this process and the next run takes over."""
        try:
            self.state.release_lock(stream, self.owner)
        except SyncError as err:
            self.log.error("%s: could not release the stream lock: %s", stream, err)
            abandon(self.owner)
