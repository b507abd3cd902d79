"""The emulator's profile methods as the client meets them: an order of an unknown buyer refused in
``require_profiles`` mode, and accepted once the buyer's profile exists."""

from __future__ import annotations

import requests

from sandbox.emulator import AltcraftEmulator


def test_require_profiles_refuses_an_order_of_an_unknown_buyer():
    order = {"external_id": "o1", "matching": "phone", "phone": "+79001234567", "endpoint": "web", "status": "new",
             "total_price": "1", "currency": "RUB", "lines": [{"external_id": "l", "product": "p", "count": 1,
                                                              "final_price_per_item": "1"}]}
    with AltcraftEmulator(token="t", require_known_products=False, require_profiles=True) as emu:
        first = requests.post(emu.url + "market/orders/import", json={"token": "t", "data": [order]}).json()
        assert first["result"][0]["error"] == 404 and "profile not found" in first["result"][0]["error_text"]
        made = requests.post(emu.url + "profiles/import", json={"token": "t", "db_id": 1, "matching": "phone",
                                                                 "phone": "+79001234567",
                                                                 "data": {"phones": ["+79001234567"]}}).json()
        again = requests.post(emu.url + "market/orders/import", json={"token": "t", "data": [order]}).json()
        assert again["result"][0]["error"] == 0 and set(emu.store.orders) == {"o1"}
        listed = requests.post(emu.url + "market/orders/list", json={"token": "t"}).json()
        assert listed["result"][0]["profile"]["profile_id"] == made["profile_id"]
