"""User-facing counts agree in number (``1 record``, ``1 chunk``) and a backlog a few seconds old is not
said to be a minute old."""

from __future__ import annotations

from datetime import timedelta

from altcraft_sync.config import SyncSettings
from altcraft_sync.wording import plural
from cli.progress import sync_text
from runner.outcome import committed, judge
from tests.runner.test_outcome_rules import NOW, stats


def test_plural_agrees_with_the_count():
    assert [plural(n, "record") for n in (0, 1, 2)] == ["0 records", "1 record", "2 records"]
    assert plural(1, "ledger entry", "ledger entries") == "1 ledger entry"
    assert plural(3, "ledger entry", "ledger entries") == "3 ledger entries"


def test_one_record_and_one_chunk_are_singular():
    one = {"order": {"quarantined": 1, "rejected": 0, "retrying": 0, "deferred": 0, "since": NOW}}
    v = judge({}, SyncSettings(), dry_run=False, backlog=one, now=NOW)
    assert v.backlog and v.backlog.startswith("backlog: 1 record wait")
    bad = judge({"orders": stats(rejected=1)}, SyncSettings(), dry_run=False, now=NOW)
    assert bad.failure is None and bad.warnings[0].startswith("1 of 1 record of this run (100.0%) did not go")
    s = stats("skus", chunks=1, delivered=5)
    assert committed({"skus": s}, set()) == "skus 1 chunk (5 delivered)"
    s.extracted = 5
    assert "· 1 chunk ·" in sync_text(s)


def test_a_backlog_seconds_old_is_under_a_minute():
    def age(seconds: float) -> str:
        b = {"order": {"quarantined": 2, "rejected": 0, "retrying": 0, "deferred": 0,
                       "since": NOW - timedelta(seconds=seconds)}}
        line = judge({}, SyncSettings(), dry_run=False, backlog=b, now=NOW).backlog or ""
        return line.split("the oldest for ")[1].split(";")[0]

    assert age(5) == "< 1 min" and age(90) == "2 min" and age(3 * 3600) == "3 h"
