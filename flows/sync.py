"""The ``nightly-sync`` flow: categories -> products -> SKUs -> orders, each stream its own task, chunk by
chunk (the engine), then artifacts and a run state that tells the truth.

A run that cannot do its job ends Failed with a one-line message naming the cause (bad token, database
unreachable, config error, stream locked, too many rejected/invalid records), never a bare traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from altcraft_sync.config import STREAMS
from altcraft_sync.errors import StaleWatermark, SyncError, ThresholdExceeded, one_line
from connectors.state import abandon, lock_owner
from flows.engine import StreamStats, Syncer
from flows.reporting import ProgressReporter, stream_line, stream_rows, summary_markdown
from flows.runtime import Runtime, open_runtime

StreamName = Literal["categories", "products", "skus", "orders"]

_listeners: list[Callable[[StreamStats, bool], None]] = []


def add_progress_listener(fn: Callable[[StreamStats, bool], None]) -> Callable[[], None]:
    """In-process progress hook (the CLI draws progress bars with it); returns a remover."""
    _listeners.append(fn)
    return lambda: _listeners.remove(fn)


def _notify(stats: StreamStats, done: bool) -> None:
    for fn in list(_listeners):
        fn(stats, done)


@task(name="sync-stream", cache_policy=NO_CACHE, task_run_name="sync {stream}")
def sync_stream(syncer: Syncer, stream: str, window: tuple[datetime, datetime] | None = None) -> StreamStats | State:
    """One stream, chunk by chunk (or one backfill window); the task's log says what moved."""
    log = get_run_logger()
    syncer.log = log
    try:
        stats = syncer.sync_stream(stream, window=window)
    except Exception as err:
        return _task_failed(log, stream, err)
    log.info("%s", stream_line(stats, syncer.dry_run))
    return stats


@task(name="reconcile-stream", cache_policy=NO_CACHE, task_run_name="reconcile {stream}")
def reconcile_stream(syncer: Syncer, stream: str) -> StreamStats | State:
    """Delete in Altcraft the records that were hard-deleted from the source."""
    syncer.log = get_run_logger()
    try:
        stats = syncer.reconcile(stream)
    except Exception as err:
        return _task_failed(syncer.log, stream, err)
    syncer.log.info("%s: %d source keys, %d vanished records deleted", stream, stats.extracted, stats.deleted)
    return stats


def _task_failed(log: Any, stream: str, err: Exception) -> State:
    """A stream task's failure as one line: returned as a Failed state (raising would make Prefect log a
    traceback of hundreds of lines at ERROR); the caller gets ``err`` raised back. The traceback goes to
    the debug log (``PREFECT_LOGGING_LEVEL=DEBUG``)."""
    log.error("%s: %s", stream, one_line(err))
    log.debug("%s: traceback", stream, exc_info=err)
    return Failed(message=one_line(err), data=err)


def stream_result(out: StreamStats | State) -> StreamStats:
    """A stream task's figures, or the error of a task that returned Failed (raised here, in the flow)."""
    if not isinstance(out, State):
        return out
    err = out.result(raise_on_failure=False)
    raise err if isinstance(err, BaseException) else SyncError(out.message or "stream failed")


def run_streams(
    runtime: Runtime,
    *,
    kind: str,
    streams: list[str] | None,
    dry_run: bool,
    skip_triggers: bool,
    title: str,
    reconcile: bool = False,
) -> dict[str, StreamStats]:
    """Run the chosen streams incrementally, in dependency order, inside the current flow."""
    cfg = runtime.config
    unknown = set(streams or []) - set(cfg.enabled_streams())
    if unknown:
        raise SyncError(f"--stream {', '.join(sorted(unknown))}: not configured (configured: {', '.join(cfg.enabled_streams())})")
    chosen = [s for s in STREAMS if s in cfg.enabled_streams() and (not streams or s in streams)]
    run_id = str(flow_run.get_id() or uuid.uuid4())
    syncer = Syncer(cfg, runtime.source, runtime.state, runtime.client, run_id=run_id, dry_run=dry_run,
                    skip_triggers=skip_triggers)

    def body() -> dict[str, StreamStats]:
        results: dict[str, StreamStats] = {}
        for stream in chosen:
            stats = stream_result(sync_stream.with_options(tags=[f"stream:{stream}", kind])(syncer, stream))
            if reconcile:
                gone = stream_result(reconcile_stream.with_options(tags=[f"stream:{stream}", kind])(syncer, stream))
                stats.deleted += gone.deleted
                stats.warnings += gone.warnings
            results[stream] = stats
            if stats.stale:
                raise StaleWatermark(
                    f"stream {stream}: the watermark did not advance although the source has rows after it "
                    f"({stats.watermark_after}); check the updated_at column and the source query")
        return results

    return publish(runtime, run_id=run_id, kind=kind, title=title, dry_run=dry_run, body=body, syncer=syncer,
                   streams=chosen)


def publish(runtime: Runtime, *, run_id: str, kind: str, title: str, dry_run: bool,
            body: Callable[[], dict[str, StreamStats]], syncer: Syncer | None = None,
            streams: list[str]) -> dict[str, StreamStats]:
    """Run ``body`` as a recorded run: progress artifact while it runs, then the run history, the failure
    threshold, and the table + summary artifacts, whatever the outcome."""
    log = get_run_logger()
    cfg = runtime.config
    for w in runtime.warnings:
        log.warning(w)
    progress = ProgressReporter()
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
        bad = sum(s.rejected + s.invalid for s in results.values())
        # a dry run delivers nothing: count what it would have sent (new + changed) instead
        seen = sum((s.new + s.changed if dry_run else s.delivered + s.failed) + s.rejected + s.invalid + s.unchanged
                   for s in results.values())
        if seen and bad / seen > cfg.sync.failure_threshold:
            raise ThresholdExceeded(
                f"{bad} of {seen} records ({bad / seen:.1%}) were rejected or invalid, above sync.failure_threshold "
                f"{cfg.sync.failure_threshold:.0%}: see the quarantine and rejected samples"
            )
    except BaseException as err:  # whatever ends the run, its row ends failed with one line
        outcome = f"Failed: {one_line(err, run_id)}"
        raise
    finally:
        if not dry_run:
            _close_run(runtime, run_id, outcome, log)
        if results:
            create_table_artifact(stream_rows(results), key=f"{kind.replace('_', '-')}-streams",
                                  description=f"{title}: figures per stream")
            create_markdown_artifact(summary_markdown(title, results, outcome, dry_run),
                                     key=f"{kind.replace('_', '-')}-summary", description=f"{title}: summary")
    return results


def _close_run(runtime: Runtime, run_id: str, outcome: str, log: Any) -> None:
    """Record how the run ended. If even that fails (the state database is gone), say so in one line and
    mark the run's owner as ended in this process: its lock and run row are taken over by the next run."""
    ok = outcome == "Completed"
    try:
        runtime.state.finish_run(run_id, "completed" if ok else "failed", None if ok else outcome)
    except SyncError as err:
        log.error("could not record the end of run %s: %s", run_id, err)
        abandon(lock_owner(run_id))


def _nightly_name() -> str:
    params = flow_run.parameters or {}
    return nightly_run_name(datetime.now(UTC), params.get("streams"), bool(params.get("dry_run")))


def nightly_run_name(at: datetime, streams: list[str] | None, dry_run: bool) -> str:
    """``nightly-sync 2026-12-01 02:00`` (UTC), with the streams when not all and a dry-run mark: every
    run gets a name of its own in the Prefect UI."""
    chosen = f" [{', '.join(streams)}]" if streams else ""
    return f"nightly-sync {at:%Y-%m-%d %H:%M}{chosen}" + (" (dry run)" if dry_run else "")


@flow(name="nightly-sync", flow_run_name=_nightly_name, log_prints=False, validate_parameters=True)
def nightly_sync(
    config_path: str = "altcraft-sync.yaml",
    streams: list[StreamName] | None = None,
    dry_run: bool = False,
    skip_triggers: bool = False,
    reconcile: bool = False,
) -> State:
    """Send what changed in the shop since the last run: categories, products, SKUs, then orders.
    ``reconcile`` also deletes in Altcraft what was hard-deleted from the source (reads every key)."""
    return guarded(lambda rt: run_streams(rt, kind="nightly", streams=list(streams or []) or None, dry_run=dry_run,
                                          skip_triggers=skip_triggers, title="nightly-sync", reconcile=reconcile),
                   config_path, need_client=not dry_run)


def guarded(body: Callable[[Runtime], dict[str, StreamStats]], config_path: str, *, need_client: bool) -> State:
    """Open the runtime and run ``body``; a ``SyncError`` becomes a Failed state with its one-line message
    (and the watermarks stay where the last committed chunk left them)."""
    log = get_run_logger()
    run_id = str(flow_run.get_id() or "")
    try:
        runtime = open_runtime(config_path, need_client=need_client)
    except Exception as err:
        return _failed(log, err, run_id)
    try:
        results = body(runtime)
    except Exception as err:
        return _failed(log, err, run_id)
    finally:
        runtime.close()
    figures = {k: v.figures() for k, v in results.items()}
    return Completed(message=_one_line(results), data=figures)


def _failed(log: Any, err: Exception, run_id: str) -> State:
    """A Failed state with the error's one line; an unanticipated error's traceback goes to the debug log."""
    message = one_line(err, run_id or None)
    log.error("%s", message)
    if not isinstance(err, SyncError):
        logging.getLogger("altcraft_sync").debug("traceback of run %s", run_id, exc_info=err)
    return Failed(message=message)


def _one_line(results: dict[str, StreamStats]) -> str:
    return "; ".join(f"{k}: {v.delivered} delivered, {v.unchanged} unchanged, {v.invalid} invalid, {v.rejected} rejected"
                     for k, v in results.items()) or "nothing to do"


@flow(name="retry", flow_run_name="retry pending records", validate_parameters=True)
def retry_pending(config_path: str = "altcraft-sync.yaml", streams: list[StreamName] | None = None) -> State:
    """Re-send what the ledger holds as failed or retryably rejected, without waiting for the next run."""

    def body(runtime: Runtime) -> dict[str, StreamStats]:
        run_id = str(flow_run.get_id() or uuid.uuid4())
        syncer = Syncer(runtime.config, runtime.source, runtime.state, runtime.client, run_id=run_id,
                        log=get_run_logger())
        chosen = [s for s in STREAMS if s in runtime.config.enabled_streams() and (not streams or s in streams)]
        return {s: syncer.retry(s) for s in chosen}

    return guarded(body, config_path, need_client=True)
