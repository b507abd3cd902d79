"""Carriers: definitions ride with one real record before a stream's first one; categories ride with a
product or SKU, or wait."""

from __future__ import annotations

from connectors.altcraft import Outcome
from engine.carriers import Carriers
from engine.commit import Committer
from engine.dependencies import Dependencies
from engine.stats import StreamStats
from tests.engine.fakes import DictReader, DictState, ListSource, RecordingClient, Table, context, demo_config, payload

STREAMS = ("categories", "products", "skus", "orders")


def carriers(tmp_path, state, reader, client=None, **options):
    source = ListSource({name: Table([(1, None, "x")]) for name in STREAMS})
    ctx = context(demo_config(tmp_path), state, source, client or RecordingClient(), **options)
    return Carriers(ctx, Dependencies(ctx), reader, Committer(ctx)), ctx


def test_definitions_go_once_with_a_delivered_record_and_skip_triggers(tmp_path) -> None:
    state, client = DictState(), RecordingClient()
    state.put("order", "10", pk=10)
    reader = DictReader({"orders": {10: (payload("10", pk=10), [])}})
    c, _ = carriers(tmp_path, state, reader, client)
    c.send_definitions("orders", StreamStats("orders"))
    [(kind, method, ids, roots)] = client.calls
    assert (kind, method, ids) == ("roots", "market/orders/import", ["10"])
    assert roots["skip_triggers"] is True  # a re-sent, unchanged order fires no trigger
    assert {d["external_id"] for d in roots["custom_fields"]} == {"gift_wrap", "gift_message"}
    assert [d["external_id"] for d in roots["custom_line_statuses"]] == ["pickup_point"]
    assert state.status("custom_field", "gift_wrap") == state.status("line_status", "pickup_point") == "delivered"
    assert state.notes == {}  # the carrier's in-flight note is settled
    c.send_definitions("orders", StreamStats("orders"))
    assert len(client.calls) == 1  # nothing changed: nothing sent


def test_without_a_valid_record_definitions_wait_with_a_warning(tmp_path) -> None:
    client = RecordingClient()
    c, _ = carriers(tmp_path, DictState(), DictReader({}), client)
    stats = StreamStats("orders")
    c.send_definitions("orders", stats)
    assert client.calls == [] and "wait for a order to carry them" in stats.warnings[0]


def test_a_carrier_that_refers_to_something_undelivered_is_no_carrier(tmp_path) -> None:
    reader = DictReader({"orders": {1: (payload("1", pk=1), ["S-unknown"])}})
    c, _ = carriers(tmp_path, DictState(), reader)
    assert c.carrier("orders") is None


def test_categories_without_a_product_to_carry_them_are_deferred(tmp_path) -> None:
    c, ctx = carriers(tmp_path, DictState(), DictReader({}))
    stats = StreamStats("categories")
    entries = c.push_categories("categories", [payload("c1"), payload("c2")], stats)
    assert [(e.external_id, e.status) for e in entries] == [("c1", "deferred"), ("c2", "deferred")]
    assert stats.deferred == 2 and ("category", "c1") in ctx.memory.attempted


def test_categories_ride_with_a_new_product_counted_when_its_stream_reads_it(tmp_path) -> None:
    client = RecordingClient({"c2": Outcome("c2", "rejected", 400, "bad parent")})
    reader = DictReader({"products": {1: (payload("P1", pk=1), ["c1"])}})  # refers to a category in the request
    c, ctx = carriers(tmp_path, DictState(), reader, client)
    stats = StreamStats("categories")
    entries = c.push_categories("categories", [payload("c1"), payload("c2")], stats)
    assert client.calls[0][:3] == ("categories", "market/products/import", ["c1", "c2"])
    assert [(e.entity, e.external_id, e.status) for e in entries] == [
        ("category", "c1", "delivered"), ("category", "c2", "rejected"), ("product", "P1", "delivered")]
    assert (stats.delivered, stats.rejected) == (1, 1)
    assert ("product", "P1") in ctx.memory.carried
