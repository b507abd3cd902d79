"""The planner's bounds (one plan per cursor) and its read loop, over a list source, a dict ledger and a
recording pipeline feed."""

from __future__ import annotations

from datetime import timedelta

from altcraft_sync.cursor import Cursor
from engine.commit import Committer
from engine.planner import WORKERS_AFTER_FULL_PAGES, CursorPlan, Planner
from engine.stats import StreamStats
from tests.engine.fakes import T0, DictState, ListSource, RecordingFeed, Table, context, demo_config


def planner(tmp_path, tables, state=None, chunk_size=2, **options):
    source = ListSource(tables)
    config = demo_config(tmp_path)
    config.source.chunk_size = chunk_size
    config.source.lookback_seconds = 30
    feed = RecordingFeed()
    ctx = context(config, state or DictState(), source, **options)
    return Planner(ctx, feed, Committer(ctx)), feed, source


def rows(n, start=T0):
    return [(pk, start + timedelta(minutes=pk), str(pk)) for pk in range(1, n + 1)]


def incremental(stream, name, upper=None, watermark=None):
    return CursorPlan(stream, name, watermark, None, upper, keeps_watermark=True, read_in_full=False)


def test_an_incremental_cursor_reads_from_the_watermark_minus_the_lookback_up_to_the_margin(tmp_path) -> None:
    state = DictState()
    wm = Cursor(T0 + timedelta(hours=1), 60)
    state.watermarks[("orders", "orders")] = wm
    p, _, source = planner(tmp_path, {"orders": Table([])}, state)
    plan = p.plan("orders", "orders", None, source.now)
    assert plan.watermark == wm and plan.keeps_watermark and not plan.is_child
    assert plan.start == Cursor(wm.ts - timedelta(seconds=30), None)
    assert plan.upper == source.now - timedelta(seconds=60)  # the demo's safety margin


def test_a_first_run_reads_from_the_beginning_and_a_full_read_has_no_bounds(tmp_path) -> None:
    p, _, source = planner(tmp_path, {"orders": Table([]), "categories": Table([], has_ts=False)})
    first = p.plan("orders", "orders", None, source.now)
    assert (first.watermark, first.start) == (None, None)
    full = p.plan("categories", "categories", None, source.now)
    assert full.read_in_full and not full.keeps_watermark and (full.start, full.upper) == (None, None)


def test_a_window_never_reads_past_the_clock_minus_the_margin_nor_moves_the_watermark(tmp_path) -> None:
    state = DictState()
    state.watermarks[("orders", "orders")] = Cursor(T0, 1)
    p, _, source = planner(tmp_path, {"orders": Table([])}, state)
    since, until = T0 - timedelta(days=3), source.now + timedelta(days=3)
    plan = p.plan("orders", "orders", (since, until), source.now)
    assert plan.watermark is None and not plan.keeps_watermark and plan.start == Cursor(since, None)
    assert plan.upper == source.now - timedelta(seconds=60)
    assert p.plan("orders", "orders", (since, T0), source.now).upper == T0


def test_each_chunk_carries_the_newest_cursor_read_so_far(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(5))})
    last = p.run_cursor(incremental("orders", "orders", T0 + timedelta(hours=1)), StreamStats("orders"))
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [3, 4], [5]]
    assert [c.pk for _, _, c, _ in feed.chunks] == [2, 4, 5]
    assert last == Cursor(T0 + timedelta(minutes=5), 5)


def test_a_change_set_of_more_than_a_page_is_counted_once_for_the_progress_bar(tmp_path) -> None:
    p, _, _ = planner(tmp_path, {"orders": Table(rows(7))})
    p.ctx.count_totals = True  # a progress bar with an ETA is drawn
    stats = StreamStats("orders")
    p.run_cursor(incremental("orders", "orders", T0 + timedelta(minutes=6)), stats)
    assert stats.total == 6 and stats.extracted <= 6  # the bound leaves the 7th out
    p, _, _ = planner(tmp_path, {"orders": Table(rows(2))}, chunk_size=3)
    p.ctx.count_totals = True
    small = StreamStats("orders")
    p.run_cursor(incremental("orders", "orders"), small)
    assert small.total is None  # one page: nothing to estimate, no count asked


def test_nobody_drawing_an_eta_means_no_count_of_the_rows_ahead(tmp_path) -> None:
    p, feed, source = planner(tmp_path, {"orders": Table(rows(7))})
    asked: list[object] = []
    source.count_between = lambda *a: asked.append(a) or 0  # type: ignore[method-assign]
    stats = StreamStats("orders")
    p.run_cursor(incremental("orders", "orders", T0 + timedelta(minutes=6)), stats)
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [3, 4], [5, 6]]  # read as before
    assert stats.total is None and asked == []


def test_a_window_hands_no_cursor_to_the_pipeline(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(3))})
    plan = CursorPlan("orders", "orders", None, None, None, keeps_watermark=False, read_in_full=False)
    assert p.run_cursor(plan, StreamStats("orders")) is not None
    assert [c for _, _, c, _ in feed.chunks] == [None, None]


def test_map_workers_start_only_after_enough_full_pages(tmp_path) -> None:
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2 * WORKERS_AFTER_FULL_PAGES - 1))})
    p.run_cursor(incremental("orders", "orders"), StreamStats("orders"))
    assert feed.mapper.starts == 0
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2 * WORKERS_AFTER_FULL_PAGES))})
    p.run_cursor(incremental("orders", "orders"), StreamStats("orders"))
    assert feed.mapper.starts == 1


def test_a_child_cursor_sends_its_parents_and_moves_past_rows_it_left_out(tmp_path) -> None:
    """Line 11 changed alone: its order 2 goes out. Line 12 belongs to order 1, which the parent cursor
    read in this run: left out, yet the child cursor moves past it once the pipeline drained."""
    lines = Table([(11, T0 + timedelta(minutes=1), "l11"), (12, T0 + timedelta(minutes=2), "l12")],
                  parents_of={11: 2, 12: 1})
    state = DictState()
    p, feed, _ = planner(tmp_path, {"orders": Table(rows(2)), "orders.lines": lines}, state)
    upper = T0 + timedelta(seconds=90)  # the parent cursor reads order 1 only
    p.sync_cursor(incremental("orders", "orders", upper), StreamStats("orders"))
    feed.chunks.clear()
    last = p.run_cursor(incremental("orders", "orders.lines", upper=T0 + timedelta(hours=1)), StreamStats("orders"))
    assert [(s, keys, name) for s, keys, _, name in feed.chunks] == [("orders", [2], "orders.lines")]
    assert feed.chunks[0][2] == Cursor(T0 + timedelta(minutes=1), 11)
    assert last == Cursor(T0 + timedelta(minutes=2), 12)
    assert state.watermarks[("orders", "orders.lines")] == last


def test_a_cursor_that_does_not_advance_while_the_source_has_newer_rows_is_stale(tmp_path) -> None:
    p, _, source = planner(tmp_path, {"orders": Table(rows(3))})
    p.run_cursor = lambda plan, stats: plan.watermark  # a broken reader
    stats = StreamStats("orders")
    p.sync_cursor(p.plan("orders", "orders", None, source.now), stats)
    assert stats.stale
    p2, _, _ = planner(tmp_path, {"orders": Table(rows(3))})
    fine = StreamStats("orders")
    p2.sync_cursor(p2.plan("orders", "orders", None, source.now), fine)
    assert not fine.stale and fine.watermark_after["orders"].endswith("/ 3")


def stored_apart(minutes_of):
    """Rows whose key order is not their time order, as a shop stores orders (by id) that changed later."""
    return [(pk, T0 + timedelta(minutes=m), str(pk)) for pk, m in minutes_of]


SHUFFLED = [(1, 5), (2, 3), (3, 9), (4, 1), (5, 7)]


def test_a_first_sync_reads_in_key_order_and_writes_the_watermark_once_after_its_last_page(tmp_path) -> None:
    state = DictState()
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED))}, state)
    plan = p.plan("orders", "orders", None, source.now)
    assert plan.by_key and plan.settles_at == plan.upper
    p.sync_cursor(plan, StreamStats("orders"))
    assert source.key_ordered == [True]
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [3, 4], [5]]
    # no page moves the watermark: each moves the key position, as of the bound the read began under
    assert [(c, name) for _, _, c, name in feed.chunks] == [(Cursor(plan.upper, k), "orders@first-sync") for k in (2, 4, 5)]
    assert state.watermarks == {("orders", "orders"): Cursor(T0 + timedelta(minutes=9), 3)}  # the newest read
    # the next run goes on from there in cursor order
    again = p.plan("orders", "orders", None, source.now)
    assert not again.by_key and again.watermark == Cursor(T0 + timedelta(minutes=9), 3)
    p.sync_cursor(again, StreamStats("orders"))
    assert source.key_ordered == [True, False]


def test_a_first_sync_that_stopped_half_way_goes_on_after_its_last_committed_key(tmp_path) -> None:
    """An earlier run read keys 1 and 2 under a bound of minute 6 and stopped. This run reads the keys after
    2 only; the watermark settles at the newest row at or before that earlier bound (key 1 at minute 5),
    not this run's: rows the earlier run read may have changed since, and the next run re-reads from there.
    The key position goes in the same commit."""
    state = DictState()
    earlier = T0 + timedelta(minutes=6)
    state.watermarks[("orders", "orders@first-sync")] = Cursor(earlier, 2)
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED))}, state)
    plan = p.plan("orders", "orders", None, source.now)
    assert plan.by_key and plan.start == Cursor(earlier, 2) and plan.settles_at == earlier
    stats = StreamStats("orders")
    p.sync_cursor(plan, stats)
    assert [keys for _, keys, _, _ in feed.chunks] == [[3, 4], [5]]
    assert [c for _, _, c, _ in feed.chunks] == [Cursor(earlier, 4), Cursor(earlier, 5)]
    assert state.watermarks == {("orders", "orders"): Cursor(T0 + timedelta(minutes=5), 1)}
    assert not stats.stale


def test_a_first_sync_stopped_after_its_last_page_sets_its_watermark_on_the_next_run(tmp_path) -> None:
    state = DictState()
    state.watermarks[("orders", "orders@first-sync")] = Cursor(T0 + timedelta(hours=1), 5)
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED))}, state)
    p.sync_cursor(p.plan("orders", "orders", None, source.now), StreamStats("orders"))
    assert feed.chunks == []
    assert state.watermarks == {("orders", "orders"): Cursor(T0 + timedelta(minutes=9), 3)}


def test_a_child_cursor_after_a_resumed_first_sync_leaves_out_only_this_runs_parents(tmp_path) -> None:
    """Order 1 was read by an earlier run; its line 11 may have changed since, so the child cursor does not
    leave it out. Order 4's line 14 is left out: this run read order 4 with its lines."""
    lines = Table([(11, T0 + timedelta(minutes=1), "l11"), (14, T0 + timedelta(minutes=2), "l14")],
                  parents_of={11: 1, 14: 4})
    state = DictState()
    state.watermarks[("orders", "orders@first-sync")] = Cursor(T0 + timedelta(hours=1), 2)
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED)), "orders.lines": lines}, state)
    p.sync_cursor(p.plan("orders", "orders", None, source.now), StreamStats("orders"))
    feed.chunks.clear()
    p.run_cursor(p.plan("orders", "orders.lines", None, source.now), StreamStats("orders"))
    assert [keys for _, keys, _, _ in feed.chunks] == [[1]]


def test_a_child_cursor_after_a_fresh_first_sync_reads_nothing_and_moves_to_its_newest_row(tmp_path) -> None:
    """A first sync read every order up to its bound, with their lines, by key from the first. The only
    lines the child cursor could still find are those of orders changed past the bound (order 3's line
    13): it does not read at all (a pass over every line) and moves to its newest line at or before the
    bound; the next run's parent cursor reads order 3 (its lines come with it)."""
    lines = Table([(11, T0 + timedelta(minutes=2), "l11"), (13, T0 + timedelta(minutes=4), "l13"),
                   (15, T0 + timedelta(minutes=6), "l15")], parents_of={11: 1, 13: 3, 15: 5})
    state = DictState()
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED)), "orders.lines": lines}, state)
    margin = timedelta(seconds=p.ctx.config.source.safety_margin_seconds)
    now = T0 + timedelta(minutes=8) + margin  # the bound: minute 8, before order 3 (minute 9)
    stats = StreamStats("orders")
    p.sync_cursor(p.plan("orders", "orders", None, now), stats)
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [4, 5]]
    feed.chunks.clear()
    p.sync_cursor(p.plan("orders", "orders.lines", None, now), stats)
    assert feed.chunks == [] and [name for name, _, _ in source.reads] == ["orders"]
    assert state.watermarks[("orders", "orders.lines")] == Cursor(T0 + timedelta(minutes=6), 15)
    assert not stats.stale
    later = now + timedelta(minutes=5)
    p.sync_cursor(p.plan("orders", "orders", None, later), StreamStats("orders"))
    assert 3 in [k for _, keys, _, _ in feed.chunks for k in keys]


def test_first_sync_order_cursor_reads_a_first_sync_as_every_later_run(tmp_path) -> None:
    state = DictState()
    p, feed, source = planner(tmp_path, {"orders": Table(stored_apart(SHUFFLED))}, state)
    p.ctx.config.source.first_sync_order = "cursor"
    plan = p.plan("orders", "orders", None, source.now)
    assert not plan.by_key
    p.sync_cursor(plan, StreamStats("orders"))
    assert source.key_ordered == [False]
    assert [keys for _, keys, _, _ in feed.chunks] == [[4, 2], [1, 5], [3]]
    assert [c.pk for _, _, c, _ in feed.chunks] == [2, 5, 3]  # each page moves the watermark


def test_only_a_parent_cursor_without_a_watermark_or_a_window_reads_in_key_order(tmp_path) -> None:
    lines = Table([(11, T0 + timedelta(minutes=1), "l11")], parents_of={11: 2})
    state = DictState()
    p, _, source = planner(tmp_path, {"orders": Table(rows(2)), "orders.lines": lines,
                                      "categories": Table(rows(2))}, state)
    assert p.plan("orders", "orders", None, source.now).by_key
    assert not p.plan("orders", "orders.lines", None, source.now).by_key  # children: their own cursor
    assert not p.plan("orders", "orders", (T0, source.now), source.now).by_key  # a backfill window
    assert not p.plan("categories", "categories", None, source.now).by_key  # sent whole, parents first
    state.watermarks[("orders", "orders")] = Cursor(T0, 1)
    assert not p.plan("orders", "orders", None, source.now).by_key
