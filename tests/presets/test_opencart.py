"""The OpenCart preset: ``altcraft-sync init --preset opencart`` writes a mapping that works, read-only, on
OpenCart 3.0.3.8's own tables (column names and types as upload/install/opencart.sql defines them), tested on
generated data with every case of issue 26: HTML-escaped names, a 0-decimal currency and a rate, 4-decimal
prices, negative stock, a disabled product, an abandoned checkout, a phone-only order, an order naming a
deleted product, statuses that move stock without touching the product, and a non-default table prefix."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import PEOPLE_STREAMS, db_now, run_all
from tests.presets.common import init_and_check, profile_key
from tests.presets.opencart_shop import DELETED_PRODUCT, LIVE_ORDERS, ORDERS, STATUS, build_opencart_shop, shown

STREAMS = ["categories", "products", *PEOPLE_STREAMS, "orders"]  # the buyers are profiles before their orders


def _sync(cfg) -> dict:
    stats = run_all(cfg, streams=STREAMS)
    left = {n: (s.rejected, s.failed, s.invalid, s.deferred, s.quarantine_reasons) for n, s in stats.items()
            if s.rejected or s.failed or s.invalid or s.deferred}
    assert not left, f"(rejected, failed, invalid, deferred, reasons) per stream: {left}"
    return stats


def _opencart_moves(url: str, prefix: str) -> None:
    """What OpenCart does between the runs, as its own code writes it: addOrderHistory cancels order 8 (its
    stock goes back with a bare UPDATE of product.quantity; only the order's date_modified moves), the
    abandoned checkout 3 completes (Pending subtracts its stock), and product 42 is disabled in the admin."""
    engine = sa.create_engine(url)
    now = db_now(engine).replace(microsecond=0) - timedelta(minutes=5)  # past the safety margin
    meta = sa.MetaData()
    order, product, history = (sa.Table(prefix + name, meta, autoload_with=engine)
                               for name in ("order", "product", "order_history"))
    with engine.begin() as conn:
        for order_id, status in ((8, STATUS["canceled"]), (3, STATUS["pending"])):
            conn.execute(order.update().where(order.c.order_id == order_id).values(order_status_id=status,
                                                                                   date_modified=now))
            conn.execute(history.insert().values(order_history_id=100 + order_id, order_id=order_id,
                                                 order_status_id=status, notify=0, comment="", date_added=now))
        conn.execute(product.update().where(product.c.product_id == 44).values(quantity=product.c.quantity + 2))
        conn.execute(product.update().where(product.c.product_id == 40).values(quantity=product.c.quantity - 1))
        conn.execute(product.update().where(product.c.product_id == 42).values(status=0, date_modified=now))
    engine.dispose()


def test_the_opencart_preset_delivers_every_real_order_exactly(shop_url: str, tmp_path: Path, emulator) -> None:
    build_opencart_shop(shop_url, "shop_", LIVE_ORDERS)
    cfg = init_and_check("opencart", shop_url, tmp_path, emulator, table_prefix="shop_")
    emulator.currencies.add("JPY")

    _sync(cfg)
    store = emulator.store
    assert (store.products["44"]["count"], store.orders["8"]["status"]) == (10, "paid")
    assert "3" not in store.orders  # the abandoned checkout

    _opencart_moves(shop_url, "shop_")
    _sync(cfg)

    # names unescaped, read in the store's language (en-gb is language 2 here)
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "20": ("Desktops", None), "18": ("Laptops & Notebooks", None), "26": ("PC", "20")}
    assert {k: (v["name"], v["price"], v["count"], v["is_available"]) for k, v in store.products.items()} == {
        "40": ("iPhone", "101", 969, True),
        "41": ("iMac", "100", 977, False),                   # disabled
        "42": ('Apple Cinema 30"', "122.01", 5, False),      # 4-decimal price as shown; disabled since
        "43": ("MacBook", "80.5", 0, False),                 # stock below zero: 0, not available
        "44": ("iPod", "19.99", 12, True),                   # stock put back by the cancellation
    }
    assert {v["currency"] for v in store.products.values()} == {"USD"}
    assert sorted(store.products["40"]["categories"]) == ["20", "26"]

    # every real order, nothing else, each amount exact to its currency's minor unit
    assert set(store.orders) == {str(o["order_id"]) for o, _, _ in LIVE_ORDERS}
    for order, lines, shipping in LIVE_ORDERS:
        sent, currency = store.orders[str(order["order_id"])], order["currency_code"]
        assert (sent["currency"], Decimal(sent["total_price"])) == (currency, shown(order["total"], currency)), sent
        if shipping:
            assert Decimal(sent["delivery_cost"]) == shown(Decimal(shipping), currency)
        assert [(x["product"], x["count"], Decimal(x["final_price_per_item"]), Decimal(x["base_price_per_item"]))
                for x in sent["lines"]] == [
            (str(x["product_id"]), x["quantity"], shown(x["price"] + x["tax"], currency), shown(x["price"], currency))
            for x in lines]
    assert store.orders["4"]["total_price"] == "19066"  # JPY: no decimals
    assert store.orders["2"]["total_price"] == "94.15"  # 120 x 0.78460002

    # order and line statuses follow OpenCart's status
    assert {k: (v["status"], {x["status"] for x in v["lines"]}) for k, v in store.orders.items()} == {
        "1": ("delivered", {"delivered"}), "2": ("paid", {"processing"}), "3": ("new", {"new"}),
        "4": ("delivered", {"delivering"}),  # Shipped
        "5": ("new", {"new"}), "7": ("paid", {"processing"}), "8": ("canceled", {"canceled"})}
    # the order taken by phone is matched by its telephone
    five = store.orders["5"]
    # its phone as its profile has it (issue 28)
    assert (five.get("matching"), five.get("phone"), five.get("email")) == ("phone", "+79123456789", None)


@pytest.mark.parametrize("known_products_only", [True, False], ids=["altcraft-refuses-unknown", "altcraft-takes-unknown"])
def test_orders_naming_a_deleted_product_go_out(shop_url: str, tmp_path: Path, emulator, known_products_only) -> None:
    """Order 6 names product 45, which OpenCart deleted for good: it goes out with its refund, under either
    reading of api.md (Altcraft refuses or takes a line naming a product it does not hold)."""
    build_opencart_shop(shop_url, "oc_")
    cfg = init_and_check("opencart", shop_url, tmp_path, emulator)
    emulator.currencies.add("JPY")
    emulator.require_known_products = known_products_only
    _sync(cfg)
    _sync(cfg)
    store = emulator.store
    assert set(store.orders) == {str(o["order_id"]) for o, _, _ in ORDERS if o["order_status_id"]}
    six = store.orders["6"]
    assert (six["status"], [(x["product"], x["status"]) for x in six["lines"]], Decimal(six["total_price"])) == (
        "canceled", [(str(DELETED_PRODUCT), "refunded")], 300)
    # the stand-in: unavailable, named as the line names it (unescaped)
    stand_in = store.products[str(DELETED_PRODUCT)]
    assert (stand_in["name"], stand_in["is_available"]) == ("Sony VAIO & Dock", False)


def test_a_first_load_of_history_fires_no_triggers(tmp_path: Path, emulator) -> None:
    """Months-old orders go with skip_triggers; an order OpenCart changed minutes ago fires them as usual."""
    url = f"sqlite:///{tmp_path}/shop.db"
    build_opencart_shop(url, "oc_", LIVE_ORDERS)
    cfg = init_and_check("opencart", url, tmp_path, emulator)
    emulator.currencies.add("JPY")
    _sync(cfg)
    assert all(emulator.skip_triggers[o] for o in emulator.store.orders), emulator.skip_triggers
    _opencart_moves(url, "oc_")
    _sync(cfg)
    assert not emulator.skip_triggers["8"] and not emulator.skip_triggers["3"], emulator.skip_triggers



def test_every_opencart_buyer_is_one_profile_and_only_subscribers_are_subscribed(shop_url: str, tmp_path: Path,
                                                                                emulator) -> None:
    """Customers (oc_customer, names HTML-decoded, the default address's city) and guest buyers (orders whose
    customer_id names no customer) arrive as profiles before their orders, into an emulator refusing orders of
    unknown buyers: each buyer once (e-mail case aside, else the telephone), a customer's orders matched by the
    account's e-mail; only a customer with newsletter = 1 and an e-mail gets a subscription. A second run sends
    nothing; an unsubscribe made in Altcraft survives a renamed customer's re-send."""
    emulator.require_profiles = True
    build_opencart_shop(shop_url, "shop_", LIVE_ORDERS, people=True)
    cfg = init_and_check("opencart", shop_url, tmp_path, emulator, table_prefix="shop_")
    emulator.currencies.add("JPY")

    stats = run_all(cfg, streams=STREAMS)
    assert all(s.rejected == s.failed == s.invalid == s.deferred == 0 for s in stats.values()), stats
    store = emulator.store
    assert set(store.orders) == {str(o["order_id"]) for o, _, _ in LIVE_ORDERS if o["order_status_id"]} | {
        "20", "21", "22", "23", "24", "25"}
    profiles = {profile_key(p): (p.get("_fname"), p.get("_lname"), p.get("_city"),
                                  sorted(s["channel"] for s in p.get("subscriptions") or []))
                for p in store.profiles.values()}
    assert len(profiles) == len(store.profiles)  # every buyer once
    assert profiles == {
        "email:ann@example.com": ("Ann", 'O"Neil & Co', "Omsk", ["email"]),  # decoded; subscribed
        "email:bob@example.com": ("Bob", "Brown", None, []),                  # newsletter 0
        "phone:+79115550077": ("Pia", "Ray", None, []),                       # consent, but no e-mail to send to
        **{f"email:{e}@example.com": (None, None, None, []) for e in "abdgh"},  # guests of the base orders
        "phone:+79123456789": (None, None, None, []),                           # the phone order's buyer
        "email:guest@example.com": ("Gus", "Lee", "Kazan", []),
        "email:gone@example.com": ("Gus", "Lee", "Kazan", []),
    }
    assert store.orders["20"]["email"] == "ann@example.com"  # the account's e-mail, not the one of the time

    again = run_all(cfg, streams=STREAMS)
    assert sum(s.new + s.changed for s in again.values()) == 0
    ann = next(p for p in store.profiles.values() if p.get("email") == "ann@example.com")
    ann["subscriptions"][0]["status"] = 2  # unsubscribed in Altcraft
    engine = sa.create_engine(shop_url)
    customer = sa.Table("shop_customer", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(customer.update().where(customer.c.customer_id == 1).values(firstname="Anna"))
    engine.dispose()
    third = run_all(cfg, streams=STREAMS)
    assert (third["customers"].changed, third["guests"].new + third["guests"].changed) == (1, 0)
    assert ann["_fname"] == "Anna" and ann["subscriptions"][0]["status"] == 2
