"""The sync engine end to end against the emulator, without Prefect: incremental runs, retries,
quarantine, deletes, locks, dry runs, and that the watermark never passes an unrecorded row."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from altcraft_sync.config import load_config
from altcraft_sync.errors import AltcraftAuthError, AltcraftUnavailable, StateError, StreamLocked
from connectors.altcraft import AltcraftClient
from connectors.state import StateStore
from engine.planner import key_position
from sandbox import demo_shop
from tests.conftest import TOKEN
from tests.helpers import build_shop, just_before, orders_behind, orders_down_after, run_all, shop_config


@pytest.fixture
def shop(tmp_path):
    url = f"sqlite:///{tmp_path}/shop.db"
    return url, build_shop(url, orders=300)


@pytest.fixture
def cfg_path(tmp_path, shop, emulator):
    return shop_config(tmp_path, shop[0], emulator, TOKEN)


def test_first_run_delivers_every_valid_record_and_quarantines_the_rest(cfg_path, emulator):
    stats = run_all(cfg_path)
    orders = stats["orders"]
    assert orders.failed == orders.rejected == 0
    assert orders.delivered == len(emulator.store.orders) == 300 - orders.invalid
    assert orders.invalid >= 3  # negative count, missing email, total mismatch are planted
    assert stats["skus"].invalid == 1 and stats["products"].invalid == 1
    assert len(emulator.store.skus) == stats["skus"].delivered
    assert all(count == 1 for count in emulator.import_counts.values())  # nothing sent twice
    state = StateStore(load_config(cfg_path).state)
    q = {(r["entity"], r["external_id"]): r["reasons"] for r in state.quarantine_rows()}
    assert any(r["check"] == "positive integer" and r["field"] == "lines.count" for r in q[("order", "1")])


def test_second_run_without_changes_sends_nothing(cfg_path, emulator):
    run_all(cfg_path)
    requests_before = emulator.stats["api_requests"]
    stats = run_all(cfg_path, run_id="second")
    assert sum(s.delivered + s.rejected + s.failed for s in stats.values()) == 0
    # nothing goes out: definitions are fingerprinted in the ledger and did not change
    assert emulator.stats["api_requests"] - requests_before == 0


def test_changed_line_resends_exactly_its_order(cfg_path, shop, emulator):
    run_all(cfg_path)
    engine = shop[1]
    with engine.connect() as conn:
        line_id, _order_id = conn.execute(
            sa.select(demo_shop.order_lines.c.id, demo_shop.order_lines.c.order_id)
            .where(demo_shop.order_lines.c.order_id == 50).limit(1)).one()
        order_ts = conn.execute(sa.select(demo_shop.orders.c.updated_at).where(demo_shop.orders.c.id == 50)).scalar()
    demo_shop.touch(engine, order_ids=[], line_id=line_id, at=just_before(engine))
    counts = dict(emulator.import_counts)
    stats = run_all(cfg_path, run_id="third")
    assert stats["orders"].delivered == 1
    sent = {k for k, v in emulator.import_counts.items() if v != counts.get(k, 0)}
    assert sent == {("order", "50")}
    line = next(l for l in emulator.store.orders["50"]["lines"] if l["external_id"] == str(line_id))
    assert line["status"] == "delivered" and line["custom_fields"] == {"gift_message": "Happy birthday!"}
    with engine.connect() as conn:  # the order row itself was not touched
        assert conn.execute(sa.select(demo_shop.orders.c.updated_at).where(demo_shop.orders.c.id == 50)).scalar() == order_ts


def test_rejected_record_is_retried_next_run_without_source_change(cfg_path, emulator):
    emulator.faults.update({"reject": {"42": [503, "temporarily unavailable"], "43": [409, "profile is busy"]}})
    first = run_all(cfg_path)
    assert first["orders"].failed == 1 and first["orders"].rejected == 1
    assert "42" not in emulator.store.orders and "43" not in emulator.store.orders
    state = StateStore(load_config(cfg_path).state)
    wm = state.get_watermark("orders", "orders")
    assert wm is not None  # the watermark moved on: both are recorded in the ledger, not lost
    # still refused: retried again, still pending
    second = run_all(cfg_path, run_id="second")
    assert second["orders"].retried == 2 and "42" not in emulator.store.orders
    emulator.faults.update({"reject": {}})
    third = run_all(cfg_path, run_id="third")
    assert third["orders"].retried == 2 and third["orders"].delivered == 2
    assert {"42", "43"} <= set(emulator.store.orders)
    assert state.pending("order") == []


def test_permanent_rejection_is_not_hammered(cfg_path, emulator):
    emulator.faults.update({"reject": {"42": [400, "unknown currency"]}})
    run_all(cfg_path)
    before = emulator.stats["api_requests"]
    stats = run_all(cfg_path, run_id="second")
    assert stats["orders"].retried == 0
    assert emulator.stats["api_requests"] - before == 0  # unchanged definitions are not sent again
    summary = StateStore(load_config(cfg_path).state).summary()
    assert summary["ledger"]["order"]["rejected-permanent"] == 1


def test_quarantined_row_is_sent_once_fixed(cfg_path, shop, emulator):
    run_all(cfg_path)
    engine = shop[1]
    assert "1" not in emulator.store.orders  # order 1 has a line with count -1
    with engine.begin() as conn:
        conn.execute(demo_shop.order_lines.update().where(demo_shop.order_lines.c.order_id == 1, demo_shop.order_lines.c.qty < 0)
                     .values(qty=1, updated_at=just_before(engine)))
        lines = conn.execute(sa.select(demo_shop.order_lines.c.final_price, demo_shop.order_lines.c.qty)
                             .where(demo_shop.order_lines.c.order_id == 1)).all()
        delivery = conn.execute(sa.select(demo_shop.orders.c.delivery_cost).where(demo_shop.orders.c.id == 1)).scalar()
        total = sum(p * q for p, q in lines) + delivery
        conn.execute(
            demo_shop.orders.update().where(demo_shop.orders.c.id == 1).values(total=total, updated_at=just_before(engine))
        )
    stats = run_all(cfg_path, run_id="second")
    assert "1" in emulator.store.orders and stats["orders"].invalid == 0
    state = StateStore(load_config(cfg_path).state)
    assert ("order", "1") not in {(r["entity"], r["external_id"]) for r in state.quarantine_rows()}


def test_soft_delete_deletes_in_altcraft(cfg_path, shop, emulator):
    run_all(cfg_path)
    engine = shop[1]
    with engine.begin() as conn:
        conn.execute(
            demo_shop.orders.update().where(demo_shop.orders.c.id == 60).values(is_deleted=True, updated_at=just_before(engine))
        )
        conn.execute(
            demo_shop.skus.update().where(demo_shop.skus.c.id == 5).values(is_deleted=True, updated_at=just_before(engine))
        )
    stats = run_all(cfg_path, run_id="second")
    assert stats["orders"].deleted == 1 and "60" not in emulator.store.orders
    assert stats["skus"].deleted == 1 and "S0000005" not in emulator.store.skus
    stats = run_all(cfg_path, run_id="third")  # a deleted row re-read in the lookback is not deleted twice
    assert stats["orders"].deleted == 0


def test_dry_run_sends_and_records_nothing(cfg_path, emulator):
    stats = run_all(cfg_path, dry_run=True)
    assert emulator.stats["api_requests"] == 0
    assert stats["orders"].new == 300 - stats["orders"].invalid
    assert stats["orders"].samples["new"] and stats["orders"].samples["invalid"]
    state = StateStore(load_config(cfg_path).state)
    assert state.all_watermarks() == {} and state.summary() == {"ledger": {}, "quarantine": {}}


def test_bad_token_fails_and_leaves_watermarks(cfg_path, emulator):
    run_all(cfg_path, streams=["categories"])
    state = StateStore(load_config(cfg_path).state)
    before = state.all_watermarks()
    emulator.token = "rotated-token"
    with pytest.raises(AltcraftAuthError):
        run_all(cfg_path)
    assert state.all_watermarks() == before


def _orders_stopped_after_two_chunks(tmp_path, shop, emulator, **source):
    """The catalogue synced, then a first orders sync in chunks of 50 that Altcraft stops answering after
    two chunks; returns the config and the handler that brings Altcraft back."""
    cfg = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN, chunk_size=50, **source))
    cfg.altcraft.max_attempts = 2
    cfg.altcraft.backoff_initial = 0.01
    run_all(cfg, streams=["categories", "products", "skus"])
    original = orders_down_after(emulator, 2)
    with pytest.raises(AltcraftUnavailable, match="maintenance"):
        run_all(cfg, streams=["orders"])
    return cfg, original


@pytest.mark.parametrize("first_sync_order", ["key", "cursor"])
def test_altcraft_down_mid_stream_keeps_the_last_committed_chunk(tmp_path, shop, emulator, first_sync_order):
    cfg, original = _orders_stopped_after_two_chunks(tmp_path, shop, emulator, first_sync_order=first_sync_order)
    state = StateStore(cfg.state)
    delivered = set(emulator.store.orders)
    assert 0 < len(delivered) <= 100
    # every order at or below the watermark (the key position of a key-ordered first sync) was delivered or recorded
    with shop[1].connect() as conn:
        upto = orders_behind(state, conn, first_sync_order)
    assert upto
    recorded = {e for e in upto if e in delivered} | {r["external_id"] for r in state.quarantine_rows()}
    assert set(upto) <= recorded
    emulator.handle = original
    run_all(cfg, streams=["orders"], run_id="resume")
    assert len(emulator.store.orders) == 300 - len([r for r in state.quarantine_rows() if r["entity"] == "order"])
    marks = {c for _, c in state.all_watermarks()}
    assert "orders" in marks and key_position("orders") not in marks  # a finished first sync keeps no key position


def test_an_order_changed_behind_a_stopped_first_syncs_key_position_is_sent_once_it_is_done(tmp_path, shop, emulator):
    """A key-ordered first sync stops after two chunks; then an order it had already sent changes. The run
    that finishes the read reads only the keys after its position (its child cursor, reading every line
    for the first time, happens to bring that order back too): its watermark settles at or before the bound
    the read *began* under, so whatever changed behind the position since is read again. The change
    arrives, and nothing is lost with the lookback off."""
    cfg, original = _orders_stopped_after_two_chunks(tmp_path, shop, emulator, lookback_seconds=0)
    emulator.handle = original
    state = StateStore(cfg.state)
    position = state.get_watermark("orders", key_position("orders"))
    assert position is not None
    behind = min((o for o, order in emulator.store.orders.items()
                  if int(o) <= int(position.pk) and order["status"] != "delivered"), key=int)
    time.sleep(1.1)  # a later second than the first run's bound, whatever the database clock's precision
    demo_shop.touch(shop[1], order_ids=[int(behind)], at=just_before(shop[1], 0))
    done = run_all(cfg, streams=["orders"], run_id="finishes-the-read")["orders"]
    assert done.delivered > 0 and state.get_watermark("orders", key_position("orders")) is None
    watermark = state.get_watermark("orders", "orders")
    assert watermark is not None
    with shop[1].connect() as conn:
        changed_at = conn.execute(sa.select(demo_shop.orders.c.updated_at).where(demo_shop.orders.c.id == int(behind))).scalar()
    assert str(watermark.ts) <= str(position.ts) < str(changed_at)  # the first run's bound, before the change
    run_all(cfg, streams=["orders"], run_id="next-night")
    assert emulator.store.orders[behind]["status"] == "delivered"


@pytest.mark.parametrize("first_sync_order", ["key", "cursor"])
def test_a_failed_commit_stops_every_later_commit(tmp_path, shop, emulator, monkeypatch, first_sync_order):
    """The push of chunk N+1 overlaps the commit of chunk N: when that commit fails, the run stops there
    and commits nothing after it, although Altcraft may already hold chunk N+1 (sent again next run)."""
    cfg = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN, chunk_size=50, first_sync_order=first_sync_order))
    run_all(cfg, streams=["categories", "products", "skus"])
    real, calls = StateStore.commit_chunk, []
    real_import, imports, fourth_pushed = AltcraftClient.import_groups, [], threading.Event()

    def counting_import(self, method, groups):
        report = real_import(self, method, groups)
        imports.append(method)
        if imports.count("market/orders/import") >= 4:
            fourth_pushed.set()
        return report

    carrier: set[str] = set()

    def failing_third(self, **kw):
        if kw.get("entries") and not kw.get("cursors"):  # the definitions went with one carrier order
            carrier.update(e.external_id for e in kw["entries"] if e.entity == "order")
        if kw.get("entries") and kw.get("cursors"):  # chunk commits (not the definitions' carrier)
            calls.append(len(kw["entries"]))
            if len(calls) == 3:
                assert fourth_pushed.wait(30), "the fourth chunk was never pushed during the third commit"
                raise StateError("state database is gone")
        return real(self, **kw)

    monkeypatch.setattr(AltcraftClient, "import_groups", counting_import)
    monkeypatch.setattr(StateStore, "commit_chunk", failing_third)
    with pytest.raises(StateError, match="gone"):
        run_all(cfg, streams=["orders"])
    assert len(calls) == 3  # nothing was committed after the failure
    monkeypatch.setattr(StateStore, "commit_chunk", real)
    state = StateStore(cfg.state)
    with shop[1].connect() as conn:
        upto = set(orders_behind(state, conn, first_sync_order))
    in_ledger = set(state.known("order", [str(i) for i in range(1, 301)]))
    quarantined = {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    # exactly the first two chunks, and the carrier order (the first valid row by key, wherever it sorts)
    assert len(upto) == 100 and upto | carrier == in_ledger | (quarantined & upto)
    assert len(emulator.store.orders) > len(in_ledger)  # the next chunk went out before the failure surfaced
    run_all(cfg, streams=["orders"], run_id="after-the-failure")
    quarantined = {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    assert set(emulator.store.orders) | quarantined == {str(i) for i in range(1, 301)}


def test_two_runs_of_one_stream_never_overlap(cfg_path):
    state = StateStore(load_config(cfg_path).state)
    state.acquire_lock("orders", "someone-else")
    with pytest.raises(StreamLocked, match="being synced by someone-else"):
        run_all(cfg_path, streams=["orders"])
    state.release_lock("orders", "someone-else")
    run_all(cfg_path, streams=["orders"])


def test_stale_lock_is_taken_over(cfg_path):
    cfg = load_config(cfg_path)
    cfg.state.stale_lock_seconds = 0.001
    state = StateStore(cfg.state)
    state.acquire_lock("orders", "crashed-run")

    time.sleep(0.01)
    state.acquire_lock("orders", "new-run")
    state.settings.stale_lock_seconds = 3600  # the new holder is live: nobody else gets the lock
    with pytest.raises(StreamLocked, match="new-run"):
        state.acquire_lock("orders", "third-run")


def test_pending_records_come_from_the_status_index_not_a_ledger_scan(tmp_path):
    """A run asks for pending records once per stream; over a ledger of a million delivered records that
    must be an index lookup (a scan of the entity's keys took 2 s per stream)."""
    from pydantic import SecretStr

    from altcraft_sync.config import StateSettings
    from connectors.state import LedgerEntry

    state = StateStore(StateSettings(url=SecretStr(f"sqlite:///{tmp_path}/state.db")))
    entries = [LedgerEntry("order", f"{i:05d}", i, "f", "delivered") for i in range(2000)]
    entries += [LedgerEntry("order", "x-failed", 1, "f", "failed"),
                LedgerEntry("order", "x-retryable", 2, "f", "rejected", 429, "slow down"),
                LedgerEntry("order", "x-permanent", 3, "f", "rejected", 400, "bad currency", permanent=True),
                LedgerEntry("sku", "s-failed", 4, "f", "failed")]
    state.commit_chunk(stream="orders", entries=entries)
    seen: list[tuple[str, object]] = []
    sa.event.listen(state.engine, "before_cursor_execute", lambda conn, cur, sql, params, ctx, many: seen.append((sql, params)))
    assert state.pending("order") == [("x-failed", "1"), ("x-retryable", "2")]
    sql, params = next((q, p) for q, p in seen if "FROM ledger" in q)
    with state.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    assert "ix_ledger_status" in plan, plan




def test_closing_a_syncer_stops_its_push_and_commit_threads(tmp_path, emulator) -> None:
    """A run's push and commit threads (and map workers) stop when the run ends, not when the garbage
    collector happens to reach the Syncer: a process that runs many syncs (a Prefect worker, a test
    session) must not collect idle threads."""
    import threading

    from altcraft_sync.config import load_config
    from engine.coordinator import Syncer
    from runner.runtime import open_runtime
    from tests.helpers import build_shop, shop_config

    def pipeline_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith(("push", "commit"))}

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=30)
    cfg = load_config(shop_config(tmp_path, url, emulator, TOKEN))
    before = pipeline_threads()
    rt = open_runtime(cfg, need_client=True)
    try:
        with Syncer(cfg, rt.source, rt.state, rt.client, run_id="threads") as syncer:
            stats = [syncer.sync_stream(s) for s in cfg.enabled_streams()]
            assert pipeline_threads() - before  # the run used its threads
        assert stats[-1].delivered > 0
        assert pipeline_threads() <= before  # ... and stopped them, while the Syncer is still referenced
    finally:
        rt.close()


def test_the_ids_a_full_pass_saw_are_kept_on_disk_and_answer_by_batch() -> None:
    """A stream without updated_at is read whole; what it never sees left the source. The seen ids live in
    a throwaway SQLite file (memory stays one chunk), and the file is gone once the pass ends."""
    import os

    from engine.seen import SeenIds

    seen = SeenIds()
    seen.add(str(i) for i in range(0, 3000, 2))
    seen.add(["0", "2"])  # seen again: counted once
    assert seen.count == 1500 and "4" in seen and "5" not in seen
    assert seen.missing([str(i) for i in range(10)]) == ["1", "3", "5", "7", "9"]
    assert len(seen.missing([str(i) for i in range(3000)])) == 1500  # past SQLite's parameter limit
    path = seen._path
    seen.close()
    assert not os.path.exists(path)
