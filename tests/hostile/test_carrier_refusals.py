"""Nothing waits on a record refused for a reason that is not its own: definitions precede the first record
that uses them, a refused carrier counts and is sent again until delivered, and the categories it carried
are not rejected for its failure."""

from __future__ import annotations

import orjson

from altcraft_sync.config import load_config
from connectors.state import StateStore
from tests.helpers import run_all
from tests.hostile.conftest import Hostile
from tests.hostile.proxy import Reply, Upstream
from tests.hostile.test_network import converged


def ledger(h: Hostile, entity: str) -> dict[str, tuple[str, bool]]:
    state = StateStore(load_config(h.config).state)
    return {r["external_id"]: (r["status"], bool(r["permanent"])) for r in state.rejected_rows(entity=entity)}


def test_the_carriers_definitions_travel_with_it(hostile: Hostile):
    """The categories' carrier product uses the custom field ``material``: it goes in the same request, so
    Altcraft knows the field when it reads the product, and nothing is refused."""
    stats = run_all(hostile.config, streams=["categories"])
    assert stats["categories"].delivered == 6 and stats["categories"].rejected == 0
    carried = [body for _, path, body in hostile.proxy.received if b'"categories"' in body]
    assert carried and all(b'"custom_fields"' in body for body in carried[:1])
    assert "material" in hostile.emulator.store.custom_fields
    assert len(hostile.emulator.store.products) == 1 and ledger(hostile, "product") == {}
    run_all(hostile.config, run_id="rest")
    converged(hostile)


def refuse_carrier(body: bytes, upstream: Upstream) -> Reply:
    """Altcraft's own answer to a categories request, its carrier refused (categories taken)."""
    status, headers, answer = upstream()
    decoded = orjson.loads(answer)
    if b'"categories"' in body:
        decoded["result"] = [{**item, "error": 404, "error_text": "custom field 'material' does not exist"}
                             for item in decoded["result"]]
    return status, headers, orjson.dumps(decoded)


def test_a_refused_carrier_counts_and_is_sent_again(hostile: Hostile):
    hostile.proxy.inject("market/products/import", refuse_carrier, times=1)
    stats = run_all(hostile.config, streams=["categories"])["categories"]
    assert stats.delivered == 6 and stats.rejected == 1  # the refused carrier is counted, not hidden
    assert any("was not taken by Altcraft (404" in w for w in stats.warnings), stats.warnings
    assert [s for s, permanent in ledger(hostile, "product").values()] == ["rejected"]
    assert not any(permanent for _, permanent in ledger(hostile, "product").values())
    run_all(hostile.config, run_id="next")
    converged(hostile)


def test_categories_are_not_rejected_for_their_carriers_refusal(hostile: Hostile):
    """A request refused whole because of its carrier (or its definitions): the carrier sent alone is
    refused too, so the categories are *failed* (sent again), never rejected."""
    refused = orjson.dumps({"error": 400, "error_text": "incorrect request: data[0].count must be an integer"})
    hostile.proxy.inject("market/products/import", lambda _b, _u: (200, {}, refused), times=-1)
    stats = run_all(hostile.config, streams=["categories"])["categories"]
    assert stats.delivered == 0 and stats.failed == 6 and stats.rejected == 1  # the carrier's own refusal
    assert set(ledger(hostile, "category").values()) == {("failed", False)}
    hostile.proxy.rules.clear()
    run_all(hostile.config, run_id="next")
    converged(hostile)

