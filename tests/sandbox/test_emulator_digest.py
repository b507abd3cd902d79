"""The emulator's digest, which the benchmark uses to tell whether altcraft-sync, drt and dlt delivered the
same orders: Altcraft-equivalent spellings compare equal, a real difference does not; and the control
routes that read it and reset only the orders."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from connectors.altcraft import Encoded
from sandbox.emulator_digest import canonical, digest
from tests.connectors.test_altcraft_client import ORDERS, order, seed_catalog


def test_equivalent_spellings_digest_alike_and_real_differences_do_not():
    ours = order("7", total_price="10.50", delivery_cost="0")
    ours["lines"] = [{"external_id": "b", "product": "s", "count": 2, "final_price_per_item": "5"},
                     {"external_id": "a", "product": "s", "count": 1, "final_price_per_item": "0.50"}]
    theirs = {**ours, "total_price": 10.5, "delivery_cost": 0.0, "region": None,
              "lines": [{**ours["lines"][1], "final_price_per_item": 0.5, "custom_fields": None}, ours["lines"][0]]}
    assert digest({"7": ours}) == digest({"7": theirs})
    assert canonical("2026-01-02T15:04:05.141Z") == "2026-01-02T15:04:05.141Z"  # times stay text
    assert canonical(["b", "a"]) == ["b", "a"]  # only lists of records are reordered
    for change in ({"status": "paid"}, {"total_price": "10.51"},
                   {"lines": [{**ours["lines"][0], "count": 3}, ours["lines"][1]]}, {"custom_fields": {"gift_wrap": True}}):
        assert digest({"7": ours}) != digest({"7": {**ours, **change}}), change


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict):
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode()), timeout=10) as resp:
        return json.loads(resp.read())


def test_digest_store_and_partial_reset_over_http(emulator, make_client):
    client = make_client()
    seed_catalog(client)
    client.import_records(ORDERS.import_method, [Encoded.of(order("o1")), Encoded.of(order("o2", status="paid"))])
    control = emulator.url.replace("/api/v1.1/", "/__emulator/")
    answer = _get(control + "digest/orders")
    assert answer["count"] == 2 and set(answer["items"]) == {"o1", "o2"}
    assert answer["items"]["o1"] != answer["items"]["o2"]
    assert _get(control + "store/orders?ids=o2,nope") == {"o2": order("o2", status="paid"), "nope": None}
    _post(control + "reset", {"kinds": ["orders"]})
    assert _get(control + "digest/orders")["count"] == 0
    assert _get(control + "digest/skus")["count"] == 1  # the catalog stays
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(control + "reset", {"kinds": ["everything"]})
    assert err.value.code == 400
    _post(control + "reset", {})
    assert _get(control + "digest/skus")["count"] == 0
