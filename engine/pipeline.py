"""The ordered pipeline every chunk goes through: map (maybe in a worker) -> decide -> push -> commit.

Commits stay strictly in chunk order: at most ``mapper.depth`` chunks are mapping, one is being sent (the
push thread) and one committed (the commit thread) while the run thread reads the next. A chunk is
committed only after Altcraft answered for each of its records, so a killed run resumes at its last
committed chunk and the watermark never passes a row that is neither delivered nor recorded. The pipeline
commits through :class:`engine.commit.Committer`, the one writer of watermarks."""

from __future__ import annotations

import contextvars
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.cursor import Cursor
from engine.commit import Committer
from engine.context import RunContext
from engine.decide import Decider, Prepared
from engine.dispatch import Dispatcher
from engine.mapping import ChunkMapper, MapResult
from engine.stats import StreamStats
from transforms.values import ids, pylist


class Pipeline:
    """Two single-thread executors (push, commit) and the map workers; ``close`` shuts them down."""

    def __init__(self, ctx: RunContext, decider: Decider, dispatcher: Dispatcher, committer: Committer) -> None:
        self.ctx, self.decider, self.dispatcher, self.committer = ctx, decider, dispatcher, committer
        self._push_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        self._commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._pending: Future[None] | None = None
        self._committing: Future[None] | None = None
        self.mapper = ChunkMapper(ctx.config, 0 if ctx.dry_run else ctx.config.sync.map_workers, ctx.source)
        self._mapping: deque[tuple[Future[MapResult], str, StreamStats, Cursor | None, str]] = deque()

    def close(self) -> None:
        """Finish nothing more: stop the map workers and the push and commit threads."""
        self.abandon()
        self.mapper.shutdown()
        self._push_thread.shutdown(wait=True)
        self._commit_thread.shutdown(wait=True)

    def process_commit(self, stream: str, parents: pd.DataFrame, stats: StreamStats, cursor: Cursor | None,
                        cursor_name: str) -> None:
        """Hand this chunk to the mapper, which fetches its children and maps it; once mapped (in order),
        push it on the push thread and commit it on the commit thread. Commits stay strictly in chunk order:
        at most ``mapper.depth`` chunks are mapping, one is being sent and one committed while the next one
        is read."""
        if parents.empty:
            self._finish_mapping()
            if cursor is not None and not self.ctx.dry_run:
                self._in_order(lambda: self._commit_in_order(
                    lambda: self.committer.commit(stream, cursor=(cursor_name, cursor))))
            return
        stats.add(extracted=len(parents))
        known = None
        if "external_id" in parents:
            t = time.perf_counter()
            known = self.decider.ledger.skippable(stream, pylist(ids(parents["external_id"])))
            stats.timed("ledger", t)
        future = self.mapper.submit(self.ctx.mapping_spec(stream), parents, self.ctx.child_entity(stream), known=known)
        self._mapping.append((future, stream, stats, cursor, cursor_name))
        while len(self._mapping) > self.mapper.depth:
            self._finish_one()

    def _finish_one(self) -> None:
        future, stream, stats, cursor, cursor_name = self._mapping.popleft()
        t = time.perf_counter()
        result = future.result()
        stats.timed("map_wait", t)
        stats.seconds["map"] = stats.seconds.get("map", 0.0) + result.map_seconds
        stats.seconds["read_children"] = stats.seconds.get("read_children", 0.0) + result.read_seconds
        stats.add(mapped_in_workers=int(result.pid != os.getpid()))
        prepared = self.decider.process(stream, result.mapped, stats, digests=result.digests, skipped=result.skipped)
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
        self._pending = self._push_thread.submit(ctx.run, work)

    def _commit_in_order(self, commit: Callable[[], None]) -> None:
        """On the push thread: hand a pushed chunk's commit to the commit thread once the previous chunk's
        commit finished (its error surfaces here). Commits stay in chunk order, one at a time; the push of
        chunk N+1 overlaps the commit of chunk N, so Altcraft is not kept idle while the state commits.
        A crash between the two leaves both chunks uncommitted: the next run re-reads and re-sends them,
        as after any crash between a push and its commit."""
        self._wait_commits()
        ctx = contextvars.copy_context()
        self._committing = self._commit_thread.submit(ctx.run, commit)

    def abandon(self) -> None:
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
        ctx = self.ctx
        entries = list(prepared.entries)
        if prepared.deletions:
            entries += self.dispatcher.delete(stream, prepared.deletions, stats)
        batch = None
        if prepared.send:
            t = time.perf_counter()
            if not ctx.dry_run:
                batch = uuid.uuid4().hex
                ctx.state.begin_send(batch, registry.get(stream).entity, [(p.external_id, p.source_pk) for p in prepared.send])
            if prepared.stand_ins:  # what the orders name that will never arrive, before them
                entries += self.dispatcher.push_stand_ins(prepared.stand_ins, stats)
            entries += self.dispatcher.push(stream, prepared.send, stats, prepared.quiet)
            stats.timed("push", t)
        stats.add(chunks=1)
        # the commit needs the outcomes, not the payloads: let the chunk's encoded records go while it waits
        prepared.send.clear()

        def commit() -> None:
            t = time.perf_counter()
            self.committer.commit(stream, entries=entries, quarantined=prepared.quarantined, cleared=prepared.cleared,
                                  cursor=(cursor_name, cursor), settle=[batch] if batch else [],
                                  digests=prepared.digests, redigested=prepared.redigested,
                                  seen_invalid=prepared.seen_invalid)
            stats.timed("commit", t)
            ctx.on_progress(stats)

        t = time.perf_counter()
        self._commit_in_order(commit)
        stats.timed("commit_wait", t)
