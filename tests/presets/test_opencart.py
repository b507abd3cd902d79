"""The OpenCart preset: ``altcraft-sync init --preset opencart`` writes a mapping that works, read-only, on the
platform's own tables, tested on generated data in those exact tables (column names and types as the platform's
source defines them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import run_all
from tests.presets.common import init_and_check

# --- OpenCart: the tables of install/opencart.sql, oc_ prefix ---------------------------------------------
OC = sa.MetaData()
INT, OC_MONEY = sa.Integer, sa.Numeric(15, 4)
sa.Table("oc_category", OC, sa.Column("category_id", INT, primary_key=True), sa.Column("parent_id", INT),
         sa.Column("status", sa.SmallInteger), sa.Column("date_added", sa.DateTime), sa.Column("date_modified", sa.DateTime))
sa.Table("oc_category_description", OC, sa.Column("category_id", INT, primary_key=True),
         sa.Column("language_id", INT, primary_key=True), sa.Column("name", sa.String(255)))
sa.Table("oc_product", OC, sa.Column("product_id", INT, primary_key=True), sa.Column("model", sa.String(64)),
         sa.Column("sku", sa.String(64)), sa.Column("quantity", INT), sa.Column("price", OC_MONEY),
         sa.Column("status", sa.SmallInteger), sa.Column("date_added", sa.DateTime), sa.Column("date_modified", sa.DateTime))
sa.Table("oc_product_description", OC, sa.Column("product_id", INT, primary_key=True),
         sa.Column("language_id", INT, primary_key=True), sa.Column("name", sa.String(255)))
sa.Table("oc_product_to_category", OC, sa.Column("product_id", INT, primary_key=True),
         sa.Column("category_id", INT, primary_key=True))
sa.Table("oc_order", OC, sa.Column("order_id", INT, primary_key=True), sa.Column("customer_id", INT),
         sa.Column("email", sa.String(96)), sa.Column("total", OC_MONEY), sa.Column("order_status_id", INT),
         sa.Column("currency_code", sa.String(3)), sa.Column("currency_value", sa.Numeric(15, 8)),
         sa.Column("date_added", sa.DateTime), sa.Column("date_modified", sa.DateTime))
sa.Table("oc_order_product", OC, sa.Column("order_product_id", INT, primary_key=True), sa.Column("order_id", INT),
         sa.Column("product_id", INT), sa.Column("name", sa.String(255)), sa.Column("model", sa.String(64)),
         sa.Column("quantity", INT), sa.Column("price", OC_MONEY), sa.Column("total", OC_MONEY),
         sa.Column("tax", OC_MONEY), sa.Column("reward", INT))
sa.Table("oc_order_total", OC, sa.Column("order_total_id", INT, primary_key=True), sa.Column("order_id", INT),
         sa.Column("code", sa.String(32)), sa.Column("title", sa.String(255)), sa.Column("value", OC_MONEY),
         sa.Column("sort_order", INT))


def _opencart_shop(url: str) -> None:
    """Two categories, two products (one disabled), an order in the default currency with shipping and a
    coupon, one in another currency (currency_value 0.5), and an abandoned checkout (status 0)."""
    engine = sa.create_engine(url)
    OC.drop_all(engine)
    OC.create_all(engine)
    t = OC.tables
    day = datetime(2026, 11, 20, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(t["oc_category"].insert(), [
            {"category_id": 20, "parent_id": 0, "status": 1, "date_added": day, "date_modified": day},
            {"category_id": 26, "parent_id": 20, "status": 1, "date_added": day, "date_modified": day}])
        conn.execute(t["oc_category_description"].insert(), [
            {"category_id": 20, "language_id": 1, "name": "Desktops"}, {"category_id": 20, "language_id": 2, "name": "ПК"},
            {"category_id": 26, "language_id": 1, "name": "PC"}])
        conn.execute(t["oc_product"].insert(), [
            {"product_id": 40, "model": "product 11", "sku": "", "quantity": 970, "price": Decimal("101.0000"),
             "status": 1, "date_added": day, "date_modified": day},
            {"product_id": 41, "model": "Product 14", "sku": "", "quantity": 977, "price": Decimal("100.0000"),
             "status": 0, "date_added": day, "date_modified": day}])
        conn.execute(t["oc_product_description"].insert(), [
            {"product_id": 40, "language_id": 1, "name": "iPhone"}, {"product_id": 41, "language_id": 1, "name": "iMac"}])
        conn.execute(t["oc_product_to_category"].insert(), [{"product_id": 40, "category_id": 20},
                                                            {"product_id": 40, "category_id": 26},
                                                            {"product_id": 41, "category_id": 20}])
        conn.execute(t["oc_order"].insert(), [
            {"order_id": 1, "customer_id": 1, "email": "a@example.com", "total": Decimal("207.0000"),
             "order_status_id": 5, "currency_code": "USD", "currency_value": Decimal("1"), "date_added": day,
             "date_modified": day},
            {"order_id": 2, "customer_id": 2, "email": "b@example.com", "total": Decimal("120.0000"),
             "order_status_id": 2, "currency_code": "EUR", "currency_value": Decimal("0.5"), "date_added": day,
             "date_modified": day + timedelta(minutes=1)},
            {"order_id": 3, "customer_id": 3, "email": "c@example.com", "total": Decimal("101.0000"),
             "order_status_id": 0, "currency_code": "USD", "currency_value": Decimal("1"), "date_added": day,
             "date_modified": day}])
        conn.execute(t["oc_order_product"].insert(), [
            {"order_product_id": 1, "order_id": 1, "product_id": 40, "name": "iPhone", "model": "product 11",
             "quantity": 2, "price": Decimal("101.0000"), "total": Decimal("202.0000"), "tax": Decimal("0"), "reward": 0},
            {"order_product_id": 2, "order_id": 2, "product_id": 41, "name": "iMac", "model": "Product 14",
             "quantity": 1, "price": Decimal("100.0000"), "total": Decimal("100.0000"), "tax": Decimal("20.0000"),
             "reward": 0},
            {"order_product_id": 3, "order_id": 3, "product_id": 40, "name": "iPhone", "model": "product 11",
             "quantity": 1, "price": Decimal("101.0000"), "total": Decimal("101.0000"), "tax": Decimal("0"), "reward": 0}])
        conn.execute(
            t["oc_order_total"].insert(),
            [
                {
                    "order_total_id": 1,
                    "order_id": 1,
                    "code": "sub_total",
                    "title": "Sub-Total",
                    "value": Decimal("202"),
                    "sort_order": 1,
                },
                {
                    "order_total_id": 2,
                    "order_id": 1,
                    "code": "shipping",
                    "title": "Flat Shipping Rate",
                    "value": Decimal("10"),
                    "sort_order": 3,
                },
                {
                    "order_total_id": 3,
                    "order_id": 1,
                    "code": "coupon",
                    "title": "Coupon (-5)",
                    "value": Decimal("-5"),
                    "sort_order": 4,
                },
                {"order_total_id": 4, "order_id": 1, "code": "total", "title": "Total", "value": Decimal("207"), "sort_order": 9},
            ],
        )
    engine.dispose()


def test_the_opencart_preset_syncs_an_opencart_database(shop_url: str, tmp_path: Path, emulator) -> None:
    _opencart_shop(shop_url)
    cfg = init_and_check("opencart", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD")

    stats = run_all(cfg, streams=["categories", "products", "orders"])
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "20": ("Desktops", None), "26": ("PC", "20")}
    assert sorted(store.products["40"]["categories"]) == ["20", "26"]
    assert (store.products["40"]["is_available"], store.products["41"]["is_available"]) == (True, False)
    assert set(store.orders) == {"1", "2"}  # not the abandoned checkout
    one, two = store.orders["1"], store.orders["2"]
    assert (one["status"], Decimal(one["total_price"]), Decimal(one["delivery_cost"]), one["currency"]) == (
        "delivered", 207, 10, "USD")
    assert [(line["product"], line["count"], Decimal(line["final_price_per_item"])) for line in one["lines"]] == [
        ("40", 2, Decimal(101))]
    # another currency: amounts in the order's own currency (x currency_value), the line with its tax
    assert (two["status"], two["currency"], Decimal(two["total_price"])) == ("paid", "EUR", 60)
    assert Decimal(two["lines"][0]["final_price_per_item"]) == 60 and Decimal(two["lines"][0]["base_price_per_item"]) == 50


