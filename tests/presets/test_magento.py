"""The Magento 2 preset: ``altcraft-sync init --preset magento`` writes a mapping that works, read-only, on the
platform's own tables, tested on generated data in those exact tables (column names and types as the platform's
source defines them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import run_all
from tests.presets.common import init_and_check

# --- Magento 2: the tables of each module's etc/db_schema.xml (no prefix) ---------------------------------
MG = sa.MetaData()
INT = sa.Integer
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
    cfg = init_and_check("magento", shop_url, tmp_path, emulator, SHOP_CURRENCY="USD")

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


