"""A run's outcome: what this run did (its news) apart from what already waited (the backlog).

The definitions an operator relies on (README: Exit codes and outcomes):

- **This run's news** are the records this run tried: read and sent, or read and found invalid, or held
  back as deferred by this run. Of those, the ones that *did not go* are the rejected, the invalid and the
  deferred. A record rejected for good or quarantined *before* this run and re-read unchanged (a lookback,
  the quarantine's re-read) is the backlog, not news: ``still_rejected`` and ``still_invalid``.
- **Failed** (exit 2): more than ``sync.failure_floor`` records of this run did not go *and* they are more
  than ``sync.failure_threshold`` of what it tried; or the run could not do its job.
- **Completed with warnings** (exit 1): some records of this run did not go, below that bar; or the backlog
  alert fires: more than ``sync.backlog_alert_records`` records wait, or the oldest has waited longer than
  ``sync.backlog_alert_hours``.
- **Completed** (exit 0): everything this run tried went. A backlog that does not alert is still shown,
  on a line of its own.

Pure: figures and settings in, lines out; the run (``runner.runs``) reads the backlog from the state store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.wording import plural
from transforms.reasons import human_check

WARNINGS_PREFIX = "completed with warnings: "
"""How a Completed run's message (the Prefect state's, the run history's) marks a run with warnings."""


@dataclass
class Verdict:
    """How a run ended, in the words the CLI, the run history and the Prefect UI show."""

    failure: str | None = None
    """The one line of a failed outcome (what did not go, why, and the command that shows it)."""
    warnings: list[str] = field(default_factory=list)
    backlog: str | None = None
    """What waits, whatever this run did: shown on every run that has one."""
    backlog_alert: bool = False


def did_not_go(s: Any) -> int:
    """Records of this run that did not go: rejected or invalid now, or held back (deferred) by it."""
    return (max(0, s.rejected - getattr(s, "still_rejected", 0)) + s.invalid + s.deferred)


def tried(s: Any, dry_run: bool) -> int:
    """Records this run tried (a dry run counts what it would have sent)."""
    sent = s.new + s.changed if dry_run else s.delivered + s.failed
    return sent + did_not_go(s) + s.unchanged


def _stream_parts(s: Any) -> str:
    parts = []
    rejected = max(0, s.rejected - getattr(s, "still_rejected", 0))
    if rejected:
        why = next((x.get("error") for x in s.samples.get("rejected", []) if isinstance(x, dict) and x.get("error")), None)
        parts.append(f"{rejected} rejected" + (f" (Altcraft: {why})" if why else ""))
    if s.invalid:
        top = max(s.quarantine_reasons.items(), key=lambda kv: kv[1])[0] if s.quarantine_reasons else None
        parts.append(f"{s.invalid} invalid" + (f" ({_reason(top)})" if top else ""))
    if s.deferred:
        reasons = getattr(s, "deferred_reasons", None) or {}
        top = max(reasons.items(), key=lambda kv: kv[1])[0] if reasons else None
        parts.append(f"{s.deferred} deferred" + (f" ({top})" if top else ""))
    return ", ".join(parts)


def _reason(key: str) -> str:
    """``description: longer than 1000 characters`` of the stats' ``description: str_length(None, 1000)``."""
    field, _, check = key.partition(": ")
    return human_check(check) if field in ("*", "") else f"{field}: {human_check(check)}"


def quarantine_command(streams: list[str]) -> str:
    """``altcraft-sync quarantine --stream orders``: where the records that did not go are listed."""
    return "altcraft-sync quarantine" + (f" --stream {streams[0]}" if len(streams) == 1 else "")


def news_line(results: dict[str, Any], dry_run: bool) -> tuple[int, int, str]:
    """(did not go, tried, ``orders: 1 rejected (Altcraft: ...)``) of this run."""
    bad = sum(did_not_go(s) for s in results.values())
    seen = sum(tried(s, dry_run) for s in results.values())
    where = "; ".join(f"{name}: {_stream_parts(s)}" for name, s in results.items() if did_not_go(s))
    return bad, seen, where


def stream_failure(name: str, s: Any, threshold: float, floor: int, dry_run: bool = False) -> str | None:
    """The line of a stream whose own records fail the run's bar (its task ends Failed in the Prefect UI)."""
    bad, seen = did_not_go(s), tried(s, dry_run)
    if bad > floor and seen and bad / seen > threshold:
        return (f"{bad} of {plural(seen, 'record')} ({bad / seen:.1%}) did not go: {_stream_parts(s)}; "
                f"see `{quarantine_command([name])}`")
    return None


def judge(results: dict[str, Any], sync: Any, dry_run: bool, backlog: dict[str, dict[str, Any]] | None = None,
          now: datetime | None = None) -> Verdict:
    """The verdict of a run from its figures, ``sync``'s settings and the state store's backlog."""
    verdict = Verdict()
    bad, seen, where = news_line(results, dry_run)
    failed_streams = [n for n, s in results.items() if did_not_go(s)]
    if bad:
        share = bad / seen if seen else 1.0
        # a dry run records nothing: what would not go is in its figures and samples, not the quarantine
        line = (f"{bad} of {plural(seen, 'record')} would not go: {where} (dry run: nothing sent or recorded)"
                if dry_run else f"{bad} of {plural(seen, 'record')} of this run ({share:.1%}) did not go: {where}; "
                                f"see `{quarantine_command(failed_streams)}`")
        if bad > sync.failure_floor and share > sync.failure_threshold:
            verdict.failure = (f"{line} (above sync.failure_threshold {sync.failure_threshold:.0%} and "
                               f"sync.failure_floor {sync.failure_floor})")
        else:
            verdict.warnings.append(line)
    if backlog:
        verdict.backlog, verdict.backlog_alert = backlog_line(backlog, sync, now or datetime.now(UTC))
        if verdict.backlog_alert and verdict.backlog:
            verdict.warnings.append(verdict.backlog)
    return verdict


def backlog_line(backlog: dict[str, dict[str, Any]], sync: Any, now: datetime) -> tuple[str | None, bool]:
    """``backlog: 3 records wait (orders: 1 rejected for good, 2 quarantined), the oldest for 2 h; see ...``,
    and whether it alerts (more than ``backlog_alert_records``, or older than ``backlog_alert_hours``)."""
    total, parts, oldest, streams = 0, [], None, []
    labels = (("rejected", "rejected for good"), ("quarantined", "quarantined"), ("retrying", "retrying"),
              ("deferred", "deferred"))
    for entity, row in sorted(backlog.items()):
        counts = [(row.get(k, 0), label) for k, label in labels if row.get(k, 0)]
        if not counts:
            continue
        n = sum(c for c, _ in counts)
        total += n
        name = _stream_of(entity)
        streams.append(name)
        parts.append(f"{name}: " + ", ".join(f"{c} {label}" for c, label in counts))
        if row.get("since") is not None and (oldest is None or row["since"] < oldest):
            oldest = row["since"]
    if not total:
        return None, False
    hours = (now - oldest).total_seconds() / 3600 if oldest else 0.0
    alert = total > sync.backlog_alert_records or hours > sync.backlog_alert_hours
    why = ""
    if alert:
        why = (f", above sync.backlog_alert_records {sync.backlog_alert_records}" if total > sync.backlog_alert_records
               else f", longer than sync.backlog_alert_hours {sync.backlog_alert_hours:g}")
    return (f"backlog: {plural(total, 'record')} wait ({'; '.join(parts)}), the oldest for "
            f"{_age(hours)}{why}; see `{quarantine_command(streams)}`"), alert


def _stream_of(entity: str) -> str:
    try:
        return registry.of_entity(entity).name
    except (KeyError, LookupError):
        return entity


def _age(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.0f} days"
    if hours >= 1:
        return f"{hours:.0f} h"
    minutes = round(hours * 60)
    return f"{minutes} min" if minutes >= 1 else "< 1 min"


def committed(results: dict[str, Any], done: set[str]) -> str:
    """What a run had committed when it stopped: per stream, done or its committed chunks."""
    parts = [f"{name} {'done' if name in done else plural(s.chunks, 'chunk')} ({s.delivered:,} delivered)"
             for name, s in results.items()]
    return "; ".join(parts) or "nothing yet"
