"""The skip rules of records whose raw rows did not change, with fakes: which records of a chunk are not
mapped (``engine.mapping.unchanged``), which ledger states may skip (``LedgerView.skippable`` over a dict
ledger and the SQLite state store), and how a skipped record is counted and committed (the decider)."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import SecretStr

from altcraft_sync.config import StateSettings
from connectors.state import LedgerEntry, StateStore
from engine.decide import Decider
from engine.dependencies import Dependencies
from engine.ledger_view import LedgerView
from engine.mapping import unchanged
from engine.seen import SeenIds
from engine.stats import StreamStats
from tests.engine.fakes import DictState, ListSource, context, demo_config, mapped, payload
from transforms.digest import raw_digests
from transforms.spec import mapping_spec

REASON = [{"check": "email", "field": "email", "value": None}]


@pytest.fixture
def config(tmp_path):
    return demo_config(tmp_path)


def chunk(ids=("1", "2", "3")) -> tuple[pd.DataFrame, pd.DataFrame]:
    parents = pd.DataFrame({"_pk": list(range(1, len(ids) + 1)), "external_id": list(ids), "total": [5.0] * len(ids)})
    children = pd.DataFrame({"_pk": [10 + i for i in range(len(ids))], "_parent": list(range(1, len(ids) + 1)),
                             "sku": ["A"] * len(ids)})
    return parents, children


def test_only_records_whose_digest_the_ledger_holds_are_split_off(config) -> None:
    m = mapping_spec(config, "orders")
    parents, children = chunk()
    d = dict(zip(["1", "2", "3"], raw_digests(parents, children, m).tolist()))
    known = {"1": ("delivered", d["1"]), "2": ("invalid", d["2"]), "3": ("delivered", d["3"] + 1)}
    left, kids, digests, skipped = unchanged(m, parents, children, known)
    assert skipped == {"1": "delivered", "2": "invalid"}
    assert left["external_id"].tolist() == ["3"] and kids["_parent"].tolist() == [3]  # its children go with it
    assert digests == {"3": d["3"]}  # what is mapped keeps its digest


def test_a_repeated_id_is_always_mapped_and_keeps_no_digest(config) -> None:
    m = mapping_spec(config, "orders")
    parents, children = chunk(("1", "1", "2"))
    d = raw_digests(parents, children, m).tolist()
    left, _, digests, skipped = unchanged(m, parents, children, {"1": ("delivered", d[0]), "2": ("delivered", 0)})
    assert skipped == {} and len(left) == 3 and set(digests) == {"2"}


def test_a_repeated_parent_key_digests_nothing_and_skips_nothing(config) -> None:
    m = mapping_spec(config, "orders")
    parents, children = chunk(("1", "2"))
    parents["_pk"] = [1, 1]  # a join that repeats a key
    assert raw_digests(parents, children, m) is None
    left, _, digests, skipped = unchanged(m, parents, children, {"1": ("delivered", 0)})
    assert len(left) == 2 and digests == skipped == {}


def test_categories_skip_a_chunk_whole_or_not_at_all(config) -> None:
    m = mapping_spec(config, "categories")
    parents = pd.DataFrame({"_pk": [1, 2], "external_id": ["1", "2"], "name": ["A", "B"], "parent_external_id": [None, "1"]})
    d = raw_digests(parents, None, m).tolist()
    left, _, digests, skipped = unchanged(m, parents, None, {"1": ("delivered", d[0])})  # "2" changed
    assert skipped == {} and len(left) == 2 and digests == {"1": d[0], "2": d[1]}
    left, _, digests, skipped = unchanged(m, parents, None, {"1": ("delivered", d[0]), "2": ("delivered", d[1])})
    assert skipped == {"1": "delivered", "2": "delivered"} and left.empty and digests == {}


def test_what_the_ledger_offers_for_a_skip(config) -> None:
    state = DictState()
    ctx = context(config, state, ListSource({}))
    view = LedgerView(ctx)
    assert view.skippable("orders", ["1"]) == {}  # the first sync: nothing held, nothing looked up later either
    state.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f", "delivered"),
                                                 LedgerEntry("order", "2", 2, "f", "failed"),
                                                 LedgerEntry("order", "3", 3, "f", "deferred")],
                       quarantined=[("order", "3", 3, REASON), ("order", "4", 4, REASON), ("order", "5", 5, REASON)],
                       digests={("order", e): int(e) for e in "12345"})
    assert view.skippable("orders", ["1"]) == {}
    view = LedgerView(context(config, state, ListSource({})))  # the next run
    # failed and deferred records need a fresh decision; a quarantined one (4) is still invalid
    assert view.skippable("orders", ["1", "2", "3", "4", "5"]) == {"1": ("delivered", 1), "4": ("invalid", 4),
                                                                   "5": ("invalid", 5)}
    view.ctx.memory.quarantined_now["order"] = {"5"}  # quarantined again by this run: counted as news
    assert "5" not in view.skippable("orders", ["5"])
    assert LedgerView(context(config, state, ListSource({}), resend=True)).skippable("orders", ["1"]) == {}
    dry = LedgerView(context(config, state, ListSource({}), dry_run=True))  # shows every invalid record's reasons
    assert dry.skippable("orders", ["1", "4"]) == {"1": ("delivered", 1)}


def test_the_state_store_offers_the_same(config, tmp_path) -> None:
    store = StateStore(StateSettings(url=SecretStr(f"sqlite:///{tmp_path}/state.db")))
    store.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "f", "delivered"),
                                                 LedgerEntry("order", "3", 3, "f", "deferred")],
                       quarantined=[("order", "3", 3, REASON), ("order", "4", 4, REASON)],
                       digests={("order", e): int(e) for e in "134"})
    view = LedgerView(context(config, store, ListSource({})))  # type: ignore[arg-type]
    assert view.skippable("orders", ["1", "3", "4"]) == {"1": ("delivered", 1), "4": ("invalid", 4)}
    store.close()


def test_a_skipped_record_is_counted_as_its_re_read_would_be(config) -> None:
    state = DictState()
    state.quarantine[("order", "2")] = "2"
    ctx = context(config, state, ListSource({}))
    ctx.memory.seen["order"] = seen = SeenIds()
    d = Decider(ctx, Dependencies(ctx), LedgerView(ctx))
    stats = StreamStats("orders")
    prepared = d.process("orders", mapped("order", []), stats, skipped={"1": "delivered", "2": "invalid"})
    assert (stats.unchanged, stats.still_invalid, stats.invalid, stats.unmapped) == (1, 1, 0, 2)
    assert prepared.send == prepared.entries == prepared.quarantined == prepared.cleared == []
    assert prepared.seen_invalid == [("order", "2")]  # its quarantine row is marked seen, nothing else
    assert ctx.memory.quarantined_now["order"] == {"2"}  # the quarantine re-read leaves it alone
    assert seen.missing(["1", "2", "3"]) == ["3"]  # a full read saw both
    seen.close()


def test_a_mapped_record_keeps_its_digest_and_an_unchanged_payload_gets_it(config) -> None:
    state = DictState()
    same = payload("1", {"v": 1})
    state.put("order", "1", fingerprint=same.fingerprint)  # delivered before digests
    ctx = context(config, state, ListSource({}))
    d = Decider(ctx, Dependencies(ctx), LedgerView(ctx))
    stats = StreamStats("orders")
    prepared = d.process("orders", mapped("order", [same, payload("2")]), stats, digests={"1": 11, "2": 22})
    assert stats.unchanged == 1 and [p.external_id for p in prepared.send] == ["2"]
    assert prepared.redigested == [("order", "1", 11)]
    assert prepared.digests == {("order", "1"): 11, ("order", "2"): 22}
