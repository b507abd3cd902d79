"""Where each cursor starts and stops, reading its range page by page into the pipeline, and the lag.

A stream has a cursor per source table (orders: ``orders`` and ``orders.lines``; a line-only change makes
its order eligible). An incremental run reads each from its watermark minus the lookback up to a bound
frozen at the start (the database clock minus the safety margin); a backfill window reads ``(since,
until]`` without touching the watermark. The planner feeds the pipeline (:mod:`engine.pipeline`), which
commits each chunk and moves the watermark."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.cursor import Cursor, CursorTs, ParentRange, show_cursor, to_utc
from engine.commit import Committer
from engine.context import RunContext
from engine.pipeline import Pipeline
from engine.stats import StreamStats

Window = tuple[datetime, datetime]
"""A backfill's ``(since, until]`` as aware datetimes."""

WORKERS_AFTER_FULL_PAGES = 3
"""Map workers start once a cursor has read this many full pages: a run of a page or two (a nightly
incremental) would spend more on starting a worker process than it saves (figures: bench/README)."""


@dataclass(frozen=True)
class CursorPlan:
    """One cursor of one stream in this run, built once by :meth:`Planner.plan`: where it stands, where
    it starts and the bound it reads up to (frozen at the start of the stream)."""

    stream: str
    name: str
    """The cursor: the stream's own table, or its child table (``orders.lines``)."""
    watermark: Cursor | None
    """Its committed position before this run (None for a window or a first run)."""
    start: Cursor | None
    """Read rows after this (the watermark minus the lookback, or the window's start); None: from the first."""
    upper: CursorTs | None
    """Read rows up to this ``updated_at`` (the clock minus the safety margin, or the window's end)."""
    keeps_watermark: bool
    """Whether reading it moves the watermark (an incremental run of a cursor with ``updated_at``)."""
    read_in_full: bool
    """No ``updated_at``: read whole every run, by key; no position to keep."""
    settles_at: CursorTs | None = None
    """Set for a parent cursor's first sync (no watermark, no window) read in key order
    (``source.first_sync_order: key``), from ``start``'s key: the bound the read began under (an earlier
    run's, for one that resumes). Each page moves the cursor's key position (:func:`key_position`); once
    the last page is committed, the watermark is set at the newest row at or before this bound, since the
    keys read before were read as of it."""

    @property
    def by_key(self) -> bool:
        """Whether this is a key-ordered first sync (it has a bound to settle at)."""
        return self.settles_at is not None

    @property
    def is_child(self) -> bool:
        return self.name != self.stream

    @property
    def reads_every_child(self) -> bool:
        """Whether this parent read leaves its child cursor nothing to read: a first sync that reads every
        parent row at or before its bound, in key order from the first key, reads every child row of those
        parents with them. The child rows the child cursor would find are those of parents newer than that
        bound (changed while the run read; a NULL ``updated_at`` is not newer, and a child without its
        parent is never sent): the watermark the first sync sets lies before those parents, so the next
        run's parent cursor reads them, with all their child rows. Asking the database would be a pass over
        every child row (0.56 CPU-s of SQLite's for the 600k lines of a 200k-order shop) that finds only
        those. A first sync that resumed after an earlier run's key position does not: the parents that run
        read may have child rows that changed since."""
        return self.by_key and self.start is None


class Planner:
    """Cursors, bounds, the read loop of one cursor, and lag."""

    def __init__(self, ctx: RunContext, pipeline: Pipeline, committer: Committer) -> None:
        self.ctx, self.pipeline, self.committer = ctx, pipeline, committer
        self._parent: CursorPlan | None = None
        """The parent cursor's plan in this run: a child cursor skips rows whose parent it read."""

    def cursors(self, stream: str) -> list[str]:
        """The stream's own cursor, then its child table's (when the config maps one). A child without
        ``updated_at``, or of a parent read in full, has none: it is read only with its parent."""
        child = self.ctx.child_entity(stream)
        if child is None or not self.has_ts(stream) or not self.has_ts(child):
            return [stream]
        return [stream, child]

    def has_ts(self, entity: str) -> bool:
        """Whether the entity has an ``updated_at``; one without is read in full every run, by key."""
        return self.ctx.source.entities[entity].ts is not None

    def plan(self, stream: str, cursor_name: str, window: Window | None, db_now: datetime) -> CursorPlan:
        """The cursor's plan: from the watermark minus the lookback, or the window's start; up to the clock
        minus the safety margin, or the window's end if earlier."""
        ctx = self.ctx
        margin = ctx.config.source.safety_margin_seconds
        if not self.has_ts(cursor_name):  # read in full, by key; nothing to bound
            return CursorPlan(stream, cursor_name, None, None, None, keeps_watermark=False, read_in_full=True)
        if window is None:
            wm = ctx.state.get_watermark(stream, cursor_name)
            upper = ctx.source.upper_bound(cursor_name, margin, now=db_now)
            if (wm is None and cursor_name == stream and not registry.get(stream).whole_table
                    and ctx.config.source.first_sync_by_key):
                position = ctx.state.get_watermark(stream, key_position(cursor_name))  # a first sync that stopped
                return CursorPlan(stream, cursor_name, None, position, upper, keeps_watermark=True, read_in_full=False,
                                  settles_at=position.ts if position else upper)
            start = ctx.source.lookback_start(cursor_name, wm, ctx.config.source.lookback_seconds) if wm else None
            return CursorPlan(stream, cursor_name, wm, start, upper, keeps_watermark=True, read_in_full=False)
        start = Cursor(ctx.source.to_native(cursor_name, window[0]), None)
        upper = ctx.source.to_native(cursor_name, min(window[1], db_now - pd.Timedelta(seconds=margin)))
        return CursorPlan(stream, cursor_name, None, start, upper, keeps_watermark=False, read_in_full=False)

    def sync_cursor(self, plan: CursorPlan, stats: StreamStats) -> None:
        """Read one cursor's range through the pipeline and record where it stands (a dry run commits
        nothing: its watermark stays where it was)."""
        ctx = self.ctx
        shown_key = registry.get(plan.stream).shown_key
        stats.watermark_before[plan.name] = show_cursor(plan.watermark, shown_key)
        self.committer.start(plan.name, plan.watermark)
        if not plan.is_child:
            self._parent = plan
        last = self.run_cursor(plan, stats)
        self.pipeline.drain()
        stats.watermark_after[plan.name] = (stats.watermark_before[plan.name] if ctx.dry_run or plan.read_in_full
                                            else show_cursor(last, shown_key))
        if plan.keeps_watermark and not ctx.dry_run:
            bound = plan.settles_at if plan.by_key else plan.upper
            stats.stale = stats.stale or ctx.source.has_rows_between(plan.name, last, bound)

    def run_cursor(self, plan: CursorPlan, stats: StreamStats) -> Cursor | None:
        """Read one cursor from its start up to its bound page by page into the pipeline; the newest
        position read (or the watermark when nothing was)."""
        if registry.get(plan.stream).whole_table:
            return self.run_whole_table(plan, stats)
        ctx, pipeline = self.ctx, self.pipeline
        stream, name = plan.stream, plan.name
        chunk_size = ctx.config.source.chunk_size
        last = plan.watermark
        t = time.perf_counter()
        parent = self._parent
        full_pages = pages = 0
        if plan.is_child and parent is not None and parent.reads_every_child:
            pages_read: Iterator[tuple[pd.DataFrame, Cursor]] = iter(())
        else:
            # A resumed key-ordered parent read this run's keys only: the children of the keys an earlier
            # run read are not left out (a line may have changed since), and their orders are fetched again.
            skip = (ParentRange(stream, parent.start, parent.upper, parent.by_key)
                    if plan.is_child and parent is not None else None)
            pages_read = ctx.source.read_changes(name, plan.start, plan.upper, chunk_size, keys_only=plan.is_child,
                                                 skip_parents_in=skip, by_key=plan.by_key)
        for frame, cur in pages_read:
            full_pages += len(frame) >= chunk_size
            pages += 1
            if full_pages == 1 and not plan.is_child and stats.total is None and ctx.count_totals:
                # more to come, and a progress bar shows an ETA: worth a count
                stats.total = (ctx.source.count_between(name, None, plan.upper) if plan.by_key
                               else len(frame) + ctx.source.count_between(name, cur, plan.upper))
            if full_pages >= WORKERS_AFTER_FULL_PAGES:
                pipeline.mapper.start()  # a big change set: worth mapping in parallel from here on
            if plan.is_child:
                keys = list(dict.fromkeys(frame["_parent"].tolist()))
                parents = ctx.source.fetch_by_keys(stream, keys)
            else:
                parents = frame
            stats.timed("read", t)
            if plan.settles_at is not None:  # a key-ordered first sync: a page moves the key position only
                pipeline.process_commit(stream, parents, stats, Cursor(plan.settles_at, cur.pk), key_position(name))
            else:
                last = newest_cursor(last, cur)
                pipeline.process_commit(stream, parents, stats, last if plan.keeps_watermark else None, name)
            t = time.perf_counter()
        pipeline.drain()
        if plan.settles_at is not None and (pages or plan.start is not None):
            # Every key was read and every page committed: the cursor may stand at the newest row at or
            # before the bound the read began under, and the key position goes (one transaction).
            last = ctx.source.last_cursor(name, plan.settles_at)
            self.committer.commit(stream, cursor=(name, last) if last is not None else None,
                                  forgotten=[key_position(name)])
        if plan.is_child:
            # Child rows up to the bound were either read above or left out because their parent was read
            # by the parent cursor in this run: the child cursor may move to the newest of them.
            newest = ctx.source.last_cursor(name, plan.upper)
            if newest is not None and newest.after(last):
                last = newest
                if plan.keeps_watermark:
                    self.committer.commit(stream, cursor=(name, last))
        stats.timed("read", t)
        return last

    def run_whole_table(self, plan: CursorPlan, stats: StreamStats) -> Cursor | None:
        """Categories must go parents first across the whole change set, not per chunk: read all of them
        (a category table is small) and send one ordered batch."""
        ctx = self.ctx
        frames, newest = [], None
        for frame, cur in ctx.source.read_changes(plan.name, plan.start, plan.upper, ctx.config.source.chunk_size):
            frames.append(frame)
            newest = cur
        last = plan.watermark
        if frames:
            whole = pd.concat(frames, ignore_index=True)
            last = newest_cursor(last, newest)
            self.pipeline.process_commit(plan.stream, whole, stats, last if plan.keeps_watermark else None, plan.name)
        self.pipeline.drain()
        return last

    def lag(self, stream: str, stats: StreamStats) -> None:
        """Lag between the source's newest ``updated_at`` and the stream's watermark."""
        ctx = self.ctx
        newest = ctx.source.max_cursor_ts(stream)
        wm = ctx.state.get_watermark(stream, stream) if not ctx.dry_run else None
        n, w = to_utc(newest, ctx.source.tz), (wm.as_datetime(ctx.source.tz) if wm else None)
        if n is not None and w is not None:
            stats.lag_seconds = max(0.0, (n - w).total_seconds())
            stats.source_has_newer = n > w
        elif n is not None:
            stats.source_has_newer = True


KEY_POSITION = "@first-sync"


def key_position(cursor_name: str) -> str:
    """The state's name for how far a cursor's key-ordered first sync got: its ``(bound it began under,
    last committed key)``, kept beside the watermarks until the read is done, so a run that stops half
    way is resumed from that key by the next (``docs/sync-correctness.md``)."""
    return cursor_name + KEY_POSITION


def is_key_position(name: str) -> bool:
    """Whether a name in the watermarks table is a first sync's key position, not a cursor's watermark."""
    return name.endswith(KEY_POSITION)


def newest_cursor(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    if b is None:
        return a
    return b if b.after(a) else a

