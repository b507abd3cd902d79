"""Imports, deletes and repair (the retry pass, the quarantine re-read, reconcile) with a recording client
and a recording pipeline feed."""

from __future__ import annotations

from connectors.altcraft import Outcome
from engine.carriers import Carriers
from engine.commit import Committer
from engine.dependencies import Dependencies
from engine.dispatch import Dispatcher
from engine.ledger_view import LedgerView
from engine.repair import Repair
from engine.stats import StreamStats
from tests.engine.fakes import (
    T0,
    DictReader,
    DictState,
    ListSource,
    RecordingClient,
    RecordingFeed,
    Table,
    context,
    demo_config,
    payload,
)

STREAMS = ("categories", "products", "skus", "orders")


def parts(tmp_path, state, client=None, rows=None, chunk_size=None, **options):
    source = ListSource({name: Table(list((rows or {}).get(name, []))) for name in STREAMS})
    config = demo_config(tmp_path)
    if chunk_size:
        config.source.chunk_size = chunk_size
    ctx = context(config, state, source, client or RecordingClient(), **options)
    committer = Committer(ctx)
    dispatcher = Dispatcher(ctx, Carriers(ctx, Dependencies(ctx), DictReader({}), committer), LedgerView(ctx))
    feed = RecordingFeed()
    return dispatcher, Repair(ctx, feed, dispatcher, committer), feed, ctx


def test_every_outcome_becomes_its_ledger_entry(tmp_path) -> None:
    client = RecordingClient({"2": Outcome("2", "rejected", 400, "bad", permanent=True), "3": Outcome("3", "failed")})
    dispatcher, _, _, ctx = parts(tmp_path, DictState(), client, skip_triggers=True)
    stats = StreamStats("orders")
    entries = dispatcher.push("orders", [payload("1"), payload("2"), payload("3")], stats)
    assert [(e.external_id, e.status, e.permanent) for e in entries] == [
        ("1", "delivered", False), ("2", "rejected", True), ("3", "failed", False)]
    assert client.calls[0][3] == {"skip_triggers": True}
    assert (stats.delivered, stats.rejected, stats.failed) == (1, 1, 1)
    assert ctx.memory.attempted == {("order", "2"), ("order", "3")}  # not again in this run's retry


def test_a_soft_delete_reaches_only_what_altcraft_may_hold(tmp_path) -> None:
    state = DictState()
    state.put("sku", "A")
    state.put("sku", "B", "deleted")
    state.notes["dead-run"] = ("sku", [("C", "3")])
    client = RecordingClient()
    dispatcher, _, _, _ = parts(tmp_path, state, client)
    stats = StreamStats("skus")
    entries = dispatcher.delete("skus", [("A", 1), ("B", 2), ("C", 3), ("never-sent", 4)], stats)
    assert client.calls == [("delete", "market/sku/delete", ["A", "C"], {"one_by_one": False})]
    assert [(e.external_id, e.status) for e in entries] == [("A", "deleted"), ("C", "deleted")]
    assert stats.deleted == 2


def test_the_retry_pass_feeds_pending_records_in_chunks_and_skips_this_runs_attempts(tmp_path) -> None:
    state = DictState()
    for pk in range(1, 6):
        state.put("order", str(pk), "failed", pk=pk)
    state.put("order", "6", "rejected", pk=6, permanent=True)  # waits for its data to change
    rows = {"orders": [(pk, T0, str(pk)) for pk in range(1, 7)]}
    _, repair, feed, ctx = parts(tmp_path, state, rows=rows, chunk_size=2)
    ctx.memory.attempted.add(("order", "5"))
    stats = StreamStats("orders")
    repair.retry_pending("orders", stats)
    assert [keys for _, keys, _, _ in feed.chunks] == [[1, 2], [3, 4]]
    assert all(cursor is None for _, _, cursor, _ in feed.chunks)  # a retry never moves a watermark
    assert stats.retried == 4


def test_the_quarantine_reread_skips_what_this_run_quarantined_and_counts_the_backlog_apart(tmp_path) -> None:
    state = DictState()
    state.quarantine.update({("order", "1"): "1", ("order", "2"): "2"})
    rows = {"orders": [(1, T0, "1"), (2, T0, "2")]}
    _, repair, feed, ctx = parts(tmp_path, state, rows=rows)
    ctx.memory.quarantined_now["order"] = {"2"}
    stats = StreamStats("orders")
    repair.heal_quarantine("orders", stats)
    assert [keys for _, keys, _, _ in feed.chunks] == [[1]] and feed.drains == 1


def test_reconcile_deletes_what_left_the_source_and_clears_its_quarantine(tmp_path) -> None:
    state = DictState()
    for ext in ("1", "2", "3"):
        state.put("order", ext, pk=int(ext))
    state.quarantine[("order", "4")] = "4"
    client = RecordingClient()
    _, repair, _, _ = parts(tmp_path, state, client, rows={"orders": [(1, T0, "1")]})
    stats = repair.reconcile("orders")
    assert client.calls == [("delete", "market/orders/delete", ["2", "3"], {"one_by_one": True})]
    assert stats.extracted == 1 and stats.deleted == 2
    assert state.status("order", "2") == "deleted" and state.quarantine == {}


def test_what_altcraft_cannot_delete_is_reported_and_marked_once(tmp_path) -> None:
    state = DictState()
    state.put("category", "c1")
    client = RecordingClient()
    _, repair, _, _ = parts(tmp_path, state, client)
    stats = repair.reconcile("categories")
    assert client.calls == [] and "no delete method" in stats.warnings[0]
    assert state.status("category", "c1") == "deleted"
    assert repair.reconcile("categories").warnings == []  # reported once


def test_a_dry_run_reconcile_counts_and_changes_nothing(tmp_path) -> None:
    state = DictState()
    state.put("order", "1", pk=1)
    client = RecordingClient()
    _, repair, _, _ = parts(tmp_path, state, client, dry_run=True)
    stats = repair.reconcile("orders")
    assert stats.deleted == 1 and client.calls == [] and state.commits == []
