"""The WooCommerce (HPOS and legacy posts) presets: ``altcraft-sync init --preset woocommerce`` writes a mapping
that works, read-only, on the platform's own tables, tested on generated data in those exact tables (column
names and types as the platform's source defines them; see tests/presets/woocommerce_shop.py for the store)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import ALL_STREAMS, db_now, run_all
from tests.presets import woocommerce_shop as shop
from tests.presets.common import init_and_check, profile_key

DELETED = frozenset({106})  # the order that names a deleted product, left out where the test is not about it
PRESETS = [("woocommerce", False, "shop7_"), ("woocommerce-legacy", True, None)]  # None: the default wp_


def _delivered_cleanly(stats: dict[str, Any]) -> None:
    assert all(s.rejected == s.failed == s.invalid == s.deferred == 0 for s in stats.values()), stats


def _lines(order: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {ln["external_id"]: (ln["product"], ln["count"], Decimal(ln["base_price_per_item"]),
                                Decimal(ln["final_price_per_item"]), ln["status"]) for ln in order["lines"]}


@pytest.mark.parametrize(("preset", "legacy", "prefix"), PRESETS, ids=["hpos", "legacy"])
def test_a_woocommerce_store_arrives_whole_and_exact(preset: str, legacy: bool, prefix: str | None,
                                                    shop_url: str, tmp_path: Path, emulator) -> None:
    """Every real order arrives, exact to the cent, drafts and auto-drafts stay out, availability follows
    WooCommerce's own rules; then WooCommerce changes things (a variation disabled, a product drafted, an order
    cancelled, which restocks through the parent product) and the second run carries exactly those."""
    tables = prefix or "wp_"
    md = shop.build(shop_url, tables, legacy=legacy, without=DELETED)
    cfg = init_and_check(preset, shop_url, tmp_path, emulator, table_prefix=prefix, ALTCRAFT_ENDPOINT="woo")

    _delivered_cleanly(run_all(cfg, ALL_STREAMS))
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "15": ("Kitchen", None), "16": ("Hoodies", None), "17": ("Hats & Caps", "16")}  # HTML-unescaped
    products = {k: (v["name"], Decimal(v["price"]), v.get("count"), v["is_available"], v.get("currency"))
                for k, v in store.products.items()}
    assert products == {
        "10": ("Beanie", Decimal(18), 7, True, "USD"),
        "20": ("Hoodie", Decimal(42), 5, True, "USD"),
        "30": ("Salt & Pepper Mill", Decimal("10.13"), 0, True, "USD"),  # 10.1250 shown as 10.13; backorders: 0
        "40": ("Old Poster", Decimal(5), 2, False, "USD"),                # a draft is not for sale
    }
    assert store.products["10"]["categories"] == ["17"]
    skus = {k: (v["product_external_id"], Decimal(v["price"]), v.get("count"), v["is_available"])
            for k, v in store.skus.items()}
    assert skus == {"21": ("20", Decimal(42), 3, True), "22": ("20", Decimal(45), 0, False),
                    "23": ("20", Decimal(42), 4, False),   # disabled (private)
                    "24": ("20", Decimal(44), 5, True)}    # its stock is the parent's

    orders = store.orders
    # not the refund, the trashed order, the checkout draft or the admin auto-draft
    assert set(orders) == {"100", "101", "105", "108"}
    first = orders["100"]
    assert (first["status"], Decimal(first["total_price"]), Decimal(first["delivery_cost"]), first["email"],
            first["endpoint"], first["currency"]) == ("part_refunded", 79, 5, "buyer100@example.com", "woo", "USD")
    assert _lines(first) == {"1": ("10", 2, Decimal(18), Decimal(16), "delivered"),
                             "2": ("21", 1, Decimal(42), Decimal(42), "refunded")}  # its refund took all of it
    assert orders["101"]["status"] == "paid" and _lines(orders["101"])["5"][-1] == "processing"
    phone = orders["105"]  # no e-mail: matched by phone
    assert (phone["matching"], phone["phone"], phone.get("email")) == ("phone", "+79990001122", None)
    assert _lines(phone) == {"9": ("30", 2, Decimal("10.63"), Decimal("10.63"), "new")}  # 21.25 / 2 = 10.625
    assert _lines(orders["108"]) == {"11": ("24", 3, Decimal(44), Decimal(44), "new")}

    # WooCommerce changes things; the second run carries every change and nothing else
    shop.change(shop_url, md, tables, db_now(sa.create_engine(shop_url)) - timedelta(seconds=300), legacy)
    _delivered_cleanly(run_all(cfg, ALL_STREAMS))
    assert store.skus["21"]["is_available"] is False                      # disabled later
    assert store.products["10"]["is_available"] is False                  # switched to draft
    assert (store.skus["24"]["count"], store.skus["24"]["is_available"]) == (8, True)  # restocked through the parent
    assert orders["108"]["status"] == "canceled" and _lines(orders["108"])["11"][-1] == "canceled"
    assert set(orders) == {"100", "101", "105", "108"}
    # the months-old history went without triggers; the cancellation just made fires them
    assert {k: emulator.skip_triggers[k] for k in orders} == {"100": True, "101": True, "105": True, "108": False}


def test_a_store_with_whole_currency_units_gets_whole_amounts(shop_url: str, tmp_path: Path, emulator) -> None:
    """woocommerce_price_num_decimals = 0 (a yen store): every amount rounded half up to whole units, as
    WooCommerce shows it."""
    shop.build(shop_url, "wp_", decimals=0, currency="JPY", without=DELETED)
    engine = sa.create_engine(shop_url)
    md = shop.schema("wp_")
    with engine.begin() as conn:
        conn.execute(md.tables["wp_wc_product_meta_lookup"].update().where(
            md.tables["wp_wc_product_meta_lookup"].c.product_id == 30).values(min_price=Decimal("1500.5000")))
        meta = md.tables["wp_woocommerce_order_itemmeta"]
        conn.execute(meta.update().where((meta.c.order_item_id == 11) & (meta.c.meta_key.in_(
            ["_line_subtotal", "_line_total"]))).values(meta_value="1000"))
    engine.dispose()
    cfg = init_and_check("woocommerce", shop_url, tmp_path, emulator)
    emulator.currencies.add("JPY")  # enabled in the Altcraft account, as a yen store's would be

    _delivered_cleanly(run_all(cfg, ALL_STREAMS))
    assert (emulator.store.products["30"]["price"], emulator.store.products["30"]["currency"]) == ("1501", "JPY")
    assert {k: (v["base_price_per_item"], v["final_price_per_item"]) for k, v in
            ((ln["external_id"], ln) for ln in emulator.store.orders["108"]["lines"])} == {"11": ("333", "333")}
    assert emulator.store.orders["105"]["lines"][0]["final_price_per_item"] == "11"  # 10.625 -> 11


def test_the_decimals_option_defaults_to_two(shop_url: str, tmp_path: Path, emulator) -> None:
    """A store that never saved its decimals setting has WooCommerce's default, 2."""
    shop.build(shop_url, "wp_", legacy=True, decimals=None, without=DELETED)
    cfg = init_and_check("woocommerce-legacy", shop_url, tmp_path, emulator)

    _delivered_cleanly(run_all(cfg, ALL_STREAMS))
    assert emulator.store.orders["105"]["lines"][0]["final_price_per_item"] == "10.63"
    assert emulator.store.products["30"]["price"] == "10.13"


@pytest.mark.parametrize("known_only", [True, False], ids=["refuses-unknown", "accepts-unknown"])
@pytest.mark.parametrize(("preset", "legacy"), [("woocommerce", False), ("woocommerce-legacy", True)],
                         ids=["hpos", "legacy"])
def test_an_order_naming_a_deleted_product_goes_out(preset: str, legacy: bool, known_only: bool, shop_url: str,
                                                    tmp_path: Path, emulator) -> None:
    """WooCommerce deletes products that old orders still name: such an order is never held back; it goes out
    with an unavailable stand-in made of the line's own name (HTML-unescaped) and price, whether Altcraft
    refuses or accepts a line naming a product it does not hold."""
    emulator.require_known_products = known_only
    shop.build(shop_url, "wp_", legacy=legacy)
    cfg = init_and_check(preset, shop_url, tmp_path, emulator)

    for _ in range(2):
        _delivered_cleanly(run_all(cfg, ALL_STREAMS))
    order = emulator.store.orders["106"]
    assert order["status"] == "canceled" and _lines(order) == {
        "10": ("50", 1, Decimal("12.5"), Decimal("12.5"), "canceled")}
    stand_in = emulator.store.products["50"]
    assert (stand_in["name"], Decimal(stand_in["price"]), stand_in["is_available"], stand_in["currency"]) == (
        "Discontinued Lamp", Decimal("12.5"), False, "USD")
    assert set(emulator.store.orders) == {"100", "101", "105", "106", "108"}
    assert set(emulator.store.products) == {"10", "20", "30", "40", "50"}



@pytest.mark.parametrize(("preset", "legacy", "prefix"), PRESETS, ids=["hpos", "legacy"])
def test_every_buyer_is_one_profile_before_its_orders(preset: str, legacy: bool, prefix: str | None,
                                                     shop_url: str, tmp_path: Path, emulator) -> None:
    """WordPress users and guest buyers arrive as Altcraft profiles before their orders, into an emulator that
    refuses an order whose buyer has no profile: customers are the users with the customer role or with an
    order, each once, keyed by the account's e-mail (an order's own billing e-mail does not split the person);
    guests are the e-mails (case aside), else the phones, of orders without a user, minus e-mails a customer
    has. WooCommerce core keeps no newsletter consent, so nobody gets a subscription. An anonymized order is
    nobody's and is not sent. A second run sends nothing; a renamed customer re-sends exactly that profile."""
    emulator.require_profiles = True
    tables = prefix or "wp_"
    shop.build(shop_url, tables, legacy=legacy, without=DELETED, people=True)
    cfg = init_and_check(preset, shop_url, tmp_path, emulator, table_prefix=prefix)

    stats = run_all(cfg, ALL_STREAMS)
    _delivered_cleanly(stats)
    store = emulator.store
    assert set(store.orders) == {"100", "101", "105", "108", *map(str, range(120, 127))}  # not 127 (anonymized)
    profiles = {profile_key(p): (p.get("_fname"), p.get("_lname"), p.get("_city"), p.get("phones"))
                for p in store.profiles.values()}
    assert len(profiles) == len(store.profiles)  # every buyer once
    assert profiles == {
        "email:ann@example.com": ("Ann", "Smith", "Omsk", ["+79120000001"]),
        "email:bob@example.com": ("Bob", "Brown", None, None),        # a customer by role; his guest order is his
        "email:manager@example.com": ("Meg", "Ray", None, None),      # a customer by her order
        "email:buyer100@example.com": ("Ann", "Lee", None, None),     # guests, from their orders' billing address
        "email:buyer101@example.com": ("Ann", "Lee", None, None),
        "email:buyer108@example.com": ("Ann", "Lee", None, None),
        "email:guest@example.com": ("Gus", "Lee", "Kazan", None),      # two orders, two spellings: one guest
        "email:gone@example.com": ("Ann", "Lee", None, None),         # a deleted user's order: a guest's
        "phone:+79990001122": ("Ann", "Lee", None, ["+79990001122"]),  # phone-only guests
        "phone:+79115550077": ("Pia", "Lee", None, ["+79115550077"]),
    }
    assert all(not p.get("subscriptions") for p in store.profiles.values())  # no consent column: no subscriptions
    assert (stats["customers"].delivered, stats["guests"].delivered) == (3, 7)
    by_key = {profile_key(p): pid for pid, p in store.profiles.items()}
    orders = store.orders
    assert orders["120"]["email"] == "ann@example.com"                # the account's e-mail, not the billing one
    assert emulator_profile(emulator, orders["120"]) == by_key["email:ann@example.com"]
    assert emulator_profile(emulator, orders["124"]) == by_key["email:bob@example.com"]
    assert emulator_profile(emulator, orders["126"]) == by_key["phone:+79115550077"]

    again = run_all(cfg, ALL_STREAMS)
    assert sum(s.new + s.changed for s in again.values()) == 0
    engine = sa.create_engine(shop_url)
    usermeta = shop.schema(tables).tables[tables + "usermeta"]
    with engine.begin() as conn:
        conn.execute(usermeta.update().where((usermeta.c.user_id == 2) & (usermeta.c.meta_key == "first_name"))
                     .values(meta_value="Robert"))
    engine.dispose()
    third = run_all(cfg, ALL_STREAMS)
    assert (third["customers"].changed, third["guests"].new + third["guests"].changed) == (1, 0)
    assert store.profiles[by_key["email:bob@example.com"]]["_fname"] == "Robert"


def emulator_profile(emulator, order: dict[str, Any]) -> str | None:
    """The profile the emulator finds for an order (by its matching mode and key)."""
    from sandbox.emulator_profiles import order_profile

    return order_profile(emulator, order)
