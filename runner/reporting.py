"""What a run tells a person: Prefect artifacts (a table per stream, a markdown summary with the top
quarantine reasons and masked samples of rejected records, a progress bar during long runs).

Artifacts never hold secrets or raw personal data: emails and phones are masked, and values go through
``to_json`` first (Prefect's ``create_table_artifact`` cannot take Timestamps)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from altcraft_sync.masking import hide_contact
from engine.coordinator import StreamStats

PII_KEYS = frozenset({"email", "phone", "profile_id", "field_value", "subscription_id"})
"""Fields whose values identify a person. Only these are masked: record ids, timestamps, prices and
everything else stay readable, so a sample of rejected records still says which records they are."""


def mask(value: Any) -> Any:
    """Mask e-mail and phone values in their own fields (``email``, ``phone``, matching fields) of a
    JSON-like value, and the ``value`` of a quarantine reason whose ``field`` is one of them. An e-mail
    keeps its first two characters and its domain, a phone its first three and last two digits."""
    if isinstance(value, dict):
        pii_reason = str(value.get("field") or "").rpartition(".")[2] in PII_KEYS
        return {k: hide_contact(v) if k in PII_KEYS or (pii_reason and k == "value") else mask(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


DRY_RUN_COLUMNS = {"would create": "new", "would update": "changed", "unchanged": "unchanged", "invalid": "invalid",
                   "would delete": "deleted", "deferred": "deferred"}
"""What a dry run reports per stream (column -> StreamStats field): it sends nothing, so it counts what
a real run would do."""


def stream_line(s: StreamStats, dry_run: bool) -> str:
    """The one log line a stream ends with."""
    if dry_run:
        counts = ", ".join(f"{label} {getattr(s, f)}" for label, f in DRY_RUN_COLUMNS.items())
        return f"{s.stream} (dry run): {s.extracted} read: {counts}; nothing sent, {watermark_text(s, moved=False)}"
    backlog = f" ({s.still_invalid} quarantined before still invalid)" if s.still_invalid else ""
    return (f"{s.stream}: {s.extracted} read, {s.unchanged} unchanged, {s.invalid} invalid{backlog}, {s.delivered} "
            f"delivered, {s.rejected} rejected, {s.failed} failed, {s.deferred} deferred, {s.deleted} deleted, "
            f"{s.retried} retried; {watermark_text(s)}" + "".join(f"; {note}" for note in s.notes))


def watermark_text(s: StreamStats, moved: bool = True) -> str:
    """``watermark {...} -> {...}``; ``watermark not moved`` when the step keeps none (a backfill window,
    whose range never moves the nightly watermark) or did not move it."""
    before = {k: v for k, v in s.watermark_before.items() if v is not None}
    after = {k: v for k, v in s.watermark_after.items() if v is not None}
    if not moved:
        return f"watermark stays at {before}" if before else "watermark not moved"
    return f"watermark {s.watermark_before} -> {s.watermark_after}" if before or after else "watermark not moved"


def stream_rows(results: dict[str, StreamStats]) -> list[dict[str, Any]]:
    """The Prefect table artifact, the columns the README lists: the figures, the watermark before and
    after the run, and the lag. A watermark is the stream's main cursor time to the second (its key is for
    resuming, not reading); the backlog re-read is in the summary artifact."""
    rows = []
    for name, s in results.items():
        rows.append(
            {
                "stream": name,
                "extracted": s.extracted,
                "delivered": s.delivered,
                "unchanged": s.unchanged,
                "invalid": s.invalid,
                "rejected": s.rejected,
                "deferred": s.deferred,
                "failed": s.failed,
                "deleted": s.deleted,
                "retried": s.retried,
                "watermark before": _main_mark(name, s.watermark_before),
                "watermark after": _main_mark(name, s.watermark_after),
                "lag (s)": None if s.lag_seconds is None else round(s.lag_seconds),
            }
        )
    return orjson.loads(orjson.dumps(rows, default=str))


def _main_mark(stream: str, marks: dict[str, str | None]) -> str:
    """The stream's main cursor (named after the stream, else its first) as :func:`_short_mark` shows it."""
    return _short_mark(marks.get(stream) or next(iter(marks.values()), None))


def _short_mark(value: Any) -> str:
    """``2026-11-28 07:30:03`` of ``2026-11-28 07:30:03.000000 / 106`` (the key is for resuming, not reading)."""
    return "-" if not value else str(value).split(" / ")[0][:19]


def summary_markdown(title: str, results: dict[str, StreamStats], outcome: str, dry_run: bool,
                     verdict: Any = None) -> str:
    """The run's summary artifact: the outcome, the backlog line, figures, the top reasons in words, and
    samples (only those the run has: the text never points at a sample that is not there)."""
    from transforms.reasons import human_check

    lines = [f"# {title}", "", f"**Outcome:** {outcome}" + (" (dry run: nothing sent or recorded)" if dry_run else ""), ""]
    for w in getattr(verdict, "warnings", None) or []:
        lines += [f"- **Warning:** {w}"]
    if getattr(verdict, "backlog", None) and verdict.backlog not in (getattr(verdict, "warnings", None) or []):
        lines += [f"- {verdict.backlog}"]
    lines += [""]
    if dry_run:
        lines += ["| stream | read | " + " | ".join(DRY_RUN_COLUMNS) + " |", "|---|" + "---:|" * (len(DRY_RUN_COLUMNS) + 1)]
        for name, s in results.items():
            lines.append(f"| {name} | {s.extracted} | " + " | ".join(str(getattr(s, f)) for f in DRY_RUN_COLUMNS.values()) + " |")
    else:
        lines += ["| stream | read | unchanged | delivered | invalid | rejected | deferred | failed | deleted | lag (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, s in results.items():
            lag = "-" if s.lag_seconds is None else f"{s.lag_seconds:.0f}"
            lines.append(f"| {name} | {s.extracted} | {s.unchanged} | {s.delivered} | {s.invalid} | {s.rejected} | "
                         f"{s.deferred} | {s.failed} | {s.deleted} | {lag} |")
    reasons: dict[str, int] = {}
    for name, s in results.items():
        for k, n in s.quarantine_reasons.items():
            field, _, check = k.partition(": ")
            key = f"{name} · {field} · {human_check(check)}"
            reasons[key] = reasons.get(key, 0) + n
    if reasons:
        lines += ["", "## Top quarantine reasons", "", "| stream · field · reason | records |", "|---|---:|"]
        for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
            lines.append(f"| {k.replace('|', '/')} | {n} |")
    for name, s in results.items():
        for kind in ("rejected", "invalid", "deferred", "new", "changed", "unchanged"):
            sample = s.samples.get(kind)
            if sample and (kind in ("rejected", "invalid", "deferred") or dry_run):
                lines += ["", f"## {name}: sample of {kind}", "", "```json",
                          orjson.dumps(mask(readable(sample)), option=orjson.OPT_INDENT_2, default=str).decode(), "```"]
    waits = [(name, why, n) for name, s in results.items() for why, n in s.deferred_reasons.items()]
    if waits:
        lines += ["", "## Why records wait (deferred)", "", "| stream | reason | records |", "|---|---|---:|"]
        lines += [f"| {name} | {why.replace('|', '/')} | {n} |" for name, why, n in sorted(waits, key=lambda w: -w[2])[:10]]
    notes = [f"{name}: {note}" for name, s in results.items() for note in s.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    warnings = [f"{name}: {w}" for name, s in results.items() for w in s.warnings]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings[:20]]
    return "\n".join(lines)


def readable(value: Any) -> Any:
    """A sample as a person reads it: empty keys dropped (no ``field: null`` beside a record-level check)
    and each check in words."""
    from transforms.reasons import human_check

    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, dict):
        out = {k: readable(v) for k, v in value.items() if v is not None}
        if isinstance(out.get("check"), str):
            out["check"] = human_check(out["check"])
        return out
    return value


class ProgressReporter:
    """Updates a Prefect progress artifact at most every ``interval`` seconds (the API is not free)."""

    shows_totals = False  # the artifact counts streams done, not rows left

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._last = 0.0
        self._artifact_id: Any = None
        self.done_streams: list[str] = []
        self.n_streams = 1

    def start(self, n_streams: int) -> None:
        from prefect.artifacts import create_progress_artifact

        self.n_streams = max(1, n_streams)
        self._artifact_id = create_progress_artifact(0.0, description="Streams done (updated during the run)")

    def update(self, stats: StreamStats, stream_done: bool = False) -> None:
        if self._artifact_id is None:
            return
        if stream_done:
            self.done_streams.append(stats.stream)
        now = time.monotonic()
        if not stream_done and now - self._last < self.interval:
            return
        self._last = now
        from prefect.artifacts import update_progress_artifact

        pct = 100.0 * len(self.done_streams) / self.n_streams
        update_progress_artifact(self._artifact_id, min(100.0, pct),
                                 description=f"{len(self.done_streams)}/{self.n_streams} streams; "
                                             f"{stats.stream}: {stats.extracted} read, {stats.delivered} delivered")
