"""The waiting rules with fakes: a dependent waits only while what it names can still arrive, and for at
most ``sync.max_defer``; what will never arrive (deleted in the shop, refused for good) gets a stand-in and
blocks nothing. Also the state that counts the wait (``waiting``) and the stand-in records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest

from altcraft_sync.config import StateSettings
from connectors.state import Known, LedgerEntry, StateStore
from engine.waiting import Dependency, LedgerFact, WaitingDesk, classify, decide, missing_refs
from transforms.order_extras import LineDetails
from transforms.payload import Mapped, Payload, Refs
from transforms.stand_ins import stand_ins

DAY = 86400.0


@pytest.mark.parametrize("ledger, quarantined, shop, fate, why", [
    ([], None, "live", "arriving", "in the shop, not sent yet"),
    ([], "see altcraft-sync quarantine --stream skus", "live", "arriving",
     "quarantined in the shop (see altcraft-sync quarantine --stream skus)"),
    ([LedgerFact("failed", error="timeout")], None, "live", "arriving", "not delivered yet: timeout"),
    ([LedgerFact("rejected", False, "busy")], None, "live", "arriving", "not delivered yet: busy"),
    ([LedgerFact("deferred", error="waiting for 'p1'")], None, "live", "arriving", "itself waiting"),
    ([LedgerFact("rejected", True, "400 bad currency")], None, "live", "refused",
     "refused by Altcraft for good: 400 bad currency"),
    ([LedgerFact("deleted")], None, "deleted", "gone", "marked deleted in the shop"),
    ([], None, "deleted", "gone", "marked deleted in the shop"),  # deleted before it was ever sent
    ([LedgerFact("deleted")], None, "absent", "gone", "deleted in the shop"),
    ([], None, "absent", "gone", "not in the shop any more"),  # hard-deleted, never sent
    ([LedgerFact("deleted")], None, "live", "arriving", "in the shop"),  # restored in the shop: it will be sent
])
def test_each_dependency_is_classified_by_whether_it_can_still_arrive(ledger, quarantined, shop, fate, why):
    dep = classify(ledger, quarantined, shop)
    assert dep.fate == fate and why in dep.why, dep


def test_a_stream_that_never_ran_is_named_with_what_to_run():
    dep = classify([], None, "live", never_ran=("products", "skus"))
    assert dep.fate == "arriving"
    assert dep.why == ("the products and skus streams never ran: run them first "
                       "(altcraft-sync sync --stream products --stream skus)")
    assert classify([], None, "live", never_ran=("skus",)).why == (
        "the skus stream never ran: run it first (altcraft-sync sync --stream skus)")


ARRIVING = Dependency("arriving", "in the shop, not sent yet")
GONE = Dependency("gone", "not in the shop any more (deleted)")
REFUSED = Dependency("refused", "refused by Altcraft for good: 400 bad")


def test_a_record_waits_only_while_what_it_names_can_arrive_and_only_up_to_max_defer():
    missing = {"a": ARRIVING, "g": GONE, "r": REFUSED}
    assert decide(["x", "y"], missing, 0, DAY) == decide([], missing, 0, DAY)  # names nothing missing: goes
    assert not decide(["x"], missing, 0, DAY).wait
    waits = decide(["x", "a", "g"], missing, 3600, DAY)
    assert waits.wait and waits.reason == "waiting for 'a': in the shop, not sent yet; goes anyway after 24 h"
    late = decide(["a", "g"], missing, DAY, DAY)  # the limit reached: it goes, saying why
    assert not late.wait and late.stand_ins == ("g",)
    assert "waited 24 h (sync.max_defer) for 'a'" in late.reason
    assert not decide(["a"], missing, 0, 0).wait  # max_defer 0: never waits


def test_what_will_never_arrive_blocks_nothing_and_gets_a_stand_in():
    missing = {"g": GONE, "r": REFUSED}
    d = decide(["g", "r", "g", "ok"], missing, 0, DAY)
    assert not d.wait and d.stand_ins == ("g", "r")
    assert d.reason.startswith("'g' not in the shop any more")


def chunk(refs, names, prices, currencies, per_payload):
    offsets = [0]
    for n in per_payload:
        offsets.append(offsets[-1] + n)
    import numpy as np

    m = Mapped("order", payloads=[Payload(str(i), b"{}", "f", i) for i in range(len(per_payload))])
    m.refs = Refs(pa.array(refs, pa.string()), np.array(offsets, dtype=np.int64))
    m.ref_lines = LineDetails(pa.array(names, pa.string()), pa.array(prices, pa.string()),
                              pa.array(currencies, pa.string()))
    return m


def test_a_stand_in_is_an_unavailable_product_made_of_the_line():
    m = chunk(["s1", "s2", "s1", "s3"], ["Blue mug", None, "Mug (renamed)", "  "], ["10.5", "3", "11", None],
              ["EUR", "USD", "EUR", None], [2, 2])
    made = {p.external_id: orjson.loads(p.data) for p in stand_ins(m, {"s1", "s3"})}
    assert made == {
        "s1": {"external_id": "s1", "name": "Blue mug", "price": "10.5", "currency": "EUR", "is_available": False},
        "s3": {"external_id": "s3", "name": "s3", "is_available": False},  # no name on the line: its id
    }
    assert stand_ins(m, set()) == []


def test_the_wait_is_counted_from_the_first_deferral_and_ends_with_any_other_outcome(tmp_path):
    store = StateStore(StateSettings(url=f"sqlite:///{tmp_path}/state.db"))
    defer = [LedgerEntry("order", o, o, "f", "deferred", None, "waiting") for o in ("1", "2")]
    store.commit_chunk(stream="orders", entries=defer)
    first = store.waiting_since("order", ["1", "2", "3"])
    assert set(first) == {"1", "2"}
    store.commit_chunk(stream="orders", entries=defer[:1])  # deferred again: still waiting since the first time
    assert store.waiting_since("order", ["1"]) == {"1": first["1"]}
    store.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", "1", "f", "delivered")])
    assert set(store.waiting_since("order", ["1", "2"])) == {"2"}
    fresh = StateStore(StateSettings(url=f"sqlite:///{tmp_path}/state.db"))  # another run's store
    fresh.commit_chunk(stream="orders", entries=[LedgerEntry("order", "2", "2", "f", "rejected", 404, "x")])
    assert fresh.waiting_since("order", ["1", "2"]) == {}
    assert first["1"] - first["2"] < timedelta(seconds=1)


class FakeShop:
    def __init__(self, rows):
        self.rows = rows  # stream -> {external_id: deleted}
        self.lookups = 0

    def find_external_ids(self, entity, external_ids):
        self.lookups += 1
        return {e: d for e, d in self.rows.get(entity, {}).items() if e in external_ids}


class FakeState:
    def __init__(self, ledger=None, quarantined=None, since=None, ran=("skus", "products")):
        self.ledger, self.quarantined, self.since, self.ran = ledger or {}, quarantined or {}, since or {}, ran

    def known(self, entity, external_ids):
        return {e: Known("f", *v, 1) for (ent, e), v in self.ledger.items() if ent == entity and e in external_ids}

    def quarantined_ids(self, entity):
        return set(self.quarantined.get(entity, ()))

    def has_records(self, entity):
        return {"sku": "skus", "product": "products", "category": "categories"}.get(entity) in self.ran

    def get_watermark(self, stream, cursor):
        return None

    def waiting_since(self, entity, external_ids):
        return {e: t for e, t in self.since.items() if e in external_ids}

    def errors(self, entity, external_ids):
        return {e: "400 currency 'XAU' is not enabled" for (ent, e), v in self.ledger.items()
                if ent == entity and e in external_ids and v[0] == "rejected"}


NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
STREAMS = ("categories", "products", "skus", "orders")


def test_the_desk_reads_the_facts_once_and_decides_each_order():
    shop = FakeShop({"skus": {"live": False, "soft": True, "refused": False, "quar": False}, "products": {}})
    state = FakeState(ledger={("sku", "soft"): ("deleted", False), ("sku", "refused"): ("rejected", True),
                              ("sku", "hard"): ("deleted", False)},
                      quarantined={"sku": {"quar"}}, since={"o-late": NOW - timedelta(days=2)})
    desk = WaitingDesk(shop, state, STREAMS, DAY)
    missing = {0: ["live"], 1: ["soft", "hard"], 2: ["refused"], 3: ["quar"], 4: ["live"]}
    ids = {0: "o-new", 1: "o1", 2: "o2", 3: "o3", 4: "o-late"}
    out = desk.decide("orders", missing, ids, NOW)
    assert out[0].wait and "'live': in the shop, not sent yet" in out[0].reason
    assert not out[1].wait and out[1].stand_ins == ("soft", "hard")
    assert not out[2].wait and out[2].stand_ins == ("refused",)
    assert out[2].reason == "'refused' refused by Altcraft for good: 400 currency 'XAU' is not enabled"
    assert out[3].wait and "quarantined in the shop (see altcraft-sync quarantine --stream skus)" in out[3].reason
    assert not out[4].wait and out[4].stand_ins == () and "waited 24 h (sync.max_defer)" in out[4].reason
    lookups = shop.lookups
    desk.decide("orders", {0: ["live", "soft"]}, {0: "o9"}, NOW)
    assert shop.lookups == lookups  # known fates are not looked up again in this stream run


def test_a_catalogue_that_never_ran_is_waited_for_and_named():
    shop = FakeShop({"skus": {"s1": False}})
    desk = WaitingDesk(shop, FakeState(ran=()), STREAMS, DAY)
    d = desk.decide("orders", {0: ["s1"]}, {0: "o1"}, NOW)[0]  # a SKU needs its product: both are named
    assert d.wait and "the categories, products and skus streams never ran: run them first (altcraft-sync sync " \
        "--stream categories --stream products --stream skus)" in d.reason
    desk = WaitingDesk(shop, FakeState(ran=("categories", "products")), STREAMS, DAY)
    assert "the skus stream never ran: run it first" in desk.decide("orders", {0: ["s1"]}, {0: "o1"}, NOW)[0].reason


def test_only_the_streams_this_config_syncs_are_looked_up():
    shop = FakeShop({"skus": {"s1": False}, "products": {"s1": False}})
    desk = WaitingDesk(shop, FakeState(), ("skus", "orders"), DAY)
    assert desk.fates("orders", ["s1"])["s1"].fate == "arriving"
    assert shop.lookups == 1


def test_missing_references_are_listed_per_payload():
    import numpy as np

    refs = Refs(pa.array(["a", "b", None, "a", "c", "c"], pa.string()), np.array([0, 2, 3, 6], dtype=np.int64))
    assert missing_refs(refs, {"a"}) == {0: ["b"], 2: ["c"]}
    assert missing_refs(refs, {"a"}, only=[2]) == {2: ["c"]}
    assert missing_refs(refs, {"a", "b", "c"}) == {}


# --- the decide step and the dispatcher with the waiting rules (fakes from tests/engine/fakes.py) ---------

def engine_parts(tmp_path, state, skus=(), deleted=(), **sync):
    from engine.decide import Decider
    from engine.dependencies import Dependencies
    from engine.ledger_view import LedgerView
    from tests.engine.fakes import T0, ListSource, Table, context, demo_config

    source = ListSource({name: Table([]) for name in ("categories", "products", "orders")})
    source.tables["skus"] = Table([(i, T0, ext) for i, ext in enumerate(skus, 1)], deleted=set(deleted))
    source.entities["skus"] = source.tables["skus"].meta
    ctx = context(demo_config(tmp_path, **sync), state, source)
    return Decider(ctx, Dependencies(ctx), LedgerView(ctx)), ctx


def order_chunk(refs, changed_at=None):
    import numpy as np

    from tests.engine.fakes import mapped, payload

    m = mapped("order", [payload(str(i + 1)) for i in range(len(refs))], refs=refs)
    flat = [r for rs in refs for r in rs]
    m.ref_lines = LineDetails(pa.array([f"Name of {r}" for r in flat], pa.string()),
                              pa.array(["9.5"] * len(flat), pa.string()), pa.array(["RUB"] * len(flat), pa.string()))
    if changed_at is not None:
        m.changed_at = np.array(changed_at, dtype=float)
    return m


def test_an_order_naming_a_sku_the_shop_deleted_goes_after_a_stand_in(tmp_path):
    from engine.stats import StreamStats
    from tests.engine.fakes import DictState

    state = DictState()
    state.put("sku", "SOFT", "deleted")
    d, _ = engine_parts(tmp_path, state, skus=["LIVE", "SOFT"], deleted=["SOFT"])
    stats = StreamStats("orders")
    prepared = d.process("orders", order_chunk([["SOFT"], ["HARD", "SOFT"], ["LIVE"]]), stats)
    assert [p.external_id for p in prepared.send] == ["1", "2"]  # only the live SKU's order waits
    assert [orjson.loads(p.data) for p in prepared.stand_ins] == [
        {"external_id": "SOFT", "name": "Name of SOFT", "price": "9.5", "currency": "RUB", "is_available": False},
        {"external_id": "HARD", "name": "Name of HARD", "price": "9.5", "currency": "RUB", "is_available": False}]
    assert stats.stand_ins == 2 and stats.deferred == 1
    assert stats.deferred_reasons == {"in the shop, not sent yet (changed within the safety margin, or its stream has "
                                      "not reached it); goes anyway after 24 h": 1}
    again = d.process("orders", order_chunk([["SOFT"]]), StreamStats("orders"))
    assert again.stand_ins == [] and [p.external_id for p in again.send] == ["1"]  # each stand-in once a run


def test_an_order_that_waited_max_defer_goes_as_it_is(tmp_path):
    from engine.stats import StreamStats
    from tests.engine.fakes import DictState

    state = DictState()
    state.since[("order", "1")] = datetime.now(UTC) - timedelta(hours=2)
    d, _ = engine_parts(tmp_path, state, skus=["LIVE"], max_defer="1h")
    stats = StreamStats("orders")
    prepared = d.process("orders", order_chunk([["LIVE"], ["LIVE"]]), stats)
    assert [p.external_id for p in prepared.send] == ["1"] and prepared.stand_ins == []
    assert stats.samples["sent_without_dependency"][0]["reason"].startswith("waited 1 h (sync.max_defer) for 'LIVE'")
    assert [e.external_id for e in prepared.entries] == ["2"]  # the other one has just started waiting


def test_orders_older_than_the_trigger_window_go_without_triggers(tmp_path):
    from engine.dispatch import Dispatcher
    from engine.stats import StreamStats
    from tests.engine.fakes import DictState, RecordingClient

    d, ctx = engine_parts(tmp_path, DictState())
    ctx.memory.trigger_cutoff = 1000.0
    prepared = d.process("orders", order_chunk([[], [], []], changed_at=[999.0, 1000.0, float("nan")]),
                         StreamStats("orders"))
    assert prepared.quiet == {"1", "3"}  # older than the cutoff, and an order of unknown age
    client = RecordingClient()
    ctx.client = client
    dispatcher = Dispatcher(ctx, None, d.ledger)  # type: ignore[arg-type]
    stats = StreamStats("orders")
    entries = dispatcher.push("orders", prepared.send, stats, prepared.quiet)
    assert [(ids, root) for _, _, ids, root in client.calls] == [(["1", "3"], {"skip_triggers": True}),
                                                                 (["2"], {"skip_triggers": False})]
    assert stats.without_triggers == 2 and stats.delivered == 3 and len(entries) == 3
    stand = dispatcher.push_stand_ins(stand_ins(order_chunk([["X"]]), {"X"}), stats)
    assert client.calls[-1][1] == "market/products/import" and [e.entity for e in stand] == ["stand_in"]


def test_the_trigger_cutoff_follows_the_database_clock_and_the_window():
    from engine.coordinator import trigger_cutoff

    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert trigger_cutoff(DAY, "orders", now) == (now - timedelta(days=1)).timestamp()
    assert trigger_cutoff(None, "orders", now) is None
    assert trigger_cutoff(DAY, "skus", now) is None  # only an orders import takes skip_triggers
