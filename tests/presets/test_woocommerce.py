"""The WooCommerce (HPOS and legacy posts) presets: ``altcraft-sync init --preset woocommerce`` writes a mapping
that works, read-only, on the platform's own tables, tested on generated data in those exact tables (column
names and types as the platform's source defines them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import run_all
from tests.presets.common import init_and_check

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
    cfg = init_and_check("woocommerce-legacy", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD", ALTCRAFT_ENDPOINT="woo")

    stats = run_all(cfg)
    assert all(s.rejected == s.failed == s.invalid == 0 for s in stats.values()), stats
    orders = emulator.store.orders
    assert set(orders) == {"100", "101"}  # not the refund post, not the trashed order
    assert (orders["100"]["status"], Decimal(orders["100"]["total_price"]), Decimal(orders["100"]["delivery_cost"]),
            orders["100"]["email"]) == ("part_refunded", 79, 5, "buyer100@example.com")
    assert sorted(line["product"] for line in orders["100"]["lines"]) == ["10", "21"]
    assert orders["101"]["status"] == "paid"


def test_the_woocommerce_preset_syncs_a_woocommerce_database(shop_url: str, tmp_path: Path, emulator) -> None:
    _woocommerce_shop(shop_url)
    cfg = init_and_check("woocommerce", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD", ALTCRAFT_ENDPOINT="woo")

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


