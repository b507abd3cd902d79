"""The Magento 2 preset: ``altcraft-sync init --preset magento`` writes a mapping that works, read-only, on the
platform's own tables, tested on generated data in those exact tables (column names and types as
magento/magento2's etc/db_schema.xml files define them), under a table prefix."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.helpers import db_now, run_all
from tests.presets.common import assert_totals_exact, init_and_check, line_tuples, profile_key, sync_cleanly

PREFIX = "mg_"
INT, SMALL = sa.Integer, sa.SmallInteger
M_MONEY, QTY, PRICE = sa.Numeric(20, 4), sa.Numeric(12, 4), sa.Numeric(20, 6)
STR = sa.String(255)


def _value_table(md: sa.MetaData, name: str, value: Any) -> None:
    sa.Table(f"{PREFIX}{name}", md, sa.Column("value_id", INT, primary_key=True), sa.Column("attribute_id", SMALL),
             sa.Column("store_id", SMALL), sa.Column("entity_id", INT), sa.Column("value", value))


def _schema() -> sa.MetaData:
    """The tables the preset reads, prefixed, with Magento's column types (Eav, Catalog, CatalogInventory,
    Sales, Config db_schema.xml; only the columns the preset or the data below use)."""
    md = sa.MetaData()
    t = PREFIX
    sa.Table(f"{t}eav_entity_type", md, sa.Column("entity_type_id", SMALL, primary_key=True),
             sa.Column("entity_type_code", sa.String(50)))
    sa.Table(f"{t}eav_attribute", md, sa.Column("attribute_id", SMALL, primary_key=True),
             sa.Column("entity_type_id", SMALL), sa.Column("attribute_code", STR))
    sa.Table(f"{t}core_config_data", md, sa.Column("config_id", INT, primary_key=True), sa.Column("scope", sa.String(8)),
             sa.Column("scope_id", INT), sa.Column("path", STR), sa.Column("value", sa.Text))
    sa.Table(f"{t}catalog_category_entity", md, sa.Column("entity_id", INT, primary_key=True),
             sa.Column("parent_id", INT), sa.Column("path", STR), sa.Column("level", INT),
             sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
    _value_table(md, "catalog_category_entity_varchar", STR)
    sa.Table(f"{t}catalog_product_entity", md, sa.Column("entity_id", INT, primary_key=True),
             sa.Column("attribute_set_id", SMALL), sa.Column("type_id", sa.String(32)), sa.Column("sku", sa.String(64)),
             sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
    _value_table(md, "catalog_product_entity_varchar", STR)
    _value_table(md, "catalog_product_entity_decimal", PRICE)
    _value_table(md, "catalog_product_entity_int", INT)
    sa.Table(f"{t}catalog_product_super_link", md, sa.Column("link_id", INT, primary_key=True),
             sa.Column("product_id", INT), sa.Column("parent_id", INT))
    sa.Table(f"{t}catalog_category_product", md, sa.Column("entity_id", INT, primary_key=True),
             sa.Column("category_id", INT), sa.Column("product_id", INT), sa.Column("position", INT))
    sa.Table(f"{t}cataloginventory_stock_item", md, sa.Column("item_id", INT, primary_key=True),
             sa.Column("product_id", INT), sa.Column("stock_id", SMALL), sa.Column("qty", QTY),
             sa.Column("is_in_stock", SMALL), sa.Column("is_qty_decimal", SMALL))
    sa.Table(f"{t}sales_order", md, sa.Column("entity_id", INT, primary_key=True), sa.Column("state", sa.String(32)),
             sa.Column("status", sa.String(32)), sa.Column("store_id", SMALL), sa.Column("increment_id", sa.String(50)),
             sa.Column("customer_email", sa.String(128)), sa.Column("customer_is_guest", SMALL),
             sa.Column("customer_id", INT), sa.Column("customer_firstname", STR), sa.Column("customer_lastname", STR),
             *(sa.Column(c, M_MONEY) for c in (
                 "grand_total", "shipping_amount", "shipping_tax_amount", "shipping_discount_amount",
                 "shipping_discount_tax_compensation_amount", "total_refunded")),
             sa.Column("order_currency_code", sa.String(3)), sa.Column("created_at", sa.DateTime),
             sa.Column("updated_at", sa.DateTime))
    sa.Table(f"{t}sales_order_address", md, sa.Column("entity_id", INT, primary_key=True), sa.Column("parent_id", INT),
             sa.Column("email", STR), sa.Column("telephone", STR), sa.Column("address_type", STR),
             sa.Column("firstname", STR), sa.Column("lastname", STR), sa.Column("city", STR))
    sa.Table(f"{t}customer_entity", md, sa.Column("entity_id", INT, primary_key=True), sa.Column("website_id", SMALL),
             sa.Column("email", STR), sa.Column("firstname", STR), sa.Column("lastname", STR), sa.Column("dob", sa.Date),
             sa.Column("gender", INT), sa.Column("default_billing", INT), sa.Column("created_at", sa.DateTime),
             sa.Column("updated_at", sa.DateTime))
    sa.Table(f"{t}customer_address_entity", md, sa.Column("entity_id", INT, primary_key=True),
             sa.Column("parent_id", INT), sa.Column("city", STR), sa.Column("telephone", STR),
             sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
    sa.Table(f"{t}newsletter_subscriber", md, sa.Column("subscriber_id", INT, primary_key=True),
             sa.Column("store_id", SMALL), sa.Column("change_status_at", sa.DateTime), sa.Column("customer_id", INT),
             sa.Column("subscriber_email", sa.String(150)), sa.Column("subscriber_status", INT))
    sa.Table(f"{t}sales_order_item", md, sa.Column("item_id", INT, primary_key=True), sa.Column("order_id", INT),
             sa.Column("parent_item_id", INT), sa.Column("product_id", INT), sa.Column("product_type", STR),
             sa.Column("sku", STR), sa.Column("name", STR), sa.Column("is_qty_decimal", SMALL),
             *(sa.Column(c, QTY) for c in ("qty_ordered", "qty_refunded", "qty_canceled")),
             *(sa.Column(c, M_MONEY) for c in (
                 "price", "original_price", "price_incl_tax", "row_total", "tax_amount", "discount_amount",
                 "discount_tax_compensation_amount")),
             sa.Column("created_at", sa.DateTime), sa.Column("updated_at", sa.DateTime))
    return md


MG = _schema()
DAY = datetime(2026, 11, 20, 10, 0, 0)
NAME, PRICE_ATTR, STATUS = 73, 77, 97   # catalog_product attribute ids of a fresh install
ENABLED, DISABLED = 1, 2                 # Catalog/Model/Product/Attribute/Source/Status.php
DELETED_ORDER = 10


def _t(name: str) -> sa.Table:
    return MG.tables[f"{PREFIX}{name}"]


# product id, type, sku, name, price, status, qty, in stock
PRODUCTS = [
    (1, "simple", "24-MB01", "Joust Duffle Bag", "34", ENABLED, "100", 1),
    (2, "simple", "24-MB02", "Fusion Backpack", "59", DISABLED, "10", 1),        # disabled: unavailable
    (3, "simple", "MS-TEE", "Backorder Tee", "19.9950", ENABLED, "-3", 1),        # 4 places; negative stock
    (6, "simple", "SALT", "Salt & Pepper <Set>", "12", ENABLED, "7", 1),          # stored as typed
    (67, "configurable", "MH01", "Chaz Hoodie", "52", ENABLED, "0", 1),
    (68, "simple", "MH01-XS-Black", "Chaz Hoodie-XS-Black", "52", ENABLED, "10", 1),
    (69, "simple", "MH01-XS-Gray", "Chaz Hoodie-XS-Gray", "54", ENABLED, "0", 0),
    (70, "configurable", "MJ01", "Beaumont Jacket", "80", DISABLED, "0", 1),       # its child is unavailable
    (71, "simple", "MJ01-S", "Beaumont Jacket-S", "80", ENABLED, "5", 1),
]
# order id, state/status, currency, e-mail, billing telephone, shipping, shipping tax, grand total, refunded
ORDERS = [
    (1, "complete", "USD", "roni@example.org", "+15550001", "10", "0", "71.2", "0"),
    (2, "processing", "USD", "veronica@example.org", "+15550002", "5", "0.41", "61.7", "0"),
    (3, "complete", "USD", "ann@example.org", "+15550003", "5", "0", "25", "10"),       # part refunded
    (4, "closed", "USD", "bob@example.org", None, "5", "0", "39", "39"),                # fully refunded
    (5, "canceled", "USD", "carl@example.org", None, "5", "0", "39", "0"),
    (6, "pending_payment", "USD", "dan@example.org", None, "0", "0", "34", "0"),        # left at the payment page
    (7, "complete", "JPY", "kenji@example.jp", None, "500", "0", "4550", "0"),          # 0 places
    (8, "processing", "USD", "1764000000@example.com", "+15550008", "0", "0", "12", "0"),  # admin phone order
    (9, "processing", "USD", None, "+15550009", "0", "0", "12", "0"),                    # no e-mail at all
    (10, "complete", "USD", "eve@example.org", None, "0", "0", "25", "0"),              # a deleted product (own test)
    (11, "complete", "USD", "fay@example.org", None, "0", "0", "51", "0"),              # 1.5 by weight
]
# item, order, parent item, product, type, name, qty, price, price incl tax, row total, tax, discount,
# qty refunded, qty canceled
ITEMS = [
    (1, 1, None, 1, "simple", "Joust Duffle Bag", "2", "34", "34", "68", "0", "6.8", "0", "0"),
    (2, 2, None, 67, "configurable", "Chaz Hoodie", "1", "52", "56.29", "52", "4.29", "0", "0", "0"),
    (3, 2, 2, 68, "simple", "Chaz Hoodie-XS-Black", "1", "0", "0", "0", "0", "0", "0", "0"),
    (4, 3, None, 3, "simple", "Backorder Tee", "1", "20", "20", "20", "0", "0", "0", "0"),
    (5, 4, None, 1, "simple", "Joust Duffle Bag", "1", "34", "34", "34", "0", "0", "1", "0"),
    (6, 5, None, 1, "simple", "Joust Duffle Bag", "1", "34", "34", "34", "0", "0", "0", "1"),
    (7, 6, None, 1, "simple", "Joust Duffle Bag", "1", "34", "34", "34", "0", "0", "0", "0"),
    (8, 7, None, 6, "simple", "Salt & Pepper <Set>", "3", "1500", "1500", "4500", "0", "450", "0", "0"),
    (9, 8, None, 6, "simple", "Salt & Pepper <Set>", "1", "12", "12", "12", "0", "0", "0", "0"),
    (10, 9, None, 6, "simple", "Salt & Pepper <Set>", "1", "12", "12", "12", "0", "0", "0", "0"),
    (11, 10, None, 5, "simple", "Retired Belt", "1", "25", "25", "25", "0", "0", "0", "0"),
    (12, 11, None, 1, "simple", "Joust Duffle Bag", "1.5", "34", "34", "51", "0", "0", "0", "0"),
]


# customer id, e-mail, first name, last name, dob, gender, billing telephone, city, newsletter status
CUSTOMERS = [
    (1, "roni@example.org", "Roni", "Cole", "1990-05-01", 2, "+1 555 000-1000", "Austin", 1),  # subscribed
    (2, "sam@example.org", "Sam", "Hill", None, 1, None, None, 3),                           # unsubscribed
]
# order id, customer id (None: its customer was deleted), e-mail on the order
PEOPLE_ORDERS = [(12, 2, "sam.old@example.org"), (13, None, "gone@example.org")]


def _magento_shop(url: str, deleted_product_order: bool = False, people: bool = False) -> sa.Engine:
    """A category tree (one name overridden by store view 1), the products above (simple, configurable with
    children, disabled, backordered, 4-place price), stock items, and the orders above with their items and
    addresses; order 10, naming a product deleted from the catalogue, only when asked; with ``people``, the
    customers above (addresses, newsletter rows), a guest's newsletter subscription (carl@) and
    :data:`PEOPLE_ORDERS`."""
    orders = [o for o in ORDERS if deleted_product_order or o[0] != DELETED_ORDER]
    items = [i for i in ITEMS if deleted_product_order or i[1] != DELETED_ORDER]
    if people:
        orders += [(i, "complete", "USD", email, None, "0", "0", "34", "0") for i, _, email in PEOPLE_ORDERS]
        items += [(100 + i, i, None, 1, "simple", "Joust Duffle Bag", "1", "34", "34", "34", "0", "0", "0", "0")
                  for i, _, _ in PEOPLE_ORDERS]
    owner = {i: c for i, c, _ in PEOPLE_ORDERS}
    engine = sa.create_engine(url)
    MG.drop_all(engine)
    MG.create_all(engine)
    with engine.begin() as conn:
        conn.execute(_t("eav_entity_type").insert(), [{"entity_type_id": 3, "entity_type_code": "catalog_category"},
                                                      {"entity_type_id": 4, "entity_type_code": "catalog_product"}])
        conn.execute(_t("eav_attribute").insert(), [
            {"attribute_id": 45, "entity_type_id": 3, "attribute_code": "name"},
            {"attribute_id": NAME, "entity_type_id": 4, "attribute_code": "name"},
            {"attribute_id": PRICE_ATTR, "entity_type_id": 4, "attribute_code": "price"},
            {"attribute_id": STATUS, "entity_type_id": 4, "attribute_code": "status"}])
        conn.execute(_t("core_config_data").insert(), [
            {"config_id": 1, "scope": "default", "scope_id": 0, "path": "currency/options/base", "value": "USD"}])
        cats = [(1, 0, "1", 0, "Root Catalog"), (2, 1, "1/2", 1, "Default Category"), (3, 2, "1/2/3", 2, "Gear"),
                (4, 3, "1/2/3/4", 3, "Bags")]
        conn.execute(_t("catalog_category_entity").insert(), [
            {"entity_id": i, "parent_id": p, "path": path, "level": lv, "created_at": DAY, "updated_at": DAY}
            for i, p, path, lv, _ in cats])
        conn.execute(_t("catalog_category_entity_varchar").insert(), [
            *({"value_id": i, "attribute_id": 45, "store_id": 0, "entity_id": i, "value": n} for i, _, _, _, n in cats),
            {"value_id": 10, "attribute_id": 45, "store_id": 1, "entity_id": 4, "value": "Bags & Luggage"}])
        conn.execute(_t("catalog_product_entity").insert(), [
            {"entity_id": i, "attribute_set_id": 4, "type_id": ty, "sku": sku, "created_at": DAY, "updated_at": DAY}
            for i, ty, sku, *_ in PRODUCTS])
        conn.execute(_t("catalog_product_entity_varchar").insert(), [
            *({"value_id": i, "attribute_id": NAME, "store_id": 0, "entity_id": i, "value": n}
              for i, _, _, n, *_ in PRODUCTS),
            {"value_id": 100, "attribute_id": NAME, "store_id": 1, "entity_id": 1, "value": "Joust Duffle Bag (EN)"}])
        conn.execute(_t("catalog_product_entity_decimal").insert(), [
            {"value_id": i, "attribute_id": PRICE_ATTR, "store_id": 0, "entity_id": i, "value": Decimal(p)}
            for i, _, _, _, p, *_ in PRODUCTS])
        conn.execute(_t("catalog_product_entity_int").insert(), [
            {"value_id": i, "attribute_id": STATUS, "store_id": 0, "entity_id": i, "value": st}
            for i, _, _, _, _, st, *_ in PRODUCTS])
        conn.execute(_t("catalog_product_super_link").insert(), [
            {"link_id": n, "product_id": c, "parent_id": p} for n, (c, p) in enumerate([(68, 67), (69, 67), (71, 70)], 1)])
        conn.execute(_t("catalog_category_product").insert(), [
            {"entity_id": 1, "category_id": 4, "product_id": 1, "position": 0},
            {"entity_id": 2, "category_id": 3, "product_id": 67, "position": 0}])
        conn.execute(_t("cataloginventory_stock_item").insert(), [
            {"item_id": i, "product_id": i, "stock_id": 1, "qty": Decimal(q), "is_in_stock": st, "is_qty_decimal": 0}
            for i, *_, q, st in PRODUCTS])
        conn.execute(_t("sales_order").insert(), [
            {"entity_id": i, "state": st, "status": st, "store_id": 1, "increment_id": f"00000000{i}",
             "customer_email": email, "customer_is_guest": int(i not in owner), "customer_id": owner.get(i),
             "customer_firstname": f"Buyer{i}", "customer_lastname": "Doe", "grand_total": Decimal(gt),
             "shipping_amount": Decimal(sh), "shipping_tax_amount": Decimal(shtax), "shipping_discount_amount": 0,
             "shipping_discount_tax_compensation_amount": 0, "total_refunded": Decimal(rf),
             "order_currency_code": cur, "created_at": DAY, "updated_at": DAY + timedelta(minutes=i)}
            for i, st, cur, email, _, sh, shtax, gt, rf in orders])
        conn.execute(_t("sales_order_address").insert(), [
            {"entity_id": i, "parent_id": i, "email": email, "telephone": phone or "", "address_type": "billing",
             "firstname": f"Buyer{i}", "lastname": "Doe", "city": "Reno"}
            for i, _, _, email, phone, *_ in orders])
        if people:
            _people(conn)
        conn.execute(_t("sales_order_item").insert(), [
            {"item_id": i, "order_id": o, "parent_item_id": p, "product_id": pid, "product_type": ty, "sku": "x",
             "name": name, "is_qty_decimal": int(q == "1.5"), "qty_ordered": Decimal(q),
             "qty_refunded": Decimal(rq), "qty_canceled": Decimal(cq), "price": Decimal(pr),
             "original_price": Decimal(pr), "price_incl_tax": Decimal(pit), "row_total": Decimal(rt),
             "tax_amount": Decimal(tax), "discount_amount": Decimal(disc), "discount_tax_compensation_amount": 0,
             "created_at": DAY, "updated_at": DAY}
            for i, o, p, pid, ty, name, q, pr, pit, rt, tax, disc, rq, cq in items])
    return engine



def _people(conn: sa.Connection) -> None:
    from datetime import date

    conn.execute(_t("customer_entity").insert(), [
        {"entity_id": i, "website_id": 1, "email": email, "firstname": first, "lastname": last,
         "dob": date.fromisoformat(dob) if dob else None, "gender": gender, "default_billing": i if phone else None,
         "created_at": DAY - timedelta(days=i), "updated_at": DAY - timedelta(days=i)}
        for i, email, first, last, dob, gender, phone, *_ in CUSTOMERS])
    conn.execute(_t("customer_address_entity").insert(), [
        {"entity_id": i, "parent_id": i, "city": city, "telephone": phone, "created_at": DAY, "updated_at": DAY}
        for i, _, _, _, _, _, phone, city, _ in CUSTOMERS if phone])
    conn.execute(_t("newsletter_subscriber").insert(), [
        *({"subscriber_id": i, "store_id": 1, "change_status_at": DAY, "customer_id": i, "subscriber_email": email,
           "subscriber_status": status} for i, email, *_, status in CUSTOMERS),
        {"subscriber_id": 9, "store_id": 1, "change_status_at": DAY, "customer_id": 0,
         "subscriber_email": "Carl@example.org", "subscriber_status": 1}])  # a guest's subscription


def test_the_magento_preset_syncs_a_magento_database(shop_url: str, tmp_path: Path, emulator) -> None:
    engine = _magento_shop(shop_url)
    emulator.currencies.add("JPY")
    cfg = init_and_check("magento", shop_url, tmp_path, emulator, table_prefix=PREFIX, SHOP_CURRENCY="USD")

    sync_cleanly(cfg)
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "3": ("Gear", None), "4": ("Bags & Luggage", "3")}  # the store view's own name
    catalog = {k: (v["name"], Decimal(v["price"]), v["count"], v["is_available"]) for k, v in store.products.items()}
    assert catalog == {
        "1": ("Joust Duffle Bag (EN)", Decimal(34), 100, True),
        "2": ("Fusion Backpack", Decimal(59), 10, False),        # disabled
        "3": ("Backorder Tee", Decimal("20"), 0, True),           # 19.9950 to 2 places; -3 in stock is 0
        "6": ("Salt & Pepper <Set>", Decimal(12), 7, True),
        "67": ("Chaz Hoodie", Decimal(52), 0, True),
        "70": ("Beaumont Jacket", Decimal(80), 0, False)}
    assert store.products["67"]["categories"] == ["3"]
    assert {k: (v["product_external_id"], v["count"], v["is_available"]) for k, v in store.skus.items()} == {
        "68": ("67", 10, True), "69": ("67", 0, False), "71": ("70", 5, False)}  # 71: its configurable is disabled

    orders = store.orders
    assert set(orders) == {f"00000000{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9, 11)}  # 6 waits at the payment page
    assert {k: v["status"] for k, v in orders.items()} == {
        "000000001": "delivered", "000000002": "paid", "000000003": "part_refunded", "000000004": "canceled",
        "000000005": "canceled", "000000007": "delivered", "000000008": "paid", "000000009": "paid",
        "0000000011": "delivered"}
    assert line_tuples(orders["000000001"]) == [("1", 2, Decimal("30.6"), "delivered")]   # (68 - 6.80 discount) / 2
    assert line_tuples(orders["000000002"]) == [("68", 1, Decimal("56.29"), "processing")]  # the child, with its tax
    assert Decimal(orders["000000002"]["delivery_cost"]) == Decimal("5.41")           # shipping and its tax
    assert line_tuples(orders["000000004"]) == [("1", 1, Decimal(34), "refunded")]
    assert line_tuples(orders["000000005"]) == [("1", 1, Decimal(34), "canceled")]
    jpy = orders["000000007"]
    assert (jpy["currency"], jpy["total_price"], line_tuples(jpy)) == ("JPY", "4550", [("6", 3, Decimal(1350), "delivered")])
    assert line_tuples(orders["0000000011"]) == [("1", 1, Decimal(51), "delivered")]      # 1.5 x 34 as one line
    for number in ("000000008", "000000009"):  # phone orders: the made-up e-mail is no e-mail
        assert (orders[number]["matching"], orders[number].get("email"), orders[number]["phone"]) == (
            "phone", None, f"+1555000{number[-1]}")
    assert (orders["000000001"]["matching"], orders["000000001"]["email"]) == ("email", "roni@example.org")
    assert_totals_exact(orders)

    # stock moved by a credit memo, a status changed by a mass action, the pending order paid: none of the
    # catalogue changes moves catalog_product_entity.updated_at
    with engine.begin() as conn:
        stock = _t("cataloginventory_stock_item")
        conn.execute(stock.update().where(stock.c.product_id == 1).values(qty=Decimal(101)))
        status = _t("catalog_product_entity_int")
        conn.execute(status.update().where(status.c.entity_id == 6).values(value=DISABLED))
        order = _t("sales_order")
        conn.execute(order.update().where(order.c.entity_id == 6).values(
            state="processing", status="processing", updated_at=db_now(engine) - timedelta(hours=1)))
    sync_cleanly(cfg)
    assert (store.products["1"]["count"], store.products["6"]["is_available"]) == (101, False)
    assert orders["000000006"]["status"] == "paid" and len(orders) == 10
    # months-old orders went without triggers; the one paid an hour ago fires them (sync.trigger_window)
    assert (emulator.skip_triggers["000000001"], emulator.skip_triggers["000000006"]) == (True, False)
    assert set(store.products) == {"1", "2", "3", "6", "67", "70"}  # nothing extra
    engine.dispose()


def test_an_order_naming_a_deleted_magento_product_goes_out(shop_url: str, tmp_path: Path, emulator) -> None:
    """Magento deletes products that orders still name (sales_order_item keeps the product_id): the order goes
    out at once, with a stand-in built from the item's own name and price."""
    _magento_shop(shop_url, deleted_product_order=True).dispose()
    emulator.currencies.add("JPY")
    cfg = init_and_check("magento", shop_url, tmp_path, emulator, table_prefix=PREFIX, SHOP_CURRENCY="USD")
    sync_cleanly(cfg, runs=2)
    store = emulator.store
    assert line_tuples(store.orders["0000000010"]) == [("5", 1, Decimal(25), "delivered")]
    assert (store.products["5"]["name"], store.products["5"]["is_available"]) == ("Retired Belt", False)
    assert len(store.orders) == 10 and set(store.products) == {"1", "2", "3", "5", "6", "67", "70"}



def test_every_magento_buyer_is_one_profile_and_only_subscribers_are_subscribed(shop_url: str, tmp_path: Path,
                                                                               emulator) -> None:
    """Customers (customer_entity, the default billing address's phone and city, dob and gender) and guest
    buyers (orders without a customer row: guest checkout or a deleted customer) arrive as profiles before their
    orders, into an emulator refusing orders of unknown buyers: each buyer once, a guest order under a
    customer's e-mail and a customer's order under an older e-mail both the customer's; the e-mail Magento
    makes up for phone orders is no e-mail. Only newsletter_subscriber status 1 subscribes (a customer's, or a
    guest's by e-mail). A subscription made later moves the profile; an unsubscribe in Altcraft survives it."""
    emulator.require_profiles = True
    engine = _magento_shop(shop_url, people=True)
    emulator.currencies.add("JPY")
    cfg = init_and_check("magento", shop_url, tmp_path, emulator, table_prefix=PREFIX, SHOP_CURRENCY="USD")

    sync_cleanly(cfg)
    store = emulator.store
    assert set(store.orders) == {f"00000000{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9)} | {
        "0000000011", "0000000012", "0000000013"}
    profiles = {profile_key(p): (p.get("_fname"), p.get("_lname"), p.get("_bdate"), p.get("_sex"), p.get("_city"),
                                  sorted(s["channel"] for s in p.get("subscriptions") or []))
                for p in store.profiles.values()}
    assert len(profiles) == len(store.profiles)  # every buyer once
    guest = ("Buyer{}", "Doe", None, None, "Reno", [])
    assert profiles == {
        "email:roni@example.org": ("Roni", "Cole", "1990-05-01", "female", "Austin", ["email"]),  # her guest order 1
        "email:sam@example.org": ("Sam", "Hill", None, "male", None, []),                        # unsubscribed
        **{f"email:{e}@example.org": tuple(v.format(i) if isinstance(v, str) else v for v in guest)
           for i, e in ((2, "veronica"), (3, "ann"), (4, "bob"), (11, "fay"), (13, "gone"))},
        "email:carl@example.org": ("Buyer5", "Doe", None, None, "Reno", ["email"]),  # a guest who subscribed
        "email:kenji@example.jp": ("Buyer7", "Doe", None, None, "Reno", []),
        "phone:+15550008": ("Buyer8", "Doe", None, None, "Reno", []),  # the made-up e-mail is no e-mail
        "phone:+15550009": ("Buyer9", "Doe", None, None, "Reno", []),
    }
    assert store.profiles[next(k for k, p in store.profiles.items() if p.get("email") == "roni@example.org")][
        "phones"] == ["+15550001000"]
    assert store.orders["0000000012"]["email"] == "sam@example.org"  # the account's e-mail

    again = run_all(cfg, streams=["customers", "guests", "orders"])
    assert sum(s.new + s.changed for s in again.values()) == 0
    roni = next(p for p in store.profiles.values() if p.get("email") == "roni@example.org")
    roni["subscriptions"][0]["status"] = 2  # unsubscribed in Altcraft
    with engine.begin() as conn:  # Sam subscribes again: only newsletter_subscriber moves
        ns = _t("newsletter_subscriber")
        conn.execute(ns.update().where(ns.c.customer_id == 2).values(
            subscriber_status=1, change_status_at=db_now(engine) - timedelta(minutes=5)))
        ce = _t("customer_entity")
        conn.execute(ce.update().where(ce.c.entity_id == 1).values(
            firstname="Ronnie", updated_at=db_now(engine) - timedelta(minutes=5)))
    third = run_all(cfg, streams=["customers", "guests", "orders"])
    assert (third["customers"].changed, third["guests"].new + third["guests"].changed) == (2, 0)
    sam = next(p for p in store.profiles.values() if p.get("email") == "sam@example.org")
    assert [s["channel"] for s in sam["subscriptions"]] == ["email"]
    assert roni["_fname"] == "Ronnie" and roni["subscriptions"][0]["status"] == 2
    engine.dispose()


def test_a_magento_unsubscribe_reaches_altcraft_only_when_asked(shop_url: str, tmp_path: Path, emulator) -> None:
    """newsletter_subscriber status 3 (Subscriber::STATUS_UNSUBSCRIBED) is a withdrawn consent; 2 and 4 (not
    active, unconfirmed) and no row at all say nothing. With the preset's ``withdrawn_consent: keep`` none of
    them sends a subscription; with ``unsubscribe`` the unsubscribed customer (Sam) and guest (Ann) are sent
    as unsubscribed, and the unconfirmed guest (Bob) and those without a row are still left alone."""
    emulator.require_profiles = True
    engine = _magento_shop(shop_url, people=True)
    with engine.begin() as conn:
        conn.execute(_t("newsletter_subscriber").insert(), [
            {"subscriber_id": 20, "store_id": 1, "change_status_at": DAY, "customer_id": 0,
             "subscriber_email": "ann@example.org", "subscriber_status": 3},
            {"subscriber_id": 21, "store_id": 1, "change_status_at": DAY, "customer_id": 0,
             "subscriber_email": "bob@example.org", "subscriber_status": 4}])
    emulator.currencies.add("JPY")
    cfg = init_and_check("magento", shop_url, tmp_path, emulator, table_prefix=PREFIX, SHOP_CURRENCY="USD")
    for name in ("customers", "guests"):  # the preset keeps `keep` (Sam's [] there: the test above)
        cfg.streams.section(name).withdrawn_consent = "unsubscribe"
    run_all(cfg, streams=["customers", "guests"])
    subscriptions = {profile_key(p): [(s["channel"], s.get("status", "subscribed")) for s in p.get("subscriptions") or []]
                     for p in emulator.store.profiles.values()}
    assert subscriptions["email:roni@example.org"] == subscriptions["email:carl@example.org"] == [
        ("email", "subscribed")]
    assert subscriptions["email:sam@example.org"] == subscriptions["email:ann@example.org"] == [
        ("email", "unsubscribed")]
    assert subscriptions["email:bob@example.org"] == subscriptions["email:veronica@example.org"] == []
    engine.dispose()
