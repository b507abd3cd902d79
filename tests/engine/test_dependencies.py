"""Dependency waiting: a record that refers to something Altcraft does not hold yet waits."""

from __future__ import annotations

from engine.dependencies import Dependencies
from tests.engine.fakes import DictState, ListSource, Table, context, demo_config, mapped, payload


def deps(tmp_path, state, streams=("products", "skus", "orders"), **sync):
    source = ListSource({name: Table([]) for name in streams})
    return Dependencies(context(demo_config(tmp_path, **sync), state, source))


def test_only_references_altcraft_does_not_hold_block(tmp_path) -> None:
    state = DictState()
    state.put("sku", "S1")
    state.put("sku", "S2", "rejected")
    chunk = mapped("order", [payload("1"), payload("2"), payload("3")], refs=[["S1"], ["S2", "S1"], []])
    assert deps(tmp_path, state).blocked("orders", chunk) == {1: "S2"}


def test_references_in_the_same_request_count_as_held(tmp_path) -> None:
    chunk = mapped("sku", [payload("S1")], refs=[["P1"]])
    assert deps(tmp_path, DictState()).blocked("skus", chunk, sending={"P1"}) == {}


def test_only_the_given_positions_are_checked(tmp_path) -> None:
    chunk = mapped("order", [payload("1"), payload("2"), payload("3")], refs=[["X"], ["Y"], ["Z"]])
    d = deps(tmp_path, DictState())
    assert d.blocked("orders", chunk, only=[0, 2]) == {0: "X", 2: "Z"}
    assert d.blocked("orders", chunk, only=[]) == {}


def test_an_orders_only_config_trusts_altcrafts_catalogue(tmp_path) -> None:
    chunk = mapped("order", [payload("1")], refs=[["S9"]])
    assert deps(tmp_path, DictState(), streams=("orders",)).blocked("orders", chunk) == {}


def test_waiting_can_be_turned_off(tmp_path) -> None:
    chunk = mapped("order", [payload("1")], refs=[["S9"]])
    assert deps(tmp_path, DictState(), wait_for_dependencies=False).blocked("orders", chunk) == {}


def test_what_is_delivered_later_counts_once_the_stream_is_loaded_again(tmp_path) -> None:
    state = DictState()
    d = deps(tmp_path, state)
    chunk = mapped("order", [payload("1")], refs=[["S1"]])
    assert d.blocked("orders", chunk) == {0: "S1"}
    state.put("sku", "S1")
    assert d.blocked("orders", chunk) == {0: "S1"}  # loaded once per stream and run
    d.forget("orders")
    assert d.blocked("orders", chunk) == {}


def test_a_dry_run_counts_what_it_would_have_sent(tmp_path) -> None:
    source = ListSource({name: Table([]) for name in ("skus", "orders")})
    ctx = context(demo_config(tmp_path), DictState(), source, dry_run=True)
    ctx.memory.would_send["sku"] = {"S1"}
    assert Dependencies(ctx).blocked("orders", mapped("order", [payload("1")], refs=[["S1"]])) == {}


def test_an_order_waits_for_its_buyers_profile(tmp_path) -> None:
    state = DictState()
    state.put("customer", "email:a@x.io")
    state.put("guest", "phone:+79000000001")
    state.put("customer", "email:b@x.io", "rejected")
    orders = [payload("1")._replace(owner="email:a@x.io"), payload("2")._replace(owner="phone:+79000000001"),
              payload("3")._replace(owner="email:b@x.io"), payload("4")]
    chunk = mapped("order", orders, refs=[["S1"], [], [], ["S9"]])
    state.put("sku", "S1")
    d = deps(tmp_path, state, streams=("skus", "customers", "guests", "orders"))
    # a missing product is named first; an order matched by no e-mail or phone waits for no profile
    assert d.blocked("orders", chunk) == {2: "profile email:b@x.io", 3: "S9"}
    # an orders config without the profile streams trusts Altcraft to hold its buyers
    assert deps(tmp_path, state, streams=("skus", "orders")).blocked("orders", chunk) == {3: "S9"}


def test_a_buyers_profile_is_waited_for_at_most_max_defer(tmp_path) -> None:
    """The wait for a buyer's profile is bounded like the catalogue's: from the order's first deferral, at
    most ``sync.max_defer``; then the order goes and Altcraft's answer is what the ledger records. A record
    whose product goes without waiting still waits for its buyer."""
    from datetime import UTC, datetime, timedelta

    state = DictState()
    state.put("sku", "S1")
    orders = [payload("1")._replace(owner="email:a@x.io"), payload("2")._replace(owner="email:a@x.io"),
              payload("3")._replace(owner="email:b@x.io"), payload("4")._replace(owner="email:a@x.io")]
    state.put("customer", "email:b@x.io")
    chunk = mapped("order", orders, refs=[["S1"], ["S1"], ["S1"], ["GONE"]])  # GONE: not in the shop any more
    state.since[("order", "2")] = datetime.now(UTC) - timedelta(days=2)  # waiting since two days
    d = deps(tmp_path, state, streams=("skus", "customers", "guests", "orders"), max_defer="1d")
    decisions = d.waits("orders", chunk, [0, 1, 2, 3])
    assert decisions[0].wait and "profile email:a@x.io" in decisions[0].reason
    assert not decisions[1].wait and "sync.max_defer" in decisions[1].reason
    assert 2 not in decisions  # its buyer's profile is delivered
    assert decisions[3].wait and "profile email:a@x.io" in decisions[3].reason  # its product would not hold it


def test_without_the_guests_stream_only_a_buyer_held_back_waits(tmp_path) -> None:
    state = DictState()
    state.put("customer", "email:a@x.io")
    state.put("customer", "email:b@x.io", "failed")
    orders = [payload("1")._replace(owner="email:a@x.io"), payload("2")._replace(owner="email:b@x.io"),
              payload("3")._replace(owner="email:guest@x.io")]
    d = deps(tmp_path, state, streams=("customers", "orders"))
    # a guest's order is Altcraft's to match (no guests stream maps them); a customer failing waits
    assert d.blocked("orders", mapped("order", orders)) == {1: "profile email:b@x.io"}


def test_an_order_waits_for_its_buyers_profile_for_at_most_max_defer(tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    state = DictState()
    orders = [payload("1")._replace(owner="email:new@x.io"), payload("2")._replace(owner="email:old@x.io"),
              payload("3")._replace(owner="email:new@x.io"), payload("4")._replace(owner="email:old@x.io")]
    chunk = mapped("order", orders, refs=[["S1"], [], [], ["GONE"]])  # GONE: not in the shop any more
    state.put("sku", "S1")
    for ext in ("2", "4"):
        state.since[("order", ext)] = datetime.now(UTC) - timedelta(days=2)  # deferred two days ago
    d = deps(tmp_path, state, streams=("skus", "customers", "guests", "orders"), max_defer="1d")
    waits = d.waits("orders", chunk, [0, 1, 2, 3])
    assert waits[0].wait and "profile email:new@x.io" in waits[0].reason and "goes anyway after" in waits[0].reason
    assert waits[2].wait
    # past sync.max_defer the order goes out (Altcraft's answer then says what happened), with its reason
    assert not waits[1].wait and "sync.max_defer" in waits[1].reason and waits[1].stand_ins == ()
    # ... and one whose product is gone still gets the stand-in its line needs
    assert not waits[3].wait and waits[3].stand_ins == ("GONE",)
    # a profile delivered since counts once the stream is loaded again
    state.put("customer", "email:new@x.io")
    d.forget("orders")
    assert set(d.waits("orders", chunk, [0, 1, 2])) == {1}
