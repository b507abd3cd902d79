"""The planner's bounds and its read loop, over a list source and a recording pipeline feed."""

from __future__ import annotations

from datetime import timedelta

from altcraft_sync.cursor import Cursor
from engine.planner import WORKERS_AFTER_FULL_PAGES, Planner
from engine.stats import StreamStats
from tests.engine.fakes import T0, DictState, ListSource, RecordingFeed, Table, context, demo_config


def planner(tmp_path, tables, state=None, chunk_size=2, **options):
    source = ListSource(tables)
    config = demo_config(tmp_path)
    config.source.chunk_size = chunk_size
    config.source.lookback_seconds = 30
    feed = RecordingFeed()
    return Planner(context(config, state or DictState(), source, **options), feed), feed, source


def rows(n, start=T0):
    return [(pk, start + timedelta(minutes=pk), str(pk)) for pk in range(1, n + 1)]


def test_an_incremental_cursor_reads_from_the_watermark_minus_the_lookback_up_to_the_margin(tmp_path) -> None:
    state = DictState()
    wm = Cursor(T0 + timedelta(hours=1), 60)
    state.watermarks[("orders", "orders")] = wm
    p, _, source = planner(tmp_path, {"orders": Table([])}, state)
    got_wm, start, upper = p.bounds("orders", "orders", None, source.now)
    assert got_wm == wm
    assert start == Cursor(wm.ts - timedelta(seconds=30), None)
    assert upper == source.now - timedelta(seconds=60)  # the demo's safety margin


def test_a_first_run_reads_from_the_beginning_and_a_full_read_has_no_bounds(tmp_path) -> None:
    p, _, source = planner(tmp_path, {"orders": Table([]), "categories": Table([], has_ts=False)})
    assert p.bounds("orders", "orders", None, source.now)[:2] == (None, None)
    assert p.bounds("categories", "categories", None, source.now) == (None, None, None)


def test_a_window_never_reads_past_the_clock_minus_the_margin_nor_the_watermark(tmp_path) -> None:
    state = DictState()
    state.watermarks[("orders", "orders")] = Cursor(T0, 1)
    p, _, source = planner(tmp_path, {"orders": Table([])}, state)
    since, until = T0 - timedelta(days=3), source.now + timedelta(days=3)
    wm, start, upper = p.bounds("orders", "orders", (since, until), source.now)
    assert wm is None and start == Cursor(since, None)
    assert upper == source.now - timedelta(seconds=60)
    assert p.bounds("orders", "orders", (since, T0), source.now)[2] == T0


def test_each_chunk_carries_the_newest_cursor_read_so_far(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(5))})
    last = p.run_cursor("orders", "orders", None, T0 + timedelta(hours=1), None, StreamStats("orders"), commit_watermark=True)
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [3, 4], [5]]
    assert [c.pk for _, _, c, _ in feed.chunks] == [2, 4, 5]
    assert last == Cursor(T0 + timedelta(minutes=5), 5)


def test_a_window_moves_no_watermark(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(3))})
    last = p.run_cursor("orders", "orders", None, None, None, StreamStats("orders"), commit_watermark=False)
    assert [c for _, _, c, _ in feed.chunks] == [None, None] and last is not None and feed.committed == []


def test_map_workers_start_only_after_enough_full_pages(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2 * WORKERS_AFTER_FULL_PAGES - 1))})
    p.run_cursor("orders", "orders", None, None, None, StreamStats("orders"), commit_watermark=True)
    assert feed.mapper.starts == 0
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2 * WORKERS_AFTER_FULL_PAGES))})
    p.run_cursor("orders", "orders", None, None, None, StreamStats("orders"), commit_watermark=True)
    assert feed.mapper.starts == 1


def test_a_child_cursor_sends_its_parents_and_moves_past_rows_it_left_out(tmp_path) -> None:
    lines = Table([(11, T0 + timedelta(minutes=1), "l11"), (12, T0 + timedelta(minutes=2), "l12")],
                  parents_of={11: 1, 12: 1})
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2)), "orders.lines": lines})
    last = p.run_cursor("orders", "orders.lines", None, None, None, StreamStats("orders"), commit_watermark=True)
    assert [(s, keys, name) for s, keys, _, name in feed.chunks] == [("orders", [1], "orders.lines")]
    assert last == Cursor(T0 + timedelta(minutes=2), 12)


def test_a_cursor_that_does_not_advance_while_the_source_has_newer_rows_is_stale(tmp_path) -> None:
    p, _, _ = planner(tmp_path, {"orders": Table(rows(3))})
    p.run_cursor = lambda stream, name, start, upper, wm, stats, *, commit_watermark: wm  # a broken reader
    stats = StreamStats("orders")
    p.sync_cursor("orders", "orders", None, T0 + timedelta(days=1), stats)
    assert stats.stale
    p2, _, _ = planner(tmp_path, {"orders": Table(rows(3))})
    fine = StreamStats("orders")
    p2.sync_cursor("orders", "orders", None, T0 + timedelta(days=1), fine)
    assert not fine.stale and fine.watermark_after["orders"].endswith("/ 3")
