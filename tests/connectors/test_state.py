"""The state store on its own: the chunk transaction, the ledger's reads, in-flight notes, locks, runs and
backfill windows. On SQLite in a temporary directory, and on the PostgreSQL and MySQL test servers when
their URLs are set (each dialect's upserts, :mod:`connectors.dialect`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from altcraft_sync.config import StateSettings
from altcraft_sync.cursor import Cursor
from altcraft_sync.errors import StreamLocked
from connectors.state import Known, LedgerEntry, StateStore
from connectors.state.schema import metadata, notes_metadata
from tests.helpers import shop_url_for


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def state(request, tmp_path):
    url = shop_url_for(request.param, tmp_path).replace("shop.db", "state.db")
    store = StateStore(StateSettings(url=SecretStr(url)))
    yield store
    metadata.drop_all(store.engine)  # a server database is shared by the runs of this test
    notes_metadata.drop_all(store.notes)
    store.close()


def test_a_chunk_commits_outcomes_quarantine_and_watermark_together(state) -> None:
    at = Cursor(datetime(2026, 1, 1, 12, 0, tzinfo=UTC), 7)
    state.commit_chunk(stream="orders", cursors={"orders": at},
                       entries=[LedgerEntry("order", "1", 1, "f1", "delivered")],
                       quarantined=[("order", "2", 2, [{"check": "email", "field": "email", "value": "x"}])])
    assert state.get_watermark("orders", "orders") == at
    assert state.known("order", ["1", "2"])["1"].status == "delivered"
    assert state.quarantined_keys("order") == [("2", "2")]
    state.commit_chunk(stream="orders", cleared=[("order", "2")])
    assert state.quarantined_ids("order") == set()


def test_raw_digests_say_which_records_may_skip_mapping(state) -> None:
    big, low = 2**63 - 1, -(2**63)  # a digest is any signed 64-bit integer
    reason = [{"check": "email", "field": "email", "value": "x"}]
    state.commit_chunk(stream="orders", entries=[
        LedgerEntry("order", "1", 1, "f1", "delivered"),
        LedgerEntry("order", "2", 2, "f2", "failed"),  # not delivered: kept without a digest
        LedgerEntry("order", "3", 3, "f3", "delivered"),  # delivered without one (before digests): always mapped
        LedgerEntry("order", "6", 6, "f6", "deferred"),
        LedgerEntry("sku", "1", 1, "s1", "delivered"),  # another entity's digest is its own
    ], quarantined=[("order", "4", 4, reason), ("order", "6", 6, reason), ("order", "7", 7, reason)],
        digests={("order", "1"): big, ("order", "2"): 7, ("order", "4"): low, ("order", "6"): 13, ("sku", "1"): 1})
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "5", 5, "f5", "delivered")],
                       digests={("order", "5"): 11})
    state.commit_chunk(stream="orders", quarantined=[("order", "5", 5, reason)], digests={("order", "5"): 12})
    assert state.raw_digests("order", ["1", "2", "3", "4", "5", "6", "7", "8"]) == {
        "1": ("delivered", big), "4": ("invalid", low), "5": ("invalid", 12)}  # 6 waits: a fresh decision
    assert state.known("order", ["1"])["1"].raw_digest == big
    # a later outcome without a digest clears it; a re-read mapped to the same payload sets it alone
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f1", "delivered")])
    assert state.raw_digests("order", ["1"]) == {}
    assert state.raw_digests("sku", ["1"]) == {"1": ("delivered", 1)}
    state.commit_chunk(stream="orders", redigested=[("order", "1", 5), ("order", "3", 6)])
    assert state.raw_digests("order", ["1", "3"]) == {"1": ("delivered", 5), "3": ("delivered", 6)}
    assert state.known("order", ["1"])["1"].fingerprint == "f1"
    state.commit_chunk(stream="orders", cleared=[("order", "5")])  # healed: the ledger's delivery counts again
    assert state.raw_digests("order", ["5"]) == {"5": ("delivered", 11)}


def test_ledger_reads_answer_for_more_ids_than_one_statement_takes(state) -> None:
    """``known`` and ``raw_digests`` read 900 ids a statement on the DBAPI cursor: every batch answers, with
    the ledger's own types (``permanent`` a bool, digests signed 64-bit), and no other entity's rows."""
    ids = [str(i) for i in range(1, 2001)]
    held = ids[::3]  # across the 900 and 1800 boundaries
    entries = [LedgerEntry("order", i, int(i), f"f{i}", "rejected" if int(i) % 2 else "delivered",
                           permanent=bool(int(i) % 2)) for i in held]
    digests = {("order", i): -(2**63) + int(i) for i in held if not int(i) % 2}
    state.commit_chunk(stream="orders", entries=[*entries, LedgerEntry("sku", "2", 2, "s2", "delivered")],
                       digests=digests)
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f1", "failed")])  # attempts 2
    known = state.known("order", ids)
    assert sorted(known, key=int) == held and "2" not in known
    assert known["1"] == Known("f1", "failed", False, 2, "1", None)
    assert known["1999"] == Known("f1999", "rejected", True, 1, "1999", None)
    assert known["1996"] == Known("f1996", "delivered", False, 0, "1996", -(2**63) + 1996)
    assert all(type(k.permanent) is bool and type(k.attempts) is int for k in known.values())
    assert state.raw_digests("order", ids) == {i: ("delivered", d) for (_, i), d in digests.items()}


def test_a_failed_commit_leaves_nothing_behind(state) -> None:
    with pytest.raises(AttributeError):
        state.commit_chunk(stream="orders", cursors={"orders": "not a cursor"},  # type: ignore[dict-item]
                           entries=[LedgerEntry("order", "1", 1, "f1", "delivered")])
    assert state.known("order", ["1"]) == {} and state.get_watermark("orders", "orders") is None


def test_attempts_count_sends_since_the_last_delivery(state) -> None:
    for status in ("failed", "failed"):
        state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f", status)])
    assert state.known("order", ["1"])["1"].attempts == 2
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f", "delivered")])
    assert state.known("order", ["1"])["1"].attempts == 0


def test_pending_is_what_a_retry_may_resend(state) -> None:
    state.commit_chunk(stream="orders", entries=[
        LedgerEntry("order", "ok", 1, "f", "delivered"),
        LedgerEntry("order", "failed", 2, "f", "failed"),
        LedgerEntry("order", "waiting", 3, "f", "deferred", None, "waiting for 'S1'"),
        LedgerEntry("order", "retryable", 4, "f", "rejected", 429, "slow down"),
        LedgerEntry("order", "permanent", 5, "f", "rejected", 400, "bad currency", permanent=True)])
    assert state.pending("order") == [("failed", "2"), ("retryable", "4"), ("waiting", "3")]
    held = state.delivered_index("order", batch=1)  # read in batches, kept hashed
    assert len(held) == 1 and "ok" in held
    assert held.contains(["ok", "failed", "waiting", "x"]).tolist() == [True, False, False, False]
    assert state.delivered_keys("order", 10) == ["1"]


def test_a_renamed_record_is_found_by_its_source_key(state) -> None:
    state.commit_chunk(stream="skus", entries=[LedgerEntry("sku", "OLD", 5, "f", "delivered"),
                                               LedgerEntry("sku", "GONE", 6, "f", "deleted")])
    assert state.former_ids("sku", [("NEW", 5), ("OTHER", 6)]) == [("OLD", "5")]
    assert state.has_records("sku") and not state.has_records("order")


def test_in_flight_notes_name_what_a_dead_run_may_have_sent_until_settled(state) -> None:
    state.begin_send("b1", "order", [("1", 1), ("2", 2)])
    batches, records = state.unsettled("order")
    assert batches == ["b1"] and sorted(records) == [("1", "1"), ("2", "2")]
    state.settle(["b1"])
    assert state.unsettled("order") == ([], [])


def test_a_live_lock_refuses_in_one_line_and_a_released_one_is_free(state) -> None:
    state.acquire_lock("orders", "run-a")
    with pytest.raises(StreamLocked) as err:
        state.acquire_lock("orders", "run-b")
    assert "run-a" in str(err.value) and "\n" not in str(err.value)
    state.release_lock("orders", "run-a")
    state.acquire_lock("orders", "run-b")


def test_runs_and_backfill_windows_are_recorded(state) -> None:
    state.start_run("r1", "nightly")
    state.record_stream("r1", "orders", {"delivered": 3})
    state.finish_run("r1", "completed")
    [run] = state.last_runs(1)
    assert run["run_id"] == "r1" and run["status"] == "completed"
    state.mark_window("bf", "orders", "2026-01-01", "2026-01-08", "done", {"delivered": 1})
    assert state.window_status("bf", "orders") == {"2026-01-01": "done"}
    state.reset_backfill("bf")
    assert state.window_status("bf", "orders") == {}


def test_opening_a_version_3_database_makes_its_permanently_rejected_categories_retryable(state) -> None:
    """The schema 4 upgrade on each state database (``connectors.state.schema.RECONSIDERED``)."""
    state.commit_chunk(stream="categories", entries=[LedgerEntry("category", "6", 6, "c", "rejected", 400, "x", permanent=True)])
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o", "rejected", 400, "x", permanent=True)])
    with state.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 3"))
    again = StateStore(state.settings)
    try:
        assert again.pending("category") == [("6", "6")] and again.pending("order") == []
    finally:
        again.close()
