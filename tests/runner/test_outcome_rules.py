"""The rules of a run's outcome (runner/outcome.py, issue 27): news against the threshold and its floor,
the backlog's line and its alert by size and by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from altcraft_sync.config import SyncSettings
from engine.stats import StreamStats
from runner.outcome import judge, stream_failure

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def stats(stream: str = "orders", **figures: int) -> StreamStats:
    s = StreamStats(stream)
    s.add(**figures)
    return s


def test_one_bad_record_in_a_run_of_12_is_a_warning():
    v = judge({"orders": stats(delivered=11, rejected=1)}, SyncSettings(), dry_run=False, now=NOW)
    assert v.failure is None and len(v.warnings) == 1
    assert v.warnings[0].startswith("1 of 12 records of this run (8.3%) did not go: orders: 1 rejected")
    assert v.warnings[0].endswith("see `altcraft-sync quarantine --stream orders`")


def test_past_the_floor_and_the_threshold_the_run_fails():
    s = stats(delivered=80, invalid=15, deferred=5)
    v = judge({"orders": s}, SyncSettings(), dry_run=False, now=NOW)
    assert v.failure and v.failure.startswith("20 of 100 records of this run (20.0%) did not go")
    assert "above sync.failure_threshold 5% and sync.failure_floor 10" in v.failure
    assert stream_failure("orders", s, 0.05, 10) is not None
    assert judge({"orders": s}, SyncSettings(failure_floor=20), dry_run=False, now=NOW).failure is None


def test_the_backlog_is_not_news():
    s = stats(unchanged=11, still_rejected=1, still_invalid=3)
    backlog = {"order": {"quarantined": 3, "rejected": 1, "retrying": 0, "deferred": 0, "since": NOW - timedelta(hours=2)}}
    v = judge({"orders": s}, SyncSettings(), dry_run=False, backlog=backlog, now=NOW)
    assert v.failure is None and v.warnings == [] and not v.backlog_alert
    assert v.backlog == ("backlog: 4 records wait (orders: 1 rejected for good, 3 quarantined), the oldest for 2 h; "
                         "see `altcraft-sync quarantine --stream orders`")


def test_the_backlog_alerts_by_size_and_by_age():
    old = {"order": {"quarantined": 0, "rejected": 1, "retrying": 0, "deferred": 0, "since": NOW - timedelta(days=4)}}
    v = judge({}, SyncSettings(), dry_run=False, backlog=old, now=NOW)
    assert v.backlog_alert and v.warnings == [v.backlog] and "longer than sync.backlog_alert_hours 72" in v.backlog
    big = {"sku": {"quarantined": 101, "rejected": 0, "retrying": 0, "deferred": 0, "since": NOW}}
    v = judge({}, SyncSettings(), dry_run=False, backlog=big, now=NOW)
    assert v.backlog_alert and "above sync.backlog_alert_records 100" in (v.backlog or "")


def test_deferred_records_of_this_run_count_and_their_reason_leads():
    s = stats(delivered=10, deferred=2)
    s.deferred_reasons["the skus stream never ran: run it first (altcraft-sync sync --stream skus)"] = 2
    v = judge({"orders": s}, SyncSettings(), dry_run=False, now=NOW)
    assert v.failure is None and len(v.warnings) == 1
    assert ("2 of 12 records of this run (16.7%) did not go: orders: 2 deferred (the skus stream never ran: "
            "run it first (altcraft-sync sync --stream skus))") in v.warnings[0]


def test_a_dry_run_says_what_would_not_go_and_points_at_no_quarantine():
    v = judge({"orders": stats(new=11, invalid=1)}, SyncSettings(), dry_run=True, now=NOW)
    assert v.warnings == ["1 of 12 records would not go: orders: 1 invalid (dry run: nothing sent or recorded)"]


def test_a_stream_line_says_when_no_watermark_moved():
    from runner.reporting import stream_line

    window = stats()
    window.watermark_before, window.watermark_after = {"orders": None}, {"orders": None}
    assert stream_line(window, dry_run=False).endswith("; watermark not moved")
    nightly = stats()
    nightly.watermark_before, nightly.watermark_after = {"orders": None}, {"orders": "2026-12-01 02:00:00 / 7"}
    assert "watermark {'orders': None} -> {'orders': '2026-12-01 02:00:00 / 7'}" in stream_line(nightly, dry_run=False)
    assert stream_line(window, dry_run=True).endswith("nothing sent, watermark not moved")
