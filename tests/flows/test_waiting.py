"""The waiting rules with fakes: a dependent waits only while what it names can still arrive, and for at
most ``sync.max_defer``; what will never arrive (deleted in the shop, refused for good) gets a stand-in and
blocks nothing. Also the state that counts the wait (``waiting``) and the stand-in records."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pyarrow as pa
import pytest

from altcraft_sync.config import StateSettings
from connectors.state import LedgerEntry, StateStore
from flows.waiting import Dependency, LedgerFact, classify, decide
from transforms.order_extras import LineDetails
from transforms.payload import Mapped, Payload, Refs
from transforms.stand_ins import stand_ins

DAY = 86400.0


@pytest.mark.parametrize("ledger, quarantined, shop, fate, why", [
    ([], None, "live", "arriving", "in the shop, not sent yet"),
    ([], "name: str_length", "live", "arriving", "quarantined in the shop (name: str_length)"),
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
    dep = classify([], None, "live", never_ran=("skus", "products"))
    assert dep.fate == "arriving"
    assert dep.why == ("the skus and products streams never ran: run the skus stream first "
                       "(altcraft-sync sync --stream skus)")


ARRIVING = Dependency("arriving", "in the shop, not sent yet")
GONE = Dependency("gone", "not in the shop any more (deleted)")
REFUSED = Dependency("refused", "refused by Altcraft for good: 400 bad")


def test_a_record_waits_only_while_what_it_names_can_arrive_and_only_up_to_max_defer():
    missing = {"a": ARRIVING, "g": GONE, "r": REFUSED}
    assert decide(["x", "y"], missing, 0, DAY) == decide([], missing, 0, DAY)  # names nothing missing: goes
    assert not decide(["x"], missing, 0, DAY).wait
    waits = decide(["x", "a", "g"], missing, 3600, DAY)
    assert waits.wait and waits.reason == "waiting for 'a': in the shop, not sent yet; goes anyway after 1 d"
    late = decide(["a", "g"], missing, DAY, DAY)  # the limit reached: it goes, saying why
    assert not late.wait and late.stand_ins == ("g",)
    assert "waited 1 d (sync.max_defer) for 'a'" in late.reason
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
