"""A run of altcraft-sync, whoever hosts it: the steps of ``nightly-sync``, ``retry`` and a backfill, the
run's record in the state database, its failure threshold and its one-line outcome.

Two hosts carry a run out. :class:`LocalHost` runs the steps in this process with nothing else: a terminal
run with no Prefect API configured, which would otherwise start a temporary Prefect server first (seconds
and hundreds of MB, for what is often a one-second no-change run; see the README). The Prefect host
(:mod:`flows.sync`) runs each stream as a task and publishes artifacts. Both record the run in the state
database the same way, so ``status`` and ``quarantine`` see every run. Nothing here imports Prefect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from altcraft_sync import streams as registry
from altcraft_sync.errors import StaleWatermark, SyncError, ThresholdExceeded, one_line
from connectors.state import abandon, lock_owner
from engine.context import Log
from engine.coordinator import StreamStats, Syncer
from runner.reporting import stream_line
from runner.runtime import Runtime, open_runtime

_listeners: list[Callable[[StreamStats, bool], None]] = []


def add_progress_listener(fn: Callable[[StreamStats, bool], None]) -> Callable[[], None]:
    """In-process progress hook (the CLI draws progress bars with it); returns a remover."""
    _listeners.append(fn)
    return lambda: _listeners.remove(fn)


def _notify(stats: StreamStats, done: bool) -> None:
    for fn in list(_listeners):
        fn(stats, done)


class ProgressDisplay(Protocol):
    """Where a host shows a run's progress (a Prefect progress artifact, or nothing)."""

    def start(self, n_streams: int) -> None: ...

    def update(self, stats: StreamStats, stream_done: bool = False) -> None: ...


class Host(Protocol):
    """What a run needs from where it runs."""

    run_id: str
    log: Log

    def step(self, name: str, tags: list[str], fn: Callable[[Log], StreamStats]) -> StreamStats:
        """Run one stream step (a stream, a backfill window, a reconcile) with the step's logger and return
        its figures."""
        ...

    def progress(self) -> ProgressDisplay: ...

    def publish(self, kind: str, title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool) -> None:
        """Show the run's figures where this host shows them (Prefect: table and summary artifacts)."""
        ...


class _NoProgress:
    def start(self, n_streams: int) -> None:
        pass

    def update(self, stats: StreamStats, stream_done: bool = False) -> None:
        pass


class LocalHost:
    """The run in this process: steps are plain calls, the log is ``altcraft_sync.run``, and the figures
    go to the state database (the CLI prints them); no server, no artifacts."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or f"local-{uuid.uuid4()}"
        self.log: Log = logging.getLogger("altcraft_sync.run")

    def step(self, name: str, tags: list[str], fn: Callable[[Log], StreamStats]) -> StreamStats:
        return fn(self.log)

    def progress(self) -> ProgressDisplay:
        return _NoProgress()

    def publish(self, kind: str, title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool) -> None:
        pass


@dataclass
class RunOutcome:
    """How a run ended: ``ok`` with its figures, or not, with the one line that says why."""

    ok: bool
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


def run_stream_step(syncer: Syncer, log: Log, stream: str, window: Any = None, *, reconcile: bool = False) -> StreamStats:
    """One stream (or backfill window, or reconcile) with its closing log line, logged to ``log``."""
    syncer.log = log
    if reconcile:
        stats = syncer.reconcile(stream)
        syncer.log.info("%s: %d source keys, %d vanished records deleted", stream, stats.extracted, stats.deleted)
        return stats
    stats = syncer.sync_stream(stream, window=window)
    syncer.log.info("%s", stream_line(stats, syncer.dry_run))
    return stats


def chosen_streams(runtime: Runtime, streams: list[str] | None) -> list[str]:
    """The configured streams a run takes, in dependency order; an unknown ``--stream`` is a one-line error."""
    enabled = runtime.config.enabled_streams()
    unknown = set(streams or []) - set(enabled)
    if unknown:
        raise SyncError(f"--stream {', '.join(sorted(unknown))}: not configured (configured: {', '.join(enabled)})")
    return [s for s in registry.names() if s in enabled and (not streams or s in streams)]


def run_streams(runtime: Runtime, host: Host, *, kind: str, streams: list[str] | None, dry_run: bool,
                skip_triggers: bool, title: str, reconcile: bool = False) -> dict[str, StreamStats]:
    """Run the chosen streams incrementally, in dependency order."""
    chosen = chosen_streams(runtime, streams)
    syncer = Syncer(runtime.config, runtime.source, runtime.state, runtime.client, run_id=host.run_id,
                    dry_run=dry_run, skip_triggers=skip_triggers, log=host.log)

    def body() -> dict[str, StreamStats]:
        results: dict[str, StreamStats] = {}
        for stream in chosen:
            stats = host.step(f"sync {stream}", [f"stream:{stream}", kind],
                              partial(run_stream_step, syncer, stream=stream))
            if reconcile:
                gone = host.step(f"reconcile {stream}", [f"stream:{stream}", kind],
                                 partial(run_stream_step, syncer, stream=stream, reconcile=True))
                stats.deleted += gone.deleted
                stats.warnings += gone.warnings
            results[stream] = stats
            if stats.stale:
                raise StaleWatermark(
                    f"stream {stream}: the watermark did not advance although the source has rows after it "
                    f"({stats.watermark_after}); check the updated_at column and the source query")
        return results

    try:
        return publish(runtime, host, kind=kind, title=title, dry_run=dry_run, body=body, syncer=syncer, streams=chosen)
    finally:
        syncer.close()


def retry_streams(runtime: Runtime, host: Host, streams: list[str] | None) -> dict[str, StreamStats]:
    """Re-send what the ledger holds as failed, retryably rejected or deferred, without waiting for a run."""
    with Syncer(runtime.config, runtime.source, runtime.state, runtime.client, run_id=host.run_id, log=host.log) as syncer:
        return {s: syncer.retry(s) for s in chosen_streams(runtime, streams)}


def publish(runtime: Runtime, host: Host, *, kind: str, title: str, dry_run: bool,
            body: Callable[[], dict[str, StreamStats]], syncer: Syncer | None = None,
            streams: Sequence[str]) -> dict[str, StreamStats]:
    """Run ``body`` as a recorded run: progress while it runs, then the run history, the failure threshold,
    and the host's view of the figures, whatever the outcome."""
    cfg, run_id, log = runtime.config, host.run_id, host.log
    for w in runtime.warnings:
        log.warning(w)
    progress = host.progress()
    progress.start(len(streams))  # only the streams this run takes: a one-stream run ends at 100%
    results: dict[str, StreamStats] = {}
    done: set[str] = set()

    def on_progress(stats: StreamStats) -> None:
        results.setdefault(stats.stream, stats)
        progress.update(stats)
        _notify(stats, False)

    if syncer is not None:
        syncer.on_progress = on_progress
    if not dry_run:
        runtime.state.start_run(run_id, kind)
    outcome = "Completed"
    try:
        results.update(body())
        for name, stats in results.items():
            if name not in done:
                done.add(name)
                progress.update(stats, stream_done=True)
                _notify(stats, True)
                if not dry_run:
                    runtime.state.record_stream(run_id, name, stats.figures())
        _check_threshold(results, cfg.sync.failure_threshold, dry_run)
    except BaseException as err:  # whatever ends the run, its row ends failed with one line
        outcome = f"Failed: {one_line(err, run_id)}"
        raise
    finally:
        if not dry_run:
            _close_run(runtime, run_id, outcome, log)
        if results:
            host.publish(kind, title, results, outcome, dry_run)
    return results


def _check_threshold(results: dict[str, StreamStats], threshold: float, dry_run: bool) -> None:
    bad = sum(s.rejected + s.invalid for s in results.values())
    # a dry run delivers nothing: count what it would have sent (new + changed) instead
    seen = sum((s.new + s.changed if dry_run else s.delivered + s.failed) + s.rejected + s.invalid + s.unchanged
               for s in results.values())
    if seen and bad / seen > threshold:
        raise ThresholdExceeded(
            f"{bad} of {seen} records ({bad / seen:.1%}) were rejected or invalid, above sync.failure_threshold "
            f"{threshold:.0%}: see the quarantine and rejected samples"
        )


def _close_run(runtime: Runtime, run_id: str, outcome: str, log: Log) -> None:
    """Record how the run ended. If even that fails (the state database is gone), say so in one line and
    mark the run's owner as ended in this process: its lock and run row are taken over by the next run."""
    ok = outcome == "Completed"
    try:
        runtime.state.finish_run(run_id, "completed" if ok else "failed", None if ok else outcome)
    except SyncError as err:
        log.error("could not record the end of run %s: %s", run_id, err)
        abandon(lock_owner(run_id))


def guarded(body: Callable[[Runtime], dict[str, StreamStats]], config_path: str, host: Host, *,
            need_client: bool) -> RunOutcome:
    """Open the runtime and run ``body``; any error becomes a failed outcome with its one line (the
    watermarks stay where the last committed chunk left them), its traceback in the debug log."""
    try:
        runtime = open_runtime(config_path, need_client=need_client)
    except Exception as err:
        return _failed(host, err)
    try:
        results = body(runtime)
    except Exception as err:
        return _failed(host, err)
    finally:
        runtime.close()
    return RunOutcome(True, one_line_figures(results), {k: v.figures() for k, v in results.items()})


def _failed(host: Host, err: Exception) -> RunOutcome:
    message = one_line(err, host.run_id or None)
    host.log.error("%s", message)
    if not isinstance(err, SyncError):
        logging.getLogger("altcraft_sync").debug("traceback of run %s", host.run_id, exc_info=err)
    return RunOutcome(False, message)


def one_line_figures(results: dict[str, StreamStats]) -> str:
    return "; ".join(f"{k}: {v.delivered} delivered, {v.unchanged} unchanged, {v.invalid} invalid, {v.rejected} rejected"
                     for k, v in results.items()) or "nothing to do"
