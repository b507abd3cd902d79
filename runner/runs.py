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
from altcraft_sync.wording import plural
from connectors.state import abandon, lock_owner
from engine.context import Log
from engine.coordinator import StreamStats, Syncer
from runner.outcome import WARNINGS_PREFIX, Verdict, committed, judge, stream_failure
from runner.reporting import stream_line
from runner.runtime import Runtime, confirm_token, open_runtime

_listeners: list[Callable[[StreamStats, bool], None]] = []


def add_progress_listener(fn: Callable[[StreamStats, bool], None]) -> Callable[[], None]:
    """In-process progress hook (the CLI draws progress bars with it); returns a remover."""
    _listeners.append(fn)
    return lambda: _listeners.remove(fn)


def _notify(stats: StreamStats, done: bool) -> None:
    for fn in list(_listeners):
        fn(stats, done)


class ProgressDisplay(Protocol):
    """Where a host shows a run's progress (a Prefect progress artifact, progress bars, or nothing)."""

    shows_totals: bool
    """Whether it shows how much of a stream is left (an ETA): only then does a run count the rows ahead."""

    def start(self, n_streams: int) -> None: ...

    def update(self, stats: StreamStats, stream_done: bool = False) -> None: ...


class Host(Protocol):
    """What a run needs from where it runs."""

    run_id: str
    log: Log
    verdict: Verdict | None
    """How the run ended (set by :func:`publish`): its warnings and backlog line, for the host to show."""

    def step(self, name: str, fn: Callable[[Log], StreamStats],
             judge: Callable[[StreamStats], str | None] | None = None) -> StreamStats:
        """Run one stream step (a stream, a backfill window, a reconcile; ``name`` says which) with the step's
        logger and return its figures; ``judge`` says whether the stream's own records fail the run's bar
        (its step, a Prefect task, then ends Failed, its figures kept)."""
        ...

    def progress(self) -> ProgressDisplay: ...

    def publish(self, kind: str, title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool) -> None:
        """Show the run's figures where this host shows them (Prefect: table and summary artifacts)."""
        ...


class _NoProgress:
    shows_totals = False

    def start(self, n_streams: int) -> None:
        pass

    def update(self, stats: StreamStats, stream_done: bool = False) -> None:
        pass


class LocalHost:
    """The run in this process: steps are plain calls, the log is ``altcraft_sync.run``, and the figures
    go to the state database (the CLI prints them); no server, no artifacts."""

    def __init__(self, run_id: str | None = None, progress: ProgressDisplay | None = None) -> None:
        self.run_id = run_id or f"local-{uuid.uuid4()}"
        self._progress = progress or _NoProgress()
        """Where the run's progress goes (the CLI's progress bars on a terminal)."""
        self.log: Log = logging.getLogger("altcraft_sync.run")
        self.verdict: Verdict | None = None

    def step(self, name: str, fn: Callable[[Log], StreamStats],
             judge: Callable[[StreamStats], str | None] | None = None) -> StreamStats:
        return fn(self.log)

    def progress(self) -> ProgressDisplay:
        return self._progress

    def publish(self, kind: str, title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool) -> None:
        pass


@dataclass
class RunOutcome:
    """How a run ended: ``ok`` with its figures, or not, with the one line that says why."""

    ok: bool
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """A completed run's warnings (exit code 1): records of this run that did not go, the backlog alert."""
    backlog: str | None = None


def run_stream_step(syncer: Syncer, log: Log, stream: str, window: Any = None, *, reconcile: bool = False) -> StreamStats:
    """One stream (or backfill window, or reconcile) with its closing log line, logged to ``log``."""
    syncer.log = log
    if reconcile:
        stats = syncer.reconcile(stream)
        syncer.log.info("%s: %s, %s deleted", stream, plural(stats.extracted, "source key"),
                        plural(stats.deleted, "vanished record"))
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

    sync = runtime.config.sync

    def body() -> dict[str, StreamStats]:
        results: dict[str, StreamStats] = {}
        for stream in chosen:
            bar = partial(_stream_bar, stream, threshold=sync.failure_threshold, floor=sync.failure_floor, dry_run=dry_run)
            stats = host.step(f"sync {stream}", partial(run_stream_step, syncer, stream=stream), bar)
            if reconcile:
                gone = host.step(f"reconcile {stream}", partial(run_stream_step, syncer, stream=stream, reconcile=True))
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


def _stream_bar(stream: str, stats: StreamStats, *, threshold: float, floor: int, dry_run: bool) -> str | None:
    """Why a stream's own step failed (its Prefect task ends Failed): too many of its records did not go, or
    its watermark is stale (the run then fails on it)."""
    if stats.stale:
        return f"the watermark of {stream} did not advance although the source has rows after it"
    return stream_failure(stream, stats, threshold, floor, dry_run)


def retry_streams(runtime: Runtime, host: Host, streams: list[str] | None) -> dict[str, StreamStats]:
    """Re-send what the ledger holds as failed, retryably rejected or deferred, without waiting for a run,
    recorded like any run (kind ``retry``). A record rejected for good is not re-sent (Altcraft refused its
    data): it waits for its data to change, and the run says so."""
    chosen = chosen_streams(runtime, streams)
    syncer = Syncer(runtime.config, runtime.source, runtime.state, runtime.client, run_id=host.run_id, log=host.log)

    def body() -> dict[str, StreamStats]:
        results = {s: syncer.retry(s) for s in chosen}
        backlog = runtime.state.backlog()
        for s in chosen:
            n = backlog.get(registry.get(s).entity, {}).get("rejected", 0)
            if n:
                host.log.warning("%s: %s rejected for good %s waiting: retry does not re-send them (Altcraft "
                                 "refused their data); they go out once their data changes in the shop; see "
                                 "`altcraft-sync quarantine --stream %s`", s, plural(n, "record"),
                                 "stay" if n != 1 else "stays", s)
        return results

    try:
        return publish(runtime, host, kind="retry", title="retry", dry_run=False, body=body, syncer=syncer,
                       streams=chosen)
    finally:
        syncer.close()


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
        syncer.count_totals = progress.shows_totals
    if not dry_run:
        runtime.state.start_run(run_id, kind)
        _say_if_resumed(runtime, log)
    outcome = "Completed"
    try:
        results.update(body())
        if not dry_run and runtime.client is not None and not runtime.client.answered:
            # nothing was sent (a quiet night, a retry or a backfill window with nothing to do): ask Altcraft
            # once that the token works, so a revoked one fails this run instead of "completed"
            confirm_token(runtime.client, list(streams))
        for name, stats in results.items():
            if name not in done:
                done.add(name)
                progress.update(stats, stream_done=True)
                _notify(stats, True)
                if not dry_run:
                    runtime.state.record_stream(run_id, name, stats.figures())
        verdict = host.verdict = judge(results, cfg.sync, dry_run, None if dry_run else runtime.state.backlog())
        if verdict.failure:
            raise ThresholdExceeded(verdict.failure)
        for line in verdict.warnings:  # the CLI prints these as its last lines: kept out of its log
            log.warning("%s", line, extra=OUTCOME)
        if verdict.backlog and not verdict.backlog_alert:
            log.info("%s", verdict.backlog, extra=OUTCOME)
        if verdict.warnings:
            outcome = WARNINGS_PREFIX + "; ".join(verdict.warnings)
    except KeyboardInterrupt:
        said = "Interrupted: committed {}; the next run resumes from there"
        outcome = said.format(committed(results, done))  # kept if a second Ctrl-C cuts the wait below
        if syncer is not None:  # the chunk in flight finishes its commit first: the message counts it
            syncer.close()
            outcome = said.format(committed(results, done))
        raise
    except BaseException as err:  # whatever ends the run, its row ends failed with one line
        outcome = f"Failed: {one_line(err, run_id)}"
        if isinstance(err, SyncError):  # a failed run still shows its table
            err.figures = {k: v.figures() for k, v in results.items()}  # type: ignore[attr-defined]
        raise
    finally:
        if not dry_run:
            _close_run(runtime, run_id, outcome, log)
        if results:
            host.publish(kind, title, results, outcome, dry_run)
    return results


OUTCOME = {"run_outcome": True}
"""Marks a log record that the CLI prints itself, once, at the end of the run (``cli.app``'s filter)."""


def _say_if_resumed(runtime: Runtime, log: Log) -> None:
    """The run before this one was interrupted (Ctrl-C, or killed: ``start_run`` closed it): say that this
    one resumes it, from each stream's last committed chunk."""
    previous = runtime.state.last_runs(2)[1:]
    if previous and (previous[0]["status"] == "interrupted" or (previous[0]["message"] or "").startswith("interrupted")):
        p = previous[0]
        log.info("resuming after the interrupted run %s (%s, started %s): each stream continues from its last "
                 "committed chunk", p["run_id"], p["kind"], f"{p['started_at']:%Y-%m-%d %H:%M:%S}")


def _close_run(runtime: Runtime, run_id: str, outcome: str, log: Log) -> None:
    """Record how the run ended. If even that fails (the state database is gone), say so in one line and
    mark the run's owner as ended in this process: its lock and run row are taken over by the next run."""
    ok = outcome == "Completed" or outcome.startswith(WARNINGS_PREFIX)
    status = "completed" if ok else "interrupted" if outcome.startswith("Interrupted") else "failed"
    try:
        runtime.state.finish_run(run_id, status, None if outcome == "Completed" else outcome)
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
    verdict = getattr(host, "verdict", None) or Verdict()
    return RunOutcome(True, one_line_figures(results), {k: v.figures() for k, v in results.items()},
                      list(verdict.warnings), verdict.backlog)


def _failed(host: Host, err: Exception) -> RunOutcome:
    message = one_line(err, host.run_id or None)
    host.log.error("%s", message, extra=OUTCOME)
    if not isinstance(err, SyncError):
        logging.getLogger("altcraft_sync").debug("traceback of run %s", host.run_id, exc_info=err)
    verdict = getattr(host, "verdict", None)
    return RunOutcome(False, message, getattr(err, "figures", {}), backlog=verdict.backlog if verdict else None)


def one_line_figures(results: dict[str, StreamStats]) -> str:
    return "; ".join(f"{k}: {v.delivered} delivered, {v.unchanged} unchanged, {v.invalid} invalid, {v.rejected} rejected"
                     for k, v in results.items()) or "nothing to do"
