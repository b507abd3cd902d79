"""The Prefect ``<kind>-streams`` table artifact (runner/reporting.stream_rows) has the columns the README
lists: the figures with deleted, the watermark before and after the run, and the lag."""

from __future__ import annotations

from engine.stats import StreamStats
from runner.reporting import stream_rows


def test_the_streams_artifact_has_deleted_and_the_watermark_before_and_after():
    s = StreamStats("orders")
    s.add(extracted=10, delivered=7, deleted=3, retried=1)
    s.watermark_before = {"orders": "2026-12-01 02:00:00.123456 / 41"}
    s.watermark_after = {"orders": "2026-12-02 02:00:07.000000 / 97", "orders_lines": "2026-12-02 01:00:00"}
    s.lag_seconds = 12.4
    row = stream_rows({"orders": s})[0]
    assert row["deleted"] == 3 and row["delivered"] == 7 and row["retried"] == 1
    assert row["watermark before"] == "2026-12-01 02:00:00" and row["watermark after"] == "2026-12-02 02:00:07"
    assert row["lag (s)"] == 12
    first = StreamStats("categories")  # a first run: nothing before
    first.watermark_after = {"categories": "2026-12-02 02:00:00"}
    row = stream_rows({"categories": first})[0]
    assert row["watermark before"] == "-" and row["watermark after"] == "2026-12-02 02:00:00"
    expected = ["stream", "extracted", "delivered", "unchanged", "invalid", "rejected", "deferred", "failed",
                "deleted", "retried", "watermark before", "watermark after", "lag (s)"]
    assert list(row) == expected
