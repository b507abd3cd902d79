"""The ``backfill`` flow: re-send a range of history, safely, resumably and visibly.

- Parameters are one typed model (:class:`BackfillParams`), which the Prefect UI renders as a form.
- The range ``(since, until]`` of ``updated_at`` is split into windows; each window's progress is kept in
  the state database, so a crashed backfill resumes at the next unfinished window and re-running a
  finished one is a no-op unless ``force``.
- The nightly watermark is never read or moved; the ledger and quarantine are shared, as are the stream
  locks and the per-process rate limit, so a backfill and a nightly run never write one stream at once.
- ``skip_triggers`` defaults to true: customers get no emails for old orders.
- ``fan_out`` submits one flow run per window through the ``backfill`` deployment (bounded by its
  concurrency limit) for histories that outgrow one machine; windows of one stream still write one at a
  time (they wait for the stream lock): two writers of one record could leave the ledger claiming a
  version Altcraft does not hold.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field, model_validator

from altcraft_sync.config import STREAMS
from altcraft_sync.errors import SyncError
from flows.engine import StreamStats, Syncer
from flows.runtime import Runtime
from flows.sync import StreamName, guarded, publish, stream_result, sync_stream


class BackfillParams(BaseModel):
    """What to re-send. Rendered as a form by the Prefect UI."""

    since: datetime = Field(description="Start of the range (exclusive), on updated_at; naive = UTC")
    until: datetime = Field(description="End of the range (inclusive), on updated_at; naive = UTC")
    streams: list[StreamName] = Field(default_factory=lambda: list(STREAMS), description="Streams to backfill")
    window_days: float = Field(default=7, gt=0, le=3660, description="Size of one window, in days")
    skip_triggers: bool = Field(default=True, description="Ask Altcraft not to fire triggers for old records")
    dry_run: bool = Field(default=False, description="Report new/changed/unchanged/invalid; send and record nothing")
    force: bool = Field(default=False, description="Run windows again even if a previous run finished them")
    resend: bool = Field(default=False, description="Send even records the ledger says are delivered unchanged")
    fan_out: bool = Field(default=False, description="One flow run per window through the backfill deployment")

    @model_validator(mode="after")
    def _ordered(self) -> BackfillParams:
        self.since, self.until = _utc(self.since), _utc(self.until)
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self

    def backfill_id(self) -> str:
        """Stable across re-runs of the same request, so finished windows are recognised."""
        return f"{self.since:%Y%m%dT%H%M%S}-{self.until:%Y%m%dT%H%M%S}-{self.window_days:g}d"

    def windows(self) -> list[tuple[datetime, datetime]]:
        out, start, step = [], self.since, timedelta(days=self.window_days)
        while start < self.until:
            end = min(self.until, start + step)
            out.append((start, end))
            start = end
        return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _backfill_name() -> str:
    p = (flow_run.parameters or {}).get("params") or {}
    if isinstance(p, BaseModel):  # in-process calls pass the model, API runs a dict
        p = p.model_dump()
    return backfill_run_name(p.get("since"), p.get("until"), p.get("streams"), bool(p.get("dry_run")))


def backfill_run_name(since: Any, until: Any, streams: list[str] | None, dry_run: bool) -> str:
    """``backfill orders 2024-01-01..2024-04-01`` (a time of day only when the bound has one): the Prefect
    UI's list of runs tells backfills apart at a glance."""
    chosen = "all streams" if not streams or set(streams) == set(STREAMS) else ", ".join(streams)
    return f"backfill {chosen} {_moment(since)}..{_moment(until)}" + (" (dry run)" if dry_run else "")


def _moment(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "?"
    return f"{value:%Y-%m-%d}" if (value.hour, value.minute, value.second) == (0, 0, 0) else f"{value:%Y-%m-%d %H:%M}"


@flow(name="backfill", flow_run_name=_backfill_name, validate_parameters=True)
def backfill(params: BackfillParams, config_path: str = "altcraft-sync.yaml") -> State:
    """Re-send ``(since, until]`` window by window, without touching the nightly watermark."""
    if params.fan_out and not params.dry_run:
        return _fan_out(params, config_path)
    return guarded(lambda rt: run_windows(rt, params), config_path, need_client=not params.dry_run)


def run_windows(runtime: Runtime, params: BackfillParams) -> dict[str, StreamStats]:
    log = get_run_logger()
    cfg = runtime.config
    run_id = str(flow_run.get_id() or params.backfill_id())
    streams = [s for s in STREAMS if s in params.streams and s in cfg.enabled_streams()]
    syncer = Syncer(cfg, runtime.source, runtime.state, runtime.client, run_id=run_id, dry_run=params.dry_run,
                    skip_triggers=params.skip_triggers, resend=params.resend, lock_wait_seconds=600)
    bid = params.backfill_id()
    if params.force and not params.dry_run:
        runtime.state.reset_backfill(bid)
    windows = params.windows()
    results: dict[str, StreamStats] = {s: StreamStats(s) for s in streams}

    def body() -> dict[str, StreamStats]:
        for stream in streams:
            done = {} if params.dry_run else runtime.state.window_status(bid, stream)
            for start, end in windows:
                key = start.isoformat()
                if done.get(key) == "done":
                    log.info("%s: window %s..%s already done (force to re-run)", stream, start, end)
                    continue
                stats = stream_result(sync_stream.with_options(
                    tags=[f"stream:{stream}", "backfill"],
                    task_run_name=f"{stream} {start:%Y-%m-%d}..{end:%Y-%m-%d}")(syncer, stream, (start, end)))
                _add(results[stream], stats)
                if not params.dry_run:
                    runtime.state.mark_window(bid, stream, key, end.isoformat(), "done", stats.figures())
        return results

    title = f"backfill {params.since:%Y-%m-%d}..{params.until:%Y-%m-%d}"
    return publish(runtime, run_id=run_id, kind="backfill", title=title, dry_run=params.dry_run, body=body,
                   syncer=syncer, streams=streams)


def _add(total: StreamStats, part: StreamStats) -> None:
    for name in ("extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deleted", "new",
                 "changed", "chunks", "requests"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for key, n in part.quarantine_reasons.items():
        total.quarantine_reasons[key] = total.quarantine_reasons.get(key, 0) + n
    for kind, items in part.samples.items():
        total.samples.setdefault(kind, []).extend(items[: 5 - len(total.samples.get(kind, []))])
    total.warnings += part.warnings


def _fan_out(params: BackfillParams, config_path: str) -> State:
    """One child flow run per window through the ``backfill`` deployment; waits for all of them."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    log = get_run_logger()
    children = []
    for start, end in params.windows():
        child = params.model_copy(update={"since": start, "until": end, "fan_out": False, "window_days": params.window_days})
        run = run_deployment("backfill/backfill", parameters={"params": child.model_dump(mode="json"),
                                                              "config_path": config_path}, timeout=0, as_subflow=True)
        children.append(run)
        log.info("submitted window %s..%s as flow run %s", start, end, run.name)
    failed = []
    with get_client(sync_client=True) as client:  # prefect.flow_runs.wait_for_flow_run is async in 3.8
        for run in children:
            final = client.read_flow_run(run.id)
            while not (final.state and final.state.is_final()):
                time.sleep(5)
                final = client.read_flow_run(run.id)
            if not final.state.is_completed():
                failed.append(f"{final.name}: {final.state.message}")
    if failed:
        return Failed(message=f"{len(failed)} of {len(children)} windows failed: " + "; ".join(failed)[:500])
    return Completed(message=f"{len(children)} windows completed")


def parse_day(value: str) -> datetime:
    """``2024-01-01`` or a full ISO time, as aware UTC."""
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        raise SyncError(f"not a date: {value!r} (use YYYY-MM-DD or an ISO 8601 time)") from None


def params_from_cli(since: str, until: str, streams: list[str] | None, **kw: Any) -> BackfillParams:
    from pydantic import ValidationError

    try:
        return BackfillParams(since=parse_day(since), until=parse_day(until), streams=streams or list(STREAMS), **kw)
    except ValidationError as err:
        raise SyncError(f"backfill: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None
