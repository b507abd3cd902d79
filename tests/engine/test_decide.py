"""The decide rules of one chunk against a dict ledger: what is sent, skipped, deferred, deleted, and how
it is counted."""

from __future__ import annotations

import pytest

from engine.decide import Decider
from engine.dependencies import Dependencies
from engine.ledger_view import LedgerView
from engine.stats import StreamStats
from tests.engine.fakes import T0, DictState, ListSource, Table, context, demo_config, mapped, payload


@pytest.fixture
def config(tmp_path):
    return demo_config(tmp_path)


def decider(config, state, skus=(), **options):
    source = ListSource({name: Table([]) for name in ("categories", "products", "orders")})
    source.tables["skus"] = Table([(i, T0, ext) for i, ext in enumerate(skus, 1)])
    source.entities["skus"] = source.tables["skus"].meta
    ctx = context(config, state, source, **options)
    return Decider(ctx, Dependencies(ctx), LedgerView(ctx)), ctx


def test_new_changed_and_unchanged_records(config) -> None:
    state = DictState()
    same, edited = payload("1", {"v": 1}), payload("2", {"v": 2})
    state.put("order", "1", fingerprint=same.fingerprint)
    state.put("order", "2", fingerprint="old")
    d, _ = decider(config, state)
    stats = StreamStats("orders")
    prepared = d.process("orders", mapped("order", [same, edited, payload("3")]), stats)
    assert [p.external_id for p in prepared.send] == ["2", "3"]
    assert (stats.unchanged, stats.changed, stats.new) == (1, 1, 1)
    assert prepared.entries == [] and prepared.deletions == []


def test_a_permanent_rejection_waits_for_its_data_to_change(config) -> None:
    state = DictState()
    p = payload("1", {"currency": "XXX"})
    state.put("order", "1", "rejected", fingerprint=p.fingerprint, permanent=True)
    d, _ = decider(config, state)
    stats = StreamStats("orders")
    assert d.process("orders", mapped("order", [p]), stats).send == []
    assert (stats.rejected, stats.still_rejected) == (0, 1)  # issue 27: the backlog, not this run's news
    fixed = payload("1", {"currency": "RUB"})
    assert [x.external_id for x in d.process("orders", mapped("order", [fixed]), StreamStats("orders")).send] == ["1"]


def test_a_retryable_rejection_and_a_failure_are_sent_again(config) -> None:
    state = DictState()
    a, b = payload("1"), payload("2")
    state.put("order", "1", "rejected", fingerprint=a.fingerprint)
    state.put("order", "2", "failed", fingerprint=b.fingerprint)
    d, _ = decider(config, state)
    assert len(d.process("orders", mapped("order", [a, b]), StreamStats("orders")).send) == 2


def test_resend_sends_what_the_ledger_holds_unchanged(config) -> None:
    state = DictState()
    p = payload("1")
    state.put("order", "1", fingerprint=p.fingerprint)
    d, _ = decider(config, state, resend=True)
    assert d.process("orders", mapped("order", [p]), StreamStats("orders")).send == [p]


def test_a_carrier_delivered_this_run_counts_once_as_delivered(config) -> None:
    state = DictState()
    p = payload("7")
    state.put("product", "7", fingerprint=p.fingerprint)
    d, ctx = decider(config, state)
    ctx.memory.carried.add(("product", "7"))
    stats = StreamStats("products")
    assert d.process("products", mapped("product", [p]), stats).send == []
    assert (stats.delivered, stats.new, stats.unchanged) == (1, 1, 0)
    assert not ctx.memory.carried
    again = StreamStats("products")
    d.process("products", mapped("product", [p]), again)
    assert again.unchanged == 1 and again.delivered == 0


def test_a_record_referring_to_an_undelivered_sku_is_deferred(config) -> None:
    state = DictState()
    state.put("sku", "S1")
    d, ctx = decider(config, state, skus=["S9"])  # S9 is in the shop: it can still arrive
    stats = StreamStats("orders")
    chunk = mapped("order", [payload("1"), payload("2")], refs=[["S1"], ["S1", "S9"]])
    prepared = d.process("orders", chunk, stats)
    assert [p.external_id for p in prepared.send] == ["1"]
    [entry] = prepared.entries
    assert (entry.external_id, entry.status) == ("2", "deferred") and "'S9'" in entry.error_text
    assert stats.deferred == 1 and ("order", "2") in ctx.memory.attempted


def test_soft_deleted_and_renamed_records_are_deleted(config) -> None:
    state = DictState()
    state.put("sku", "OLD-CODE", pk=5)
    state.put("sku", "GONE", pk=6)
    state.quarantine[("sku", "GONE")] = "6"
    d, _ = decider(config, state)
    renamed = payload("NEW-CODE", pk=5)
    prepared = d.process("skus", mapped("sku", [renamed], deletions=[("GONE", 6)]), StreamStats("skus"))
    assert prepared.send == [renamed]
    assert sorted(prepared.deletions) == [("GONE", 6), ("OLD-CODE", "5")]
    assert ("sku", "GONE") in prepared.cleared


def test_a_record_valid_again_leaves_the_quarantine(config) -> None:
    state = DictState()
    state.quarantine[("order", "1")] = "1"
    d, ctx = decider(config, state)
    prepared = d.process("orders", mapped("order", [payload("1")]), StreamStats("orders"))
    assert prepared.cleared == [("order", "1")]
    assert "1" not in ctx.memory.quarantine_ids["order"]


def test_a_dry_run_sends_nothing_and_remembers_what_dependents_may_count(config) -> None:
    d, ctx = decider(config, DictState(), dry_run=True)
    stats = StreamStats("skus")
    prepared = d.process("skus", mapped("sku", [payload("S1")]), stats)
    assert prepared.send == [] and stats.new == 1
    assert ctx.memory.would_send["sku"] == {"S1"}
    assert stats.samples["new"] == [{"external_id": "S1"}]
