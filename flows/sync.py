"""The Prefect side of a run: the ``nightly-sync`` and ``retry`` flows, each stream a task, artifacts, and a
run state that tells the truth. What a run does is in :mod:`runner.runs`, which also runs it without Prefect.

A run that cannot do its job ends Failed with a one-line message naming the cause (bad token, database
unreachable, config error, stream locked, too many rejected/invalid records), never a bare traceback.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import Field

from altcraft_sync.errors import SyncError, one_line
from altcraft_sync.masking import mask, mask_tree
from engine.coordinator import StreamStats
from flows.streams import StreamName
from runner.outcome import WARNINGS_PREFIX, Verdict
from runner.reporting import ProgressReporter, stream_rows, summary_markdown
from runner.runs import Log, ProgressDisplay, RunOutcome, add_progress_listener, guarded, retry_streams, run_streams

__all__ = ["PrefectHost", "add_progress_listener", "as_state", "nightly_sync", "retry_pending"]


Judge = Callable[[StreamStats], str | None]


@task(name="stream-step", cache_policy=NO_CACHE, task_run_name="{name}")
def stream_step(name: str, fn: Callable[[Log], StreamStats], judge: Judge | None = None) -> StreamStats | State:
    """One stream, backfill window or reconcile as a task: its log lines are the task run's. A stream whose
    own records fail the run's bar (``judge``) ends Failed with its figures, so the run's graph shows
    which stream failed a Failed run; the flow goes on and judges the whole run."""
    log = get_run_logger()
    try:
        stats = fn(log)
        problem = judge(stats) if judge is not None else None
        if problem:
            log.error("%s: %s", name, problem)
            return Failed(message=problem, data=stats)
        return stats
    except Exception as err:
        # returned, not raised: a raising task makes Prefect log a traceback of hundreds of lines at ERROR;
        # the flow raises the error again (stream_result) and ends Failed with its one line
        log.error("%s: %s", name, one_line(err))
        log.debug("%s: traceback", name, exc_info=err)
        return Failed(message=one_line(err), data=err)


def stream_result(out: StreamStats | State) -> StreamStats:
    """A stream task's figures, or the error of a task that returned Failed (raised here, in the flow)."""
    if not isinstance(out, State):
        return out
    err = out.result(raise_on_failure=False)
    if isinstance(err, StreamStats):  # failed on its figures: the run's verdict decides
        return err
    raise err if isinstance(err, BaseException) else SyncError(out.message or "stream failed")


class PrefectHost:
    """A run inside a Prefect flow run: steps are tasks, figures are table and summary artifacts, progress
    is a progress artifact."""

    def __init__(self) -> None:
        self.run_id = str(flow_run.get_id() or uuid.uuid4())
        self.log: Log = get_run_logger()
        self.verdict: Verdict | None = None

    def step(self, name: str, fn: Callable[[Log], StreamStats], judge: Judge | None = None) -> StreamStats:
        """The step as a task run named after it (``sync orders``, ``orders 2026-01-01..2026-01-31``). It
        carries no tags: Prefect's task engine asks the server for a concurrency slot of every tag a task
        run has, whether or not a limit exists, and under a running server that call stalled for 2-4 s in
        2 of 5 no-change runs (``docs/performance.md``, "The Prefect path"). Writers of one stream are kept
        apart by the stream lock in the state database, not by Prefect; the deployments' own tags
        (``prefect.yaml``) are on the flow runs."""
        return stream_result(stream_step(name, fn, judge))

    def progress(self) -> ProgressDisplay:
        return ProgressReporter()

    def publish(self, kind: str, title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool) -> None:
        create_table_artifact(mask_tree(stream_rows(results)), key=f"{kind.replace('_', '-')}-streams",
                              description=f"{title}: figures per stream")
        create_markdown_artifact(mask(summary_markdown(title, results, outcome, dry_run, self.verdict)),
                                 key=f"{kind.replace('_', '-')}-summary", description=f"{title}: summary")
        if self.verdict is not None and self.verdict.backlog_alert:
            backlog_alert(self.verdict.backlog or "")


def backlog_alert(line: str) -> None:
    """The backlog's own alert: a Prefect event an automation can notify on (README: The backlog's alert),
    apart from the run's state, which stays Completed."""
    from prefect.events import emit_event

    emit_event(event="altcraft-sync.backlog.alert", resource={"prefect.resource.id": "altcraft-sync.backlog"},
               payload={"backlog": line, "flow_run_id": str(flow_run.get_id() or "")})


def as_state(outcome: RunOutcome) -> State:
    """A run's Prefect state: Completed (``completed with warnings: ...`` when it has warnings) or Failed."""
    if not outcome.ok:
        return Failed(message=outcome.message)
    warnings = list(getattr(outcome, "warnings", []))
    message = WARNINGS_PREFIX + "; ".join(warnings) if warnings else outcome.message
    return Completed(message=message, data=outcome.figures)


def _nightly_name() -> str:
    params = flow_run.parameters or {}
    return nightly_run_name(datetime.now(UTC), params.get("streams"), bool(params.get("dry_run")))


def nightly_run_name(at: datetime, streams: list[str] | None, dry_run: bool) -> str:
    """``nightly-sync 2026-12-01 02:00`` (UTC), with the streams when not all and a dry-run mark: every
    run gets a name of its own in the Prefect UI."""
    chosen = f" [{', '.join(streams)}]" if streams else ""
    return f"nightly-sync {at:%Y-%m-%d %H:%M}{chosen}" + (" (dry run)" if dry_run else "")


def param(default: Any, title: str, description: str) -> Any:
    """A flow parameter as the Prefect UI's run form shows it: a title and a sentence, not a bare name.
    (Prefect resolves the ``Field`` to its default when the parameter is not given.)"""
    return Field(default, description=description, json_schema_extra={"title": title})


CONFIG_PARAM = param("altcraft-sync.yaml", "Config file", "Path of the YAML config on the worker")
STREAMS_PARAM = param((), "Streams", "Only these streams; leave empty for every configured stream")


@flow(name="nightly-sync", flow_run_name=_nightly_name, log_prints=False, validate_parameters=True)
def nightly_sync(
    config_path: str = CONFIG_PARAM,
    streams: tuple[StreamName, ...] = STREAMS_PARAM,
    dry_run: bool = param(False, "Dry run", "Read, map and validate; send and record nothing"),
    skip_triggers: bool = param(False, "Skip triggers", "Ask Altcraft not to fire triggers for these records"),
    reconcile: bool = param(False, "Reconcile deletions", "Also delete in Altcraft what was hard-deleted from the "
                                                          "shop (reads every key)"),
) -> State:
    """Send what changed in the shop since the last run: categories, products, SKUs, then orders.
    ``reconcile`` also deletes in Altcraft what was hard-deleted from the source (reads every key)."""
    host = PrefectHost()
    return as_state(guarded(
        lambda rt: run_streams(rt, host, kind="nightly", streams=list(streams or []) or None, dry_run=dry_run,
                               skip_triggers=skip_triggers, title="nightly-sync", reconcile=reconcile),
        config_path, host, need_client=not dry_run))


def _retry_name() -> str:
    streams = (flow_run.parameters or {}).get("streams")
    return f"retry failed and waiting records of {', '.join(streams) if streams else 'all streams'}"


@flow(name="retry", flow_run_name=_retry_name, validate_parameters=True)
def retry_pending(config_path: str = CONFIG_PARAM,
                  streams: tuple[StreamName, ...] = STREAMS_PARAM) -> State:
    """Re-send what the ledger holds as failed, retryably rejected or deferred, without waiting for the
    next run."""
    host = PrefectHost()
    return as_state(guarded(lambda rt: retry_streams(rt, host, list(streams or []) or None), config_path, host,
                            need_client=True))


