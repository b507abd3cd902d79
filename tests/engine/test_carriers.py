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
    # issue 25: the carrier's own definitions (the products' custom field) travel in the same request
    assert client.calls[0][3]["roots"]["custom_fields"][0]["external_id"] == "material"
    assert [(e.entity, e.external_id, e.status) for e in entries] == [
        ("category", "c1", "delivered"), ("category", "c2", "rejected"), ("custom_field", "material", "delivered"),
        ("product", "P1", "delivered")]
    assert (stats.delivered, stats.rejected) == (1, 1)
    assert ("product", "P1") in ctx.memory.carried


def _category(ext: str, parent: str | None = None, pk: int | None = None):
    return payload(ext, {"external_id": ext, "name": ext, **({"parent_external_id": parent} if parent else {})}, pk=pk)


def test_a_subcategory_waits_for_a_parent_altcraft_does_not_hold_and_its_children_with_it(tmp_path) -> None:
    """Sent without its parent, a subcategory would be refused for good; it waits while the parent can
    still arrive (here: quarantined in the shop), and so do the categories under it."""
    state = DictState()
    state.put("category", "root")
    state.quarantine[("category", "p")] = "name: str_length"
    client = RecordingClient()
    reader = DictReader({"products": {1: (payload("P1", pk=1), ["root"])}})
    c, ctx = carriers(tmp_path, state, reader, client)
    stats = StreamStats("categories")
    send = [_category("grandchild", "child"), _category("child", "p"), _category("leaf", "root"), _category("top")]
    entries = c.push_categories("categories", send, stats)
    assert client.calls[0][2] == ["leaf", "top"]  # parents before children; the waiting ones not sent
    waiting = {e.external_id: e.error_text for e in entries if e.status == "deferred"}
    assert set(waiting) == {"child", "grandchild"} and stats.deferred == 2 and stats.rejected == 0
    assert "waiting for 'p': quarantined in the shop" in waiting["child"]
    assert "waiting for its parent 'child', which waits itself" in waiting["grandchild"]
    assert ("category", "child") in ctx.memory.attempted


def test_categories_waiting_in_the_ledger_travel_with_a_request_that_needs_them(tmp_path) -> None:
    """The night without products deferred 'c1'; now the cursor reads only 'c2', a child of 'c1', and the
    only product names 'c1'. Alone, 'c2' would wait for ever for a carrier and a parent that wait for it."""
    state = DictState()
    state.put("category", "c1", status="deferred", pk=11)
    client = RecordingClient()
    reader = DictReader({"products": {1: (payload("P1", pk=1), ["c1"])},
                         "categories": {11: (_category("c1", pk=11), [])}})
    c, _ = carriers(tmp_path, state, reader, client)
    stats = StreamStats("categories")
    entries = c.push_categories("categories", [_category("c2", "c1", pk=12)], stats)
    assert client.calls[0][:3] == ("categories", "market/products/import", ["c1", "c2"])
    assert {e.external_id: e.status for e in entries if e.entity == "category"} == {"c1": "delivered", "c2": "delivered"}
    assert (stats.delivered, stats.deferred, stats.retried) == (2, 0, 1)
