"""Ready-made presets: ``altcraft-sync init --preset P`` writes a mapping that works, read-only, on the
platform's own tables. Each preset is tested on generated data in those exact tables (column names and
types as the platform's source defines them), on MariaDB and on SQLite."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from cli.main import app
from cli.preset import presets
from connectors.shop_db import ShopSource
from tests.conftest import TOKEN
from tests.helpers import run_all, shop_url_for


@pytest.fixture(params=["sqlite", "mysql"])  # the platforms run on MySQL/MariaDB; SQLite where their SQL allows
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)


def _init_and_check(preset: str, url: str, tmp_path: Path, emulator, **env: str):
    """``init --preset`` into a fresh file, loaded with the test's URLs, then what ``check`` does: bind every
    stream, run each page query as a sync builds it, and check the status values."""
    path = tmp_path / "altcraft-sync.yaml"
    assert CliRunner().invoke(app, ["init", "--preset", preset, "--output", str(path)]).exit_code == 0
    cfg = load_config(path, environ={"SHOP_DB_URL": url, "ALTCRAFT_API_URL": emulator.url, "ALTCRAFT_TOKEN": TOKEN,
                                     "SYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db", **env})
    source = ShopSource(cfg)
    source.bind()
    source.probe_reads()
    source.check_values()
    source.close()
    return cfg


# --- WooCommerce (HPOS): the tables of class-wc-install.php and OrdersTableDataStore, wp_ prefix -----------
WC = sa.MetaData()
BIG, MONEY = sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.Numeric(26, 8)
sa.Table("wp_posts", WC, sa.Column("ID", BIG, primary_key=True), sa.Column("post_title", sa.Text),
         sa.Column("post_status", sa.String(20)), sa.Column("post_type", sa.String(20)),
         sa.Column("post_parent", BIG), sa.Column("guid", sa.String(255)),
         sa.Column("post_date_gmt", sa.DateTime), sa.Column("post_modified_gmt", sa.DateTime))
sa.Table("wp_postmeta", WC, sa.Column("meta_id", BIG, primary_key=True), sa.Column("post_id", BIG),
         sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))
sa.Table("wp_wc_product_meta_lookup", WC, sa.Column("product_id", BIG, primary_key=True),
         sa.Column("sku", sa.String(100)), sa.Column("min_price", sa.Numeric(19, 4)),
         sa.Column("max_price", sa.Numeric(19, 4)), sa.Column("stock_quantity", sa.Float),
         sa.Column("stock_status", sa.String(100)))
sa.Table("wp_terms", WC, sa.Column("term_id", BIG, primary_key=True), sa.Column("name", sa.String(200)),
         sa.Column("slug", sa.String(200)))
sa.Table("wp_term_taxonomy", WC, sa.Column("term_taxonomy_id", BIG, primary_key=True),
         sa.Column("term_id", BIG), sa.Column("taxonomy", sa.String(32)), sa.Column("parent", BIG))
sa.Table("wp_term_relationships", WC, sa.Column("object_id", BIG, primary_key=True),
         sa.Column("term_taxonomy_id", BIG, primary_key=True))
sa.Table("wp_wc_orders", WC, sa.Column("id", BIG, primary_key=True), sa.Column("status", sa.String(20)),
         sa.Column("currency", sa.String(10)), sa.Column("type", sa.String(20)),
         sa.Column("tax_amount", MONEY), sa.Column("total_amount", MONEY), sa.Column("customer_id", BIG),
         sa.Column("billing_email", sa.String(320)), sa.Column("date_created_gmt", sa.DateTime),
         sa.Column("date_updated_gmt", sa.DateTime), sa.Column("parent_order_id", BIG))
sa.Table("wp_wc_order_operational_data", WC, sa.Column("id", BIG, primary_key=True),
         sa.Column("order_id", BIG), sa.Column("shipping_total_amount", MONEY),
         sa.Column("discount_total_amount", MONEY))
sa.Table("wp_woocommerce_order_items", WC, sa.Column("order_item_id", BIG, primary_key=True),
         sa.Column("order_item_name", sa.Text), sa.Column("order_item_type", sa.String(200)),
         sa.Column("order_id", BIG))
sa.Table("wp_woocommerce_order_itemmeta", WC, sa.Column("meta_id", BIG, primary_key=True),
         sa.Column("order_item_id", BIG), sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))


def _woocommerce_shop(url: str) -> None:
    """A small store: a category tree, a simple product, a variable one with two variations, and orders
    with line items, shipping and coupon items, a refund and a trashed order."""
    engine = sa.create_engine(url)
    WC.drop_all(engine)
    WC.create_all(engine)
    t = WC.tables
    day = datetime(2026, 11, 20, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(t["wp_terms"].insert(), [{"term_id": 15, "name": "Clothing", "slug": "clothing"},
                                              {"term_id": 16, "name": "Hoodies", "slug": "hoodies"}])
        conn.execute(t["wp_term_taxonomy"].insert(), [
            {"term_taxonomy_id": 15, "term_id": 15, "taxonomy": "product_cat", "parent": 0},
            {"term_taxonomy_id": 16, "term_id": 16, "taxonomy": "product_cat", "parent": 15}])
        posts = [
            {"ID": 10, "post_title": "Beanie", "post_status": "publish", "post_type": "product", "post_parent": 0},
            {"ID": 20, "post_title": "Hoodie", "post_status": "publish", "post_type": "product", "post_parent": 0},
            {"ID": 21, "post_title": "Hoodie - Red", "post_status": "publish", "post_type": "product_variation",
             "post_parent": 20},
            {"ID": 22, "post_title": "Hoodie - Blue", "post_status": "publish", "post_type": "product_variation",
             "post_parent": 20},
        ]
        conn.execute(t["wp_posts"].insert(), [{**p, "guid": f"https://shop.example/?p={p['ID']}",
                                               "post_modified_gmt": day} for p in posts])
        conn.execute(t["wp_wc_product_meta_lookup"].insert(), [
            {"product_id": 10, "sku": "woo-beanie", "min_price": Decimal("18"), "max_price": Decimal("18"),
             "stock_quantity": 7.0, "stock_status": "instock"},
            {"product_id": 20, "sku": "woo-hoodie", "min_price": Decimal("42"), "max_price": Decimal("45"),
             "stock_quantity": None, "stock_status": "instock"},
            {"product_id": 21, "sku": "woo-hoodie-red", "min_price": Decimal("42"), "max_price": Decimal("42"),
             "stock_quantity": 3.0, "stock_status": "instock"},
            {"product_id": 22, "sku": "woo-hoodie-blue", "min_price": Decimal("45"), "max_price": Decimal("45"),
             "stock_quantity": 0.0, "stock_status": "outofstock"}])
        conn.execute(t["wp_term_relationships"].insert(), [{"object_id": 10, "term_taxonomy_id": 15},
                                                           {"object_id": 20, "term_taxonomy_id": 16}])
        orders = [  # id, status, type, total, parent
            (100, "wc-completed", "shop_order", "79.00", 0),   # 2 beanies - 4.00 coupon + red hoodie + 5 shipping
            (101, "wc-processing", "shop_order", "45.00", 0),  # a blue hoodie, free shipping
            (102, "shop_order_refund", "shop_order_refund", "-18.00", 100),  # a refund: not an order
            (103, "trash", "shop_order", "18.00", 0),          # trashed: deleted, never sent
        ]
        conn.execute(t["wp_wc_orders"].insert(), [
            {"id": i, "status": s, "currency": "USD", "type": ty, "tax_amount": 0, "total_amount": Decimal(tot),
             "customer_id": 1, "billing_email": f"buyer{i}@example.com", "date_created_gmt": day,
             "date_updated_gmt": day + timedelta(minutes=i - 99), "parent_order_id": parent}
            for i, s, ty, tot, parent in orders])
        conn.execute(t["wp_wc_order_operational_data"].insert(), [
            {"id": 1, "order_id": 100, "shipping_total_amount": Decimal("5"), "discount_total_amount": Decimal("4")},
            {"id": 2, "order_id": 101, "shipping_total_amount": Decimal("0"), "discount_total_amount": Decimal("0")}])
        items = [  # item id, order, type, name, meta
            (1, 100, "line_item", "Beanie", {"_product_id": "10", "_variation_id": "0", "_qty": "2",
                                             "_line_subtotal": "36", "_line_total": "32"}),
            (2, 100, "line_item", "Hoodie - Red", {"_product_id": "20", "_variation_id": "21", "_qty": "1",
                                                   "_line_subtotal": "42", "_line_total": "42"}),
            (3, 100, "shipping", "Flat rate", {"cost": "5.00", "method_id": "flat_rate"}),
            (4, 100, "coupon", "save4", {"discount_amount": "4"}),
            (5, 101, "line_item", "Hoodie - Blue", {"_product_id": "20", "_variation_id": "22", "_qty": "1",
                                                    "_line_subtotal": "45", "_line_total": "45"}),
            (6, 102, "line_item", "Beanie", {"_product_id": "10", "_variation_id": "0", "_qty": "-1",
                                             "_line_subtotal": "-18", "_line_total": "-18"}),
            (7, 103, "line_item", "Beanie", {"_product_id": "10", "_variation_id": "0", "_qty": "1",
                                             "_line_subtotal": "18", "_line_total": "18"}),
        ]
        conn.execute(t["wp_woocommerce_order_items"].insert(), [
            {"order_item_id": i, "order_id": o, "order_item_type": ty, "order_item_name": n} for i, o, ty, n, _ in items])
        conn.execute(t["wp_woocommerce_order_itemmeta"].insert(), [
            {"meta_id": i * 10 + k, "order_item_id": i, "meta_key": key, "meta_value": value}
            for i, _, _, _, meta in items for k, (key, value) in enumerate(meta.items())])
    engine.dispose()


def _woocommerce_legacy_shop(url: str) -> None:
    """The same store with its orders in the legacy storage: shop_order posts and their postmeta."""
    _woocommerce_shop(url)
    engine = sa.create_engine(url)
    t = WC.tables
    day = datetime(2026, 11, 20, 10, 0, 0)
    orders = [(100, "wc-completed", "shop_order", 0, "79.00", "5.00"), (101, "wc-processing", "shop_order", 0, "45.00", "0"),
              (102, "wc-completed", "shop_order_refund", 100, "-18.00", "0"), (103, "trash", "shop_order", 0, "18.00", "0")]
    with engine.begin() as conn:
        conn.execute(t["wp_posts"].insert(), [
            {"ID": i, "post_title": f"Order {i}", "post_status": st, "post_type": ty, "post_parent": parent,
             "guid": "", "post_date_gmt": day, "post_modified_gmt": day + timedelta(minutes=i - 99)}
            for i, st, ty, parent, _, _ in orders])
        meta = [(i, k, v) for i, _, _, _, total, ship in orders for k, v in (
            ("_order_currency", "USD"), ("_order_total", total), ("_billing_email", f"buyer{i}@example.com"),
            ("_order_shipping", ship), ("_order_key", f"wc_order_{i}"))]
        conn.execute(t["wp_postmeta"].insert(), [
            {"meta_id": n, "post_id": i, "meta_key": k, "meta_value": v} for n, (i, k, v) in enumerate(meta, 1)])
    engine.dispose()


def test_the_woocommerce_legacy_preset_syncs_orders_stored_as_posts(shop_url: str, tmp_path: Path, emulator) -> None:
    _woocommerce_legacy_shop(shop_url)
    cfg = _init_and_check("woocommerce-legacy", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD", ALTCRAFT_ENDPOINT="woo")

    stats = run_all(cfg)
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    orders = emulator.store.orders
    assert set(orders) == {"100", "101"}  # not the refund post, not the trashed order
    assert (orders["100"]["status"], Decimal(orders["100"]["total_price"]), Decimal(orders["100"]["delivery_cost"]),
            orders["100"]["email"]) == ("part_refunded", 79, 5, "buyer100@example.com")
    assert sorted(line["product"] for line in orders["100"]["lines"]) == ["10", "21"]
    assert orders["101"]["status"] == "paid"


def test_init_writes_the_preset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "altcraft-sync.yaml"
    first = CliRunner().invoke(app, ["init", "--preset", "woocommerce", "--output", str(out)])
    assert first.exit_code == 0 and "wp_wc_orders" in out.read_text()
    again = CliRunner().invoke(app, ["init", "--preset", "woocommerce", "--output", str(out)])
    assert again.exit_code != 0 and "exists; pass --force" in again.output
    unknown = CliRunner().invoke(app, ["init", "--preset", "shopify", "--output", str(tmp_path / "x.yaml")])
    assert unknown.exit_code != 0 and f"no such preset (one of {', '.join(presets())})" in unknown.output
    assert set(presets()) == {"woocommerce", "woocommerce-legacy", "opencart", "magento", "bitrix"}


@pytest.mark.parametrize(("preset", "table"), [("woocommerce", "wc_orders"), ("woocommerce-legacy", "posts"),
                                               ("opencart", "order"), ("magento", "sales_order")])
def test_init_fills_in_the_table_prefix(tmp_path: Path, preset: str, table: str) -> None:
    out = tmp_path / "altcraft-sync.yaml"
    result = CliRunner().invoke(app, ["init", "--preset", preset, "--table-prefix", "shop7_", "--output", str(out)])
    text = out.read_text()
    assert result.exit_code == 0 and f"shop7_{table}" in text
    assert "{{table_prefix}}" not in text and not text.startswith("#!")
    bad = CliRunner().invoke(app, ["init", "--preset", preset, "--table-prefix", "x; DROP", "--force",
                                   "--output", str(out)])
    assert bad.exit_code != 0 and "--table-prefix 'x; DROP': letters, digits and '_' only" in bad.output
    fixed = CliRunner().invoke(app, ["init", "--preset", "bitrix", "--table-prefix", "b2_", "--force",
                                     "--output", str(out)])
    assert fixed.exit_code != 0 and "tables have fixed names" in fixed.output


def test_the_woocommerce_preset_syncs_a_woocommerce_database(shop_url: str, tmp_path: Path, emulator) -> None:
    _woocommerce_shop(shop_url)
    cfg = _init_and_check("woocommerce", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD", ALTCRAFT_ENDPOINT="woo")

    stats = run_all(cfg)
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "15": ("Clothing", None), "16": ("Hoodies", "15")}
    assert store.products["10"]["categories"] == ["15"] and Decimal(store.products["10"]["price"]) == 18
    assert store.products["10"]["count"] == 7 and store.products["10"]["is_available"] is True
    assert {k: (v["product_external_id"], Decimal(v["price"]), v["is_available"]) for k, v in store.skus.items()} == {
        "21": ("20", Decimal(42), True), "22": ("20", Decimal(45), False)}
    assert set(store.orders) == {"100", "101"}  # not the refund, not the trashed order
    first = store.orders["100"]
    assert (first["status"], Decimal(first["total_price"]), Decimal(first["delivery_cost"]), first["email"]) == (
        "part_refunded", 79, 5, "buyer100@example.com")  # completed, with a refund row
    assert first["endpoint"] == "woo" and first["currency"] == "USD"
    lines = {line["external_id"]: (line["product"], line["count"], Decimal(line["final_price_per_item"]),
                                   Decimal(line["base_price_per_item"])) for line in first["lines"]}
    assert lines == {"1": ("10", 2, Decimal(16), Decimal(18)), "2": ("21", 1, Decimal(42), Decimal(42))}
    assert store.orders["101"]["status"] == "paid" and store.orders["101"]["lines"][0]["product"] == "22"


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
    cfg = _init_and_check("opencart", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD")

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


# --- Magento 2: the tables of each module's etc/db_schema.xml (no prefix) ---------------------------------
MG = sa.MetaData()
M_MONEY, QTY = sa.Numeric(20, 4), sa.Numeric(12, 4)
sa.Table("eav_entity_type", MG, sa.Column("entity_type_id", INT, primary_key=True),
         sa.Column("entity_type_code", sa.String(50)))
sa.Table("eav_attribute", MG, sa.Column("attribute_id", INT, primary_key=True), sa.Column("entity_type_id", INT),
         sa.Column("attribute_code", sa.String(255)))
sa.Table("catalog_category_entity", MG, sa.Column("entity_id", INT, primary_key=True), sa.Column("parent_id", INT),
         sa.Column("path", sa.String(255)), sa.Column("level", INT), sa.Column("created_at", sa.DateTime),
         sa.Column("updated_at", sa.DateTime))
sa.Table("catalog_category_entity_varchar", MG, sa.Column("value_id", INT, primary_key=True),
         sa.Column("attribute_id", INT), sa.Column("store_id", INT), sa.Column("entity_id", INT),
         sa.Column("value", sa.String(255)))
sa.Table("catalog_product_entity", MG, sa.Column("entity_id", INT, primary_key=True), sa.Column("attribute_set_id", INT),
         sa.Column("type_id", sa.String(32)), sa.Column("sku", sa.String(64)), sa.Column("created_at", sa.DateTime),
         sa.Column("updated_at", sa.DateTime))
sa.Table("catalog_product_entity_varchar", MG, sa.Column("value_id", INT, primary_key=True),
         sa.Column("attribute_id", INT), sa.Column("store_id", INT), sa.Column("entity_id", INT),
         sa.Column("value", sa.String(255)))
sa.Table("catalog_product_entity_decimal", MG, sa.Column("value_id", INT, primary_key=True),
         sa.Column("attribute_id", INT), sa.Column("store_id", INT), sa.Column("entity_id", INT),
         sa.Column("value", M_MONEY))
sa.Table("catalog_product_super_link", MG, sa.Column("link_id", INT, primary_key=True), sa.Column("product_id", INT),
         sa.Column("parent_id", INT))
sa.Table("catalog_category_product", MG, sa.Column("entity_id", INT, primary_key=True), sa.Column("category_id", INT),
         sa.Column("product_id", INT), sa.Column("position", INT))
sa.Table("cataloginventory_stock_item", MG, sa.Column("item_id", INT, primary_key=True), sa.Column("product_id", INT),
         sa.Column("stock_id", INT), sa.Column("qty", QTY), sa.Column("is_in_stock", sa.SmallInteger))
sa.Table("sales_order", MG, sa.Column("entity_id", INT, primary_key=True), sa.Column("state", sa.String(32)),
         sa.Column("status", sa.String(32)), sa.Column("increment_id", sa.String(32)),
         sa.Column("customer_email", sa.String(128)), sa.Column("grand_total", M_MONEY),
         sa.Column("shipping_amount", M_MONEY), sa.Column("total_refunded", M_MONEY),
         sa.Column("order_currency_code", sa.String(3)), sa.Column("created_at", sa.DateTime),
         sa.Column("updated_at", sa.DateTime))
sa.Table("sales_order_item", MG, sa.Column("item_id", INT, primary_key=True), sa.Column("order_id", INT),
         sa.Column("parent_item_id", INT), sa.Column("product_id", INT), sa.Column("product_type", sa.String(255)),
         sa.Column("sku", sa.String(255)), sa.Column("name", sa.String(255)), sa.Column("qty_ordered", QTY),
         sa.Column("original_price", M_MONEY), sa.Column("price", M_MONEY), sa.Column("price_incl_tax", M_MONEY),
         sa.Column("row_total", M_MONEY), sa.Column("updated_at", sa.DateTime))


def _magento_shop(url: str) -> None:
    """A category tree under the store root, a simple product, a configurable one with two simple
    children, an order for the simple product and one for a configurable (a parent row and a child row),
    a complete order with a refund and a closed (fully refunded) one."""
    engine = sa.create_engine(url)
    MG.drop_all(engine)
    MG.create_all(engine)
    t = MG.tables
    day = datetime(2026, 11, 20, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(t["eav_entity_type"].insert(), [{"entity_type_id": 3, "entity_type_code": "catalog_category"},
                                                     {"entity_type_id": 4, "entity_type_code": "catalog_product"}])
        conn.execute(t["eav_attribute"].insert(), [{"attribute_id": 45, "entity_type_id": 3, "attribute_code": "name"},
                                                   {"attribute_id": 73, "entity_type_id": 4, "attribute_code": "name"},
                                                   {"attribute_id": 77, "entity_type_id": 4, "attribute_code": "price"}])
        cats = [(1, 0, "1", 0, "Root Catalog"), (2, 1, "1/2", 1, "Default Category"), (3, 2, "1/2/3", 2, "Gear"),
                (4, 3, "1/2/3/4", 3, "Bags")]
        conn.execute(t["catalog_category_entity"].insert(), [
            {"entity_id": i, "parent_id": p, "path": path, "level": lv, "created_at": day, "updated_at": day}
            for i, p, path, lv, _ in cats])
        conn.execute(t["catalog_category_entity_varchar"].insert(), [
            {"value_id": i, "attribute_id": 45, "store_id": 0, "entity_id": i, "value": name} for i, _, _, _, name in cats])
        products = [(1, "simple", "24-MB01", "Joust Duffle Bag", "34"), (67, "configurable", "MH01", "Chaz Hoodie", "52"),
                    (68, "simple", "MH01-XS-Black", "Chaz Hoodie-XS-Black", "52"),
                    (69, "simple", "MH01-XS-Gray", "Chaz Hoodie-XS-Gray", "54")]
        conn.execute(t["catalog_product_entity"].insert(), [
            {"entity_id": i, "attribute_set_id": 4, "type_id": ty, "sku": sku, "created_at": day, "updated_at": day}
            for i, ty, sku, _, _ in products])
        conn.execute(t["catalog_product_entity_varchar"].insert(), [
            {"value_id": i, "attribute_id": 73, "store_id": 0, "entity_id": i, "value": name} for i, _, _, name, _ in products])
        conn.execute(t["catalog_product_entity_decimal"].insert(), [
            {"value_id": i, "attribute_id": 77, "store_id": 0, "entity_id": i, "value": Decimal(p)}
            for i, _, _, _, p in products])
        conn.execute(t["catalog_product_super_link"].insert(), [{"link_id": 1, "product_id": 68, "parent_id": 67},
                                                                {"link_id": 2, "product_id": 69, "parent_id": 67}])
        conn.execute(
            t["catalog_category_product"].insert(),
            [
                {"entity_id": 1, "category_id": 4, "product_id": 1, "position": 0},
                {"entity_id": 2, "category_id": 3, "product_id": 67, "position": 0},
            ],
        )
        conn.execute(t["cataloginventory_stock_item"].insert(), [
            {"item_id": i, "product_id": i, "stock_id": 1, "qty": Decimal(q), "is_in_stock": 1 if Decimal(q) > 0 else 0}
            for i, q in ((1, "100"), (67, "0"), (68, "10"), (69, "0"))])
        orders = [
            (1, "complete", "000000001", "39.0000", "5.0000", "0"),
            (2, "processing", "000000002", "57.0000", "5.0000", "0"),
            (3, "complete", "000000003", "39.0000", "5.0000", "10.0000"),
            (4, "closed", "000000004", "39.0000", "5.0000", "39.0000"),
        ]
        conn.execute(t["sales_order"].insert(), [
            {"entity_id": i, "state": st, "status": st, "increment_id": inc, "customer_email": f"roni{i}@example.com",
             "grand_total": Decimal(gt), "shipping_amount": Decimal(sh), "total_refunded": Decimal(rf),
             "order_currency_code": "USD", "created_at": day, "updated_at": day + timedelta(minutes=i)}
            for i, st, inc, gt, sh, rf in orders])
        items = [  # item, order, parent item, product, type, qty, original price, price incl tax
            (1, 1, None, 1, "simple", "1.0000", "34.0000", "34.0000"),
            (2, 2, None, 67, "configurable", "1.0000", "52.0000", "52.0000"),
            (3, 2, 2, 68, "simple", "1.0000", "0.0000", "0.0000"),
            (4, 3, None, 1, "simple", "1.0000", "34.0000", "34.0000"),
            (5, 4, None, 1, "simple", "1.0000", "34.0000", "34.0000")]
        conn.execute(t["sales_order_item"].insert(), [
            {"item_id": i, "order_id": o, "parent_item_id": p, "product_id": pid, "product_type": ty, "sku": "x",
             "name": "x", "qty_ordered": Decimal(q), "original_price": Decimal(op), "price": Decimal(op),
             "price_incl_tax": Decimal(pit), "row_total": Decimal(op), "updated_at": day}
            for i, o, p, pid, ty, q, op, pit in items])
    engine.dispose()


def test_the_magento_preset_syncs_a_magento_database(shop_url: str, tmp_path: Path, emulator) -> None:
    _magento_shop(shop_url)
    cfg = _init_and_check("magento", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD")

    stats = run_all(cfg)
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "3": ("Gear", None), "4": ("Bags", "3")}
    assert set(store.products) == {"1", "67"} and store.products["67"]["categories"] == ["3"]
    assert {k: (v["product_external_id"], Decimal(v["price"]), v["is_available"]) for k, v in store.skus.items()} == {
        "68": ("67", Decimal(52), True), "69": ("67", Decimal(54), False)}
    assert {k: v["status"] for k, v in store.orders.items()} == {
        "000000001": "delivered", "000000002": "paid", "000000003": "part_refunded", "000000004": "canceled"}
    configurable = store.orders["000000002"]["lines"]
    assert [(line["product"], line["count"], Decimal(line["final_price_per_item"])) for line in configurable] == [
        ("68", 1, Decimal(52))]  # the simple child that was bought, at the configurable row's price


# --- 1C-Bitrix: the tables of the sale, catalog and iblock modules' install.sql (MySQL only) -------------
BX = sa.MetaData()
BX_MONEY, CH = sa.Numeric(18, 4), sa.CHAR(1)
sa.Table("b_user", BX, sa.Column("ID", INT, primary_key=True), sa.Column("EMAIL", sa.String(255)))
sa.Table("b_catalog_iblock", BX, sa.Column("IBLOCK_ID", INT, primary_key=True), sa.Column("PRODUCT_IBLOCK_ID", INT),
         sa.Column("SKU_PROPERTY_ID", INT))
sa.Table("b_catalog_group", BX, sa.Column("ID", INT, primary_key=True), sa.Column("NAME", sa.String(100)),
         sa.Column("BASE", CH))
sa.Table("b_iblock_section", BX, sa.Column("ID", INT, primary_key=True), sa.Column("TIMESTAMP_X", sa.DateTime),
         sa.Column("IBLOCK_ID", INT), sa.Column("IBLOCK_SECTION_ID", INT), sa.Column("ACTIVE", CH),
         sa.Column("NAME", sa.String(255)))
sa.Table("b_iblock_element", BX, sa.Column("ID", INT, primary_key=True), sa.Column("TIMESTAMP_X", sa.DateTime),
         sa.Column("IBLOCK_ID", INT), sa.Column("IBLOCK_SECTION_ID", INT), sa.Column("ACTIVE", CH),
         sa.Column("NAME", sa.String(255)))
sa.Table("b_iblock_section_element", BX, sa.Column("IBLOCK_SECTION_ID", INT, primary_key=True),
         sa.Column("IBLOCK_ELEMENT_ID", INT, primary_key=True))
sa.Table("b_iblock_property", BX, sa.Column("ID", INT, primary_key=True), sa.Column("IBLOCK_ID", INT),
         sa.Column("CODE", sa.String(50)))
sa.Table("b_iblock_element_property", BX, sa.Column("ID", INT, primary_key=True), sa.Column("IBLOCK_PROPERTY_ID", INT),
         sa.Column("IBLOCK_ELEMENT_ID", INT), sa.Column("VALUE", sa.Text))
sa.Table("b_catalog_product", BX, sa.Column("ID", INT, primary_key=True), sa.Column("QUANTITY", sa.Float),
         sa.Column("AVAILABLE", CH), sa.Column("TYPE", INT), sa.Column("TIMESTAMP_X", sa.DateTime))
sa.Table("b_catalog_price", BX, sa.Column("ID", INT, primary_key=True), sa.Column("PRODUCT_ID", INT),
         sa.Column("CATALOG_GROUP_ID", INT), sa.Column("PRICE", sa.Numeric(18, 2)), sa.Column("CURRENCY", sa.CHAR(3)),
         sa.Column("TIMESTAMP_X", sa.DateTime))
sa.Table("b_sale_order", BX, sa.Column("ID", INT, primary_key=True), sa.Column("LID", sa.CHAR(2)),
         sa.Column("PAYED", CH), sa.Column("CANCELED", CH), sa.Column("STATUS_ID", sa.String(2)),
         sa.Column("PRICE_DELIVERY", BX_MONEY), sa.Column("PRICE", BX_MONEY), sa.Column("CURRENCY", sa.CHAR(3)),
         sa.Column("USER_ID", INT), sa.Column("DATE_INSERT", sa.DateTime), sa.Column("DATE_UPDATE", sa.DateTime))
sa.Table("b_sale_order_props_value", BX, sa.Column("ID", INT, primary_key=True), sa.Column("ORDER_ID", INT),
         sa.Column("ORDER_PROPS_ID", INT), sa.Column("NAME", sa.String(255)), sa.Column("VALUE", sa.String(500)),
         sa.Column("CODE", sa.String(50)))
sa.Table("b_sale_basket", BX, sa.Column("ID", INT, primary_key=True), sa.Column("ORDER_ID", INT),
         sa.Column("PRODUCT_ID", INT), sa.Column("PRICE", BX_MONEY), sa.Column("BASE_PRICE", BX_MONEY),
         sa.Column("CURRENCY", sa.CHAR(3)), sa.Column("QUANTITY", sa.Float), sa.Column("NAME", sa.String(255)),
         sa.Column("SET_PARENT_ID", INT), sa.Column("DATE_INSERT", sa.DateTime), sa.Column("DATE_UPDATE", sa.DateTime))


def _bitrix_shop(url: str) -> None:
    """A catalog iblock (2) with its offers iblock (3), two sections, a product, a product with two offers
    and a set, and orders: unpaid, paid but still new, completed, canceled."""
    engine = sa.create_engine(url)
    BX.drop_all(engine)
    BX.create_all(engine)
    t = BX.tables
    day = datetime(2026, 11, 20, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(t["b_user"].insert(), [{"ID": 1, "EMAIL": "user1@example.ru"}, {"ID": 2, "EMAIL": "user2@example.ru"}])
        conn.execute(t["b_catalog_iblock"].insert(), [{"IBLOCK_ID": 2, "PRODUCT_IBLOCK_ID": 0, "SKU_PROPERTY_ID": 0},
                                                      {"IBLOCK_ID": 3, "PRODUCT_IBLOCK_ID": 2, "SKU_PROPERTY_ID": 30}])
        conn.execute(
            t["b_catalog_group"].insert(), [{"ID": 1, "NAME": "BASE", "BASE": "Y"}, {"ID": 2, "NAME": "OPT", "BASE": "N"}]
        )
        conn.execute(t["b_iblock_section"].insert(), [
            {"ID": 5, "TIMESTAMP_X": day, "IBLOCK_ID": 2, "IBLOCK_SECTION_ID": None, "ACTIVE": "Y", "NAME": "Одежда"},
            {"ID": 6, "TIMESTAMP_X": day, "IBLOCK_ID": 2, "IBLOCK_SECTION_ID": 5, "ACTIVE": "Y", "NAME": "Платья"}])
        elements = [(10, 2, "Шарф", 1), (20, 2, "Платье", 3), (21, 3, "Платье (S)", 4), (22, 3, "Платье (M)", 4)]
        conn.execute(t["b_iblock_element"].insert(), [
            {"ID": i, "TIMESTAMP_X": day, "IBLOCK_ID": ib, "IBLOCK_SECTION_ID": 6 if i == 20 else 5, "ACTIVE": "Y",
             "NAME": n} for i, ib, n, _ in elements])
        conn.execute(t["b_iblock_section_element"].insert(), [{"IBLOCK_SECTION_ID": 5, "IBLOCK_ELEMENT_ID": 10},
                                                              {"IBLOCK_SECTION_ID": 6, "IBLOCK_ELEMENT_ID": 20}])
        conn.execute(t["b_iblock_property"].insert(), [{"ID": 30, "IBLOCK_ID": 3, "CODE": "CML2_LINK"}])
        conn.execute(t["b_iblock_element_property"].insert(), [
            {"ID": 1, "IBLOCK_PROPERTY_ID": 30, "IBLOCK_ELEMENT_ID": 21, "VALUE": "20"},
            {"ID": 2, "IBLOCK_PROPERTY_ID": 30, "IBLOCK_ELEMENT_ID": 22, "VALUE": "20"}])
        conn.execute(t["b_catalog_product"].insert(), [
            {"ID": i, "QUANTITY": 5.0 if i != 22 else 0.0, "AVAILABLE": "Y" if i != 22 else "N", "TYPE": ty,
             "TIMESTAMP_X": day} for i, _, _, ty in elements])
        conn.execute(t["b_catalog_price"].insert(), [
            {"ID": n, "PRODUCT_ID": i, "CATALOG_GROUP_ID": g, "PRICE": Decimal(p), "CURRENCY": "RUB",
             "TIMESTAMP_X": day + timedelta(minutes=5)}
            for n, (i, g, p) in enumerate([(10, 1, "990"), (10, 2, "700"), (21, 1, "2500"), (22, 1, "2600")], 1)])
        orders = [(1, "N", "N", "N", 1), (2, "N", "Y", "N", 2), (3, "F", "Y", "N", 1), (4, "N", "N", "Y", 2)]
        conn.execute(t["b_sale_order"].insert(), [
            {"ID": i, "LID": "s1", "STATUS_ID": st, "PAYED": paid, "CANCELED": canceled, "PRICE_DELIVERY": Decimal("300"),
             "PRICE": Decimal("1290"), "CURRENCY": "RUB", "USER_ID": user, "DATE_INSERT": day,
             "DATE_UPDATE": day + timedelta(minutes=i)} for i, st, paid, canceled, user in orders])
        conn.execute(t["b_sale_order_props_value"].insert(), [
            {"ID": 1, "ORDER_ID": 1, "ORDER_PROPS_ID": 2, "NAME": "E-Mail", "VALUE": "buyer@example.ru", "CODE": "EMAIL"},
            {"ID": 2, "ORDER_ID": 2, "ORDER_PROPS_ID": 2, "NAME": "E-Mail", "VALUE": "", "CODE": "EMAIL"}])
        conn.execute(t["b_sale_basket"].insert(), [
            {"ID": n, "ORDER_ID": o, "PRODUCT_ID": p, "PRICE": Decimal(price), "BASE_PRICE": Decimal(base), "CURRENCY": "RUB",
             "QUANTITY": q, "NAME": "x", "SET_PARENT_ID": parent, "DATE_INSERT": day, "DATE_UPDATE": day}
            for n, (o, p, price, base, q, parent) in enumerate([
                (1, 10, "990", "990", 1.0, None), (2, 10, "990", "990", 1.0, None), (3, 21, "2400", "2500", 1.0, None),
                (3, 10, "0", "0", 1.0, 3),  # a set component: not a line of its own
                (4, 22, "2600", "2600", 1.0, None)], 1)])
    engine.dispose()


def test_the_bitrix_preset_syncs_a_bitrix_database(tmp_path: Path, emulator) -> None:
    url = os.environ.get("SHOP_TEST_MYSQL_URL")
    if not url:
        pytest.skip("mysql: set SHOP_TEST_MYSQL_URL (bash .ci/services.sh starts a server); Bitrix runs on MySQL only")
    _bitrix_shop(url)
    cfg = _init_and_check("bitrix", url, tmp_path, emulator, SHOP_TIMEZONE="UTC")

    stats = run_all(cfg)
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "5": ("Одежда", None), "6": ("Платья", "5")}
    assert set(store.products) == {"10", "20"} and Decimal(store.products["10"]["price"]) == 990  # the base price
    assert store.products["20"]["categories"] == ["6"]
    assert {k: (v["product_external_id"], Decimal(v["price"]), v["is_available"]) for k, v in store.skus.items()} == {
        "21": ("20", Decimal(2500), True), "22": ("20", Decimal(2600), False)}
    assert {k: (v["status"], v["email"]) for k, v in store.orders.items()} == {
        "1": ("new", "buyer@example.ru"), "2": ("paid", "user2@example.ru"), "3": ("delivered", "user1@example.ru"),
        "4": ("canceled", "user2@example.ru")}
    assert [(line["product"], Decimal(line["final_price_per_item"]), Decimal(line["base_price_per_item"]))
            for line in store.orders["3"]["lines"]] == [("21", Decimal(2400), Decimal(2500))]  # not the set component
