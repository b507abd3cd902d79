"""A backfill's plan and its run, whoever hosts it (:mod:`runner.runs`): the typed parameters (the Prefect
UI renders them as a form), the windows of ``(since, until]``, and the window-by-window run that records
each finished window in the state database (resumable) and never touches the nightly watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

from pydantic import BaseModel, Field, model_validator

from altcraft_sync import streams as registry
from altcraft_sync.errors import SyncError
from altcraft_sync.streams import StreamName
from engine.coordinator import StreamStats, Syncer
from runner.runs import Host, publish, run_stream_step
from runner.runtime import Runtime


class BackfillParams(BaseModel):
    """What to re-send. Rendered as a form by the Prefect UI."""

    since: datetime = Field(title="Since", description="Start of the range (exclusive), on updated_at; naive = UTC")
    until: datetime = Field(title="Until", description="End of the range (inclusive), on updated_at; naive = UTC")
    streams: list[StreamName] = Field(
        default_factory=lambda: cast(list[StreamName], list(registry.names())), title="Streams",
        description="Streams to backfill")
    window_days: float = Field(default=7, gt=0, le=3660, title="Window (days)", description="Size of one window, in days")
    skip_triggers: bool = Field(default=True, title="Skip triggers",
                                description="Ask Altcraft not to fire triggers for old records")
    dry_run: bool = Field(default=False, title="Dry run",
                          description="Report new/changed/unchanged/invalid; send and record nothing")
    force: bool = Field(default=False, title="Run finished windows again",
                        description="Run windows again even if a previous run finished them")
    resend: bool = Field(default=False, title="Re-send unchanged",
                         description="Send even records the ledger says are delivered unchanged")
    fan_out: bool = Field(default=False, title="One flow run per window",
                          description="One flow run per window through the backfill deployment")

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


def run_windows(runtime: Runtime, host: Host, params: BackfillParams) -> dict[str, StreamStats]:
    cfg = runtime.config
    streams = [s for s in registry.names() if s in params.streams and s in cfg.enabled_streams()]
    syncer = Syncer(cfg, runtime.source, runtime.state, runtime.client, run_id=host.run_id, dry_run=params.dry_run,
                    skip_triggers=params.skip_triggers, resend=params.resend, lock_wait_seconds=600, log=host.log)
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
                    host.log.info("%s: window %s..%s already done (force to re-run)", stream, start, end)
                    continue
                stats = host.step(f"{stream} {start:%Y-%m-%d}..{end:%Y-%m-%d}",
                                  partial(run_stream_step, syncer, stream=stream, window=(start, end)))
                _add(results[stream], stats)
                if not params.dry_run:
                    runtime.state.mark_window(bid, stream, key, end.isoformat(), "done", stats.figures())
        return results

    title = f"backfill {params.since:%Y-%m-%d}..{params.until:%Y-%m-%d}"
    try:
        return publish(runtime, host, kind="backfill", title=title, dry_run=params.dry_run, body=body,
                       syncer=syncer, streams=streams)
    finally:
        syncer.close()


def _add(total: StreamStats, part: StreamStats) -> None:
    names = ("extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deleted", "new", "changed",
             "chunks", "requests")
    total.add(**{name: getattr(part, name) for name in names})
    for key, n in part.quarantine_reasons.items():
        total.quarantine_reasons[key] = total.quarantine_reasons.get(key, 0) + n
    for kind, items in part.samples.items():
        total.samples.setdefault(kind, []).extend(items[: 5 - len(total.samples.get(kind, []))])
    total.warnings += part.warnings


def backfill_run_name(since: Any, until: Any, streams: list[str] | None, dry_run: bool) -> str:
    """``backfill orders 2024-01-01..2024-04-01`` (a time of day only when the bound has one): the Prefect
    UI's list of runs tells backfills apart at a glance."""
    chosen = "all streams" if not streams or set(streams) == set(registry.names()) else ", ".join(streams)
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


def parse_day(value: str) -> datetime:
    """``2024-01-01`` or a full ISO time, as aware UTC."""
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        raise SyncError(f"not a date: {value!r} (use YYYY-MM-DD or an ISO 8601 time)") from None


def params_from_cli(since: str, until: str, streams: list[str] | None, **kw: Any) -> BackfillParams:
    from pydantic import ValidationError

    try:
        return BackfillParams(since=parse_day(since), until=parse_day(until), streams=streams or list(registry.names()), **kw)
    except ValidationError as err:
        first = err.errors()[0]
        option = f" --{str(first['loc'][0]).replace('_', '-')}" if first["loc"] else ""
        raise SyncError(f"backfill{option}: {first['msg'].removeprefix('Value error, ')}") from None
