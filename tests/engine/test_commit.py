"""The one writer of watermarks: a chunk's commit moves the cursor only when it moved; a dry run commits
nothing."""

from __future__ import annotations

from altcraft_sync.cursor import Cursor
from connectors.state import LedgerEntry
from engine.commit import Committer
from tests.engine.fakes import T0, DictState, context, demo_config


def test_a_watermark_is_written_only_when_it_moves(tmp_path) -> None:
    state = DictState()
    c = Committer(context(demo_config(tmp_path), state))
    c.start("orders", Cursor(T0, 1))
    c.commit("orders", cursor=("orders", Cursor(T0, 1)))  # a lookback re-read of unchanged rows
    c.commit("orders", cursor=("orders", Cursor(T0, 2)))
    c.commit("orders", cursor=("orders", None))
    assert [x["cursors"] for x in state.commits] == [{}, {"orders": Cursor(T0, 2)}, {}]
    assert state.watermarks == {("orders", "orders"): Cursor(T0, 2)}


def test_outcomes_and_the_in_flight_note_settle_together(tmp_path) -> None:
    state = DictState()
    state.notes["b1"] = ("order", [("1", "1")])
    c = Committer(context(demo_config(tmp_path), state))
    c.commit("orders", entries=[LedgerEntry("order", "1", 1, "f", "delivered")], settle=["b1"])
    assert state.status("order", "1") == "delivered" and state.notes == {}


def test_a_dry_run_commits_nothing(tmp_path) -> None:
    state = DictState()
    c = Committer(context(demo_config(tmp_path), state, dry_run=True))
    c.commit("orders", entries=[LedgerEntry("order", "1", 1, "f", "delivered")], cursor=("orders", Cursor(T0, 1)))
    assert state.commits == [] and state.watermarks == {}


def test_a_committed_chunk_is_a_debug_line(tmp_path, caplog) -> None:
    """``-v`` shows each committed chunk: its stream, how many records, where its cursor stands."""
    import logging

    ctx = context(demo_config(tmp_path), DictState())
    ctx.log = logging.getLogger("altcraft_sync.run")
    c = Committer(ctx)
    c.start("orders", None)
    with caplog.at_level(logging.DEBUG, logger="altcraft_sync.run"):
        c.commit("orders", entries=[LedgerEntry("order", str(i), i, "f", "delivered") for i in (1, 2)],
                 cursor=("orders", Cursor(T0, 2)))
        c.commit("orders", entries=[LedgerEntry("order", "3", 3, "f", "delivered")], cursor=("orders", Cursor(T0, 2)))
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert lines == [f"orders: committed 2 ledger entries, 0 records quarantined; cursor orders at {T0} / 2",
                     "orders: committed 1 ledger entry, 0 records quarantined; cursor unchanged"]
