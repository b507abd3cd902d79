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

Where each concern lives: this module holds the run's state (locks, cursors, the read -> map -> push ->
commit pipeline and its two threads); the parts above are mixins of :class:`Syncer` that share it.
"""

from __future__ import annotations

import contextvars
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.errors import SyncError
from connectors.altcraft import AltcraftClient
from connectors.shop_db import Cursor, ShopSource, to_utc
from connectors.state import StateStore, abandon
from flows.decide import Prepared
from flows.mapping import ChunkMapper, MapResult
from flows.repair import RepairMixin
from flows.run_state import Log
from flows.stats import Progress, StreamStats

__all__ = ["Progress", "StreamStats", "Syncer"]

WORKERS_AFTER_FULL_PAGES = 3
"""Map workers start once a cursor has read this many full pages. A run of a page or two (a nightly
incremental) would spend more on starting a worker (2-3 s of CPU, measured) than it saves: at 1M orders
the 1%-changed run took 7.0 s with a worker against 4.5 s without."""


class Syncer(RepairMixin):
    """Runs streams for one run (the top of the layer stack, :mod:`flows.run_state`). ``client`` may be
    ``None`` only for dry runs."""

    def __init__(
        self,
        config: Config,
        source: ShopSource,
        state: StateStore,
        client: AltcraftClient | None,
        *,
        run_id: str,
        dry_run: bool = False,
        skip_triggers: bool = False,
        on_progress: Progress | None = None,
        log: Log | None = None,
        resend: bool = False,
        lock_wait_seconds: float = 0,
    ) -> None:
        super().__init__(config, source, state, client, run_id=run_id, dry_run=dry_run, skip_triggers=skip_triggers,
                         on_progress=on_progress, log=log, resend=resend, lock_wait_seconds=lock_wait_seconds)
        self._pipeline = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._pending: Future[None] | None = None
        self._committing: Future[None] | None = None
        self._parent_range: tuple[Cursor | None, Any] = (None, None)
        self.mapper = ChunkMapper(config, 0 if dry_run else config.sync.map_workers, source)
        self._mapping: deque[tuple[Future[MapResult], str, StreamStats, Cursor | None, str]] = deque()

    # --- entry points --------------------------------------------------------------------------------
    def sync_stream(self, stream: str, *, window: tuple[Any, Any] | None = None) -> StreamStats:
        """Sync one stream incrementally from its watermark, or, with ``window=(since, until)`` (aware
        datetimes), re-send that range without touching the watermark (backfills)."""
        stats = StreamStats(stream)
        owner = self.owner
        if not self.dry_run:
            self.state.acquire_lock(stream, owner, wait_seconds=self.lock_wait_seconds)
        self._delivered_refs.pop(stream, None)  # what earlier streams delivered since it was loaded counts
        try:
            if not self.dry_run:
                self._send_definitions(stream, stats)
            db_now = self.source.db_now()
            margin = self.config.source.safety_margin_seconds
            for cursor_name in self._cursors(stream):
                if window is None:
                    wm = self.state.get_watermark(stream, cursor_name)
                    start = self.source.lookback_start(cursor_name, wm, self.config.source.lookback_seconds) if wm else None
                    upper = self.source.upper_bound(cursor_name, margin, now=db_now)
                else:
                    wm = None
                    start = Cursor(self.source.to_native(cursor_name, window[0]), None)
                    upper = self.source.to_native(cursor_name, min(window[1], db_now - pd.Timedelta(seconds=margin)))
                stats.watermark_before[cursor_name] = _show(wm)
                self._positions[cursor_name] = wm
                if cursor_name == stream:
                    self._parent_range = (start, upper)
                last = self._run_cursor(stream, cursor_name, start, upper, wm, stats, commit_watermark=window is None)
                self.drain()
                # a dry run commits nothing: its watermark stays where it was
                stats.watermark_after[cursor_name] = stats.watermark_before[cursor_name] if self.dry_run else _show(last)
                if window is None and not self.dry_run:
                    stats.stale = stats.stale or self.source.has_rows_between(cursor_name, last, upper)
            if window is None and not self.dry_run:
                self._retry_pending(stream, stats)
                self.drain()
                self._heal_quarantine(stream, stats)
            self._lag(stream, stats)
        finally:
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


    def _moved(self, cursor_name: str, cursor: Cursor | None) -> dict[str, Cursor] | None:
        """The cursor to commit, or None when it is where the state already has it (a lookback re-read of
        unchanged rows): a watermark is rewritten only when it moves. Called on the commit thread, in
        chunk order."""
        if cursor is None or self._positions.get(cursor_name) == cursor:
            return None
        self._positions[cursor_name] = cursor
        return {cursor_name: cursor}

    def _release(self, stream: str) -> None:
        """Release the stream's lock without hiding the error that ended the stream: if the state database
        cannot take even this, the owner is marked ended in this process and the next run takes over."""
        try:
            self.state.release_lock(stream, self.owner)
        except SyncError as err:
            self.log.error("%s: could not release the stream lock: %s", stream, err)
            abandon(self.owner)

    # --- cursors -------------------------------------------------------------------------------------
    def _cursors(self, stream: str) -> list[str]:
        """The stream's own cursor, then its child table's (when the config maps one)."""
        child = self._child_entity(stream)
        return [stream] if child is None else [stream, child]

    def _run_cursor(self, stream: str, name: str, start: Cursor | None, upper: Any, wm: Cursor | None,
                    stats: StreamStats, *, commit_watermark: bool) -> Cursor | None:
        chunk_size = self.config.source.chunk_size
        is_child = name != stream
        last = wm
        if registry.get(stream).whole_table:
            # Categories must go parents first across the whole change set, not per chunk: read all of
            # them (a category table is small) and send one ordered batch.
            frames, newest = [], None
            for frame, cur in self.source.read_changes(name, start, upper, chunk_size):
                frames.append(frame)
                newest = cur
            if frames:
                whole = pd.concat(frames, ignore_index=True)
                self._process_commit(stream, whole, stats, _max(last, newest) if commit_watermark else None, name)
                last = _max(last, newest)
            self.drain()
            return last
        t = time.perf_counter()
        parent_start, parent_upper = self._parent_range
        skip = (stream, parent_start, parent_upper) if is_child else None
        full_pages = 0
        for frame, cur in self.source.read_changes(name, start, upper, chunk_size, keys_only=is_child, skip_parents_in=skip):
            full_pages += len(frame) >= chunk_size
            if full_pages >= WORKERS_AFTER_FULL_PAGES:
                self.mapper.start()  # a big change set: worth mapping in parallel from here on
            if is_child:
                keys = list(dict.fromkeys(frame["_parent"].tolist()))
                parents = self.source.fetch_by_keys(stream, keys)
            else:
                parents = frame
            stats.timed("read", t)
            last = _max(last, cur)
            self._process_commit(stream, parents, stats, last if commit_watermark else None, name)
            t = time.perf_counter()
        self.drain()
        if is_child:
            # Child rows up to ``upper`` were either read above or left out because their parent was read
            # by the parent cursor in this run: the child cursor may move to the newest of them.
            newest = self.source.last_cursor(name, upper)
            if newest is not None and (last is None or (newest.ts, newest.pk) > (last.ts, last.pk)):
                last = newest
                if commit_watermark and not self.dry_run:
                    self.state.commit_chunk(stream=stream, cursors={name: last}, lock_owner=self.owner)
        stats.timed("read", t)
        return last

    def _process_commit(self, stream: str, parents: pd.DataFrame, stats: StreamStats, cursor: Cursor | None,
                        cursor_name: str) -> None:
        """Hand this chunk to the mapper, which fetches its children and maps it; once mapped (in order),
        push it on the push thread and commit it on the commit thread. Commits stay strictly in chunk order:
        at most ``mapper.depth`` chunks are mapping, one is being sent and one committed while the next one
        is read."""
        if parents.empty:
            self._finish_mapping()
            if cursor is not None and not self.dry_run:
                self._in_order(lambda: self._commit_in_order(lambda: self.state.commit_chunk(
                    stream=stream, cursors=self._moved(cursor_name, cursor), lock_owner=self.owner)))
            return
        stats.add(extracted=len(parents))
        future = self.mapper.submit(stream, parents, self._child_entity(stream))
        self._mapping.append((future, stream, stats, cursor, cursor_name))
        while len(self._mapping) > self.mapper.depth:
            self._finish_one()

    def _finish_one(self) -> None:
        future, stream, stats, cursor, cursor_name = self._mapping.popleft()
        t = time.perf_counter()
        mapped, map_seconds, read_seconds, pid = future.result()
        stats.timed("map_wait", t)
        stats.seconds["map"] = stats.seconds.get("map", 0.0) + map_seconds
        stats.seconds["read_children"] = stats.seconds.get("read_children", 0.0) + read_seconds
        stats.add(mapped_in_workers=int(pid != os.getpid()))
        prepared = self._process(stream, mapped, stats)
        t = time.perf_counter()
        self._in_order(lambda: self._push_commit(stream, prepared, stats, cursor, cursor_name))
        stats.timed("send_wait", t)

    def _finish_mapping(self) -> None:
        while self._mapping:
            self._finish_one()

    def _in_order(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the single push thread once the previous piece finished (its error, if any,
        surfaces here). Network and state I/O of chunk N overlap reading and mapping of chunk N+1."""
        self._wait_pipeline()
        ctx = contextvars.copy_context()  # Prefect's run context, for progress artifacts
        self._pending = self._pipeline.submit(ctx.run, work)

    def _commit_in_order(self, commit: Callable[[], None]) -> None:
        """On the push thread: hand a pushed chunk's commit to the commit thread once the previous chunk's
        commit finished (its error surfaces here). Commits stay in chunk order, one at a time; the push of
        chunk N+1 overlaps the commit of chunk N, which kept Altcraft idle for a fifth of a full sync.
        A crash between the two leaves both chunks uncommitted: the next run re-reads and re-sends them,
        as after any crash between a push and its commit."""
        self._wait_commits()
        ctx = contextvars.copy_context()
        self._committing = self._committer.submit(ctx.run, commit)

    def _abandon(self) -> None:
        """After an error: drop the chunks still mapping (nothing of them was sent or committed) and wait
        for the chunk in flight without raising its error a second time."""
        while self._mapping:
            self._mapping.popleft()[0].cancel()
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()
        committing, self._committing = self._committing, None  # after the push: it may hand over a commit
        if committing is not None:
            committing.exception()

    def drain(self) -> None:
        """Finish every chunk handed over so far: mapped, sent and committed, in order."""
        self._finish_mapping()
        self._wait_pipeline()
        self._wait_commits()

    def _wait_pipeline(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _wait_commits(self) -> None:
        committing, self._committing = self._committing, None
        if committing is not None:
            committing.result()

    def _push_commit(self, stream: str, prepared: Prepared, stats: StreamStats, cursor: Cursor | None,
                     cursor_name: str) -> None:
        entries = list(prepared.entries)
        if prepared.deletions:
            entries += self._delete(stream, registry.get(stream).entity, prepared.deletions, stats)
        batch = None
        if prepared.send:
            t = time.perf_counter()
            if not self.dry_run:
                batch = uuid.uuid4().hex
                self.state.begin_send(batch, registry.get(stream).entity, [(p.external_id, p.source_pk) for p in prepared.send])
            entries += self._push(stream, registry.get(stream).entity, prepared.send, stats)
            stats.timed("push", t)
        stats.add(chunks=1)

        def commit() -> None:
            t = time.perf_counter()
            if not self.dry_run:
                self.state.commit_chunk(stream=stream, cursors=self._moved(cursor_name, cursor),
                                        entries=entries, quarantined=prepared.quarantined, cleared=prepared.cleared,
                                        run_id=self.run_id, lock_owner=self.owner)
                if batch:
                    self.state.settle([batch])
            stats.timed("commit", t)
            self.on_progress(stats)

        t = time.perf_counter()
        self._commit_in_order(commit)
        stats.timed("commit_wait", t)

    # --- one chunk -----------------------------------------------------------------------------------
    # --- what must travel with a real record (flows.roots) --------------------------------------------


    # --- retries -------------------------------------------------------------------------------------

    # --- figures -------------------------------------------------------------------------------------
    def _lag(self, stream: str, stats: StreamStats) -> None:
        """Lag between the source's newest ``updated_at`` and the stream's watermark."""
        newest = self.source.max_cursor_ts(stream)
        wm = self.state.get_watermark(stream, stream) if not self.dry_run else None
        n, w = to_utc(newest, self.source.tz), (wm.as_datetime(self.source.tz) if wm else None)
        if n is not None and w is not None:
            stats.lag_seconds = max(0.0, (n - w).total_seconds())
            stats.source_has_newer = n > w
        elif n is not None:
            stats.source_has_newer = True


def _max(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if (b.ts, b.pk) > (a.ts, a.pk) else a


def _show(c: Cursor | None) -> str | None:
    if c is None:
        return None
    ts = c.ts.isoformat() if hasattr(c.ts, "isoformat") else str(c.ts)
    return f"{ts} / {c.pk}"
