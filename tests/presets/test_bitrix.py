"""The 1C-Bitrix preset: ``altcraft-sync init --preset bitrix`` writes a mapping that works, read-only, on the
platform's own tables, tested on generated data in those exact tables (column names and types as the platform's
source defines them)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import run_all
from tests.presets.common import init_and_check

# --- 1C-Bitrix: the tables of the sale, catalog and iblock modules' install.sql (MySQL only) -------------
BX = sa.MetaData()
INT = sa.Integer
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
    cfg = init_and_check("bitrix", url, tmp_path, emulator, SHOP_TIMEZONE="UTC")

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
