"""The 1C-Bitrix preset: ``altcraft-sync init --preset bitrix`` writes a mapping that works, read-only, on the
platform's own tables, tested on generated data in those exact tables (column names and types as the sale,
catalog, currency, iblock and main modules' install.sql define them). MariaDB only: Bitrix runs on MySQL."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import db_now, run_all
from tests.presets.common import assert_totals_exact, init_and_check, line_tuples, profile_key, sync_cleanly

# --- 1C-Bitrix: the tables the preset reads (only the columns it or the data below use) -------------------
BX = sa.MetaData()
INT, CH, DBL = sa.Integer, sa.CHAR(1), sa.Double
BX_MONEY = sa.Numeric(18, 4)
sa.Table("b_user", BX, sa.Column("ID", INT, primary_key=True), sa.Column("EMAIL", sa.String(255)),
         sa.Column("PERSONAL_PHONE", sa.String(255)), sa.Column("PERSONAL_MOBILE", sa.String(255)),
         sa.Column("TIMESTAMP_X", sa.DateTime), sa.Column("LOGIN", sa.String(50)), sa.Column("NAME", sa.String(50)),
         sa.Column("LAST_NAME", sa.String(50)), sa.Column("PERSONAL_BIRTHDAY", sa.Date),
         sa.Column("PERSONAL_GENDER", CH), sa.Column("PERSONAL_CITY", sa.String(255)),
         sa.Column("DATE_REGISTER", sa.DateTime))
sa.Table("b_option", BX, sa.Column("MODULE_ID", sa.String(50), primary_key=True),
         sa.Column("NAME", sa.String(100), primary_key=True), sa.Column("VALUE", sa.Text))
sa.Table("b_subscription", BX, sa.Column("ID", INT, primary_key=True), sa.Column("DATE_INSERT", sa.DateTime),
         sa.Column("DATE_UPDATE", sa.DateTime), sa.Column("USER_ID", INT), sa.Column("ACTIVE", CH),
         sa.Column("EMAIL", sa.String(255)), sa.Column("CONFIRMED", CH))
sa.Table("b_catalog_iblock", BX, sa.Column("IBLOCK_ID", INT, primary_key=True), sa.Column("PRODUCT_IBLOCK_ID", INT),
         sa.Column("SKU_PROPERTY_ID", INT))
sa.Table("b_catalog_group", BX, sa.Column("ID", INT, primary_key=True), sa.Column("NAME", sa.String(100)),
         sa.Column("BASE", CH))
sa.Table("b_catalog_currency_lang", BX, sa.Column("ID", INT, primary_key=True), sa.Column("CURRENCY", sa.CHAR(3)),
         sa.Column("LID", sa.CHAR(2)), sa.Column("FORMAT_STRING", sa.String(50)), sa.Column("DECIMALS", sa.SmallInteger))
sa.Table("b_iblock_section", BX, sa.Column("ID", INT, primary_key=True), sa.Column("TIMESTAMP_X", sa.DateTime),
         sa.Column("IBLOCK_ID", INT), sa.Column("IBLOCK_SECTION_ID", INT), sa.Column("ACTIVE", CH),
         sa.Column("NAME", sa.String(255)))
sa.Table("b_iblock_element", BX, sa.Column("ID", INT, primary_key=True), sa.Column("TIMESTAMP_X", sa.DateTime),
         sa.Column("IBLOCK_ID", INT), sa.Column("IBLOCK_SECTION_ID", INT), sa.Column("ACTIVE", CH),
         sa.Column("NAME", sa.String(255)))
sa.Table("b_iblock_section_element", BX, sa.Column("IBLOCK_SECTION_ID", INT, primary_key=True),
         sa.Column("IBLOCK_ELEMENT_ID", INT, primary_key=True))
sa.Table("b_iblock_element_property", BX, sa.Column("ID", INT, primary_key=True), sa.Column("IBLOCK_PROPERTY_ID", INT),
         sa.Column("IBLOCK_ELEMENT_ID", INT), sa.Column("VALUE", sa.Text), sa.Column("VALUE_NUM", sa.Numeric(18, 4)))
sa.Table("b_catalog_product", BX, sa.Column("ID", INT, primary_key=True), sa.Column("QUANTITY", DBL),
         sa.Column("AVAILABLE", CH), sa.Column("TYPE", INT), sa.Column("TIMESTAMP_X", sa.DateTime))
sa.Table("b_catalog_price", BX, sa.Column("ID", INT, primary_key=True), sa.Column("PRODUCT_ID", INT),
         sa.Column("CATALOG_GROUP_ID", INT), sa.Column("PRICE", sa.Numeric(18, 2)), sa.Column("CURRENCY", sa.CHAR(3)),
         sa.Column("QUANTITY_FROM", INT), sa.Column("QUANTITY_TO", INT), sa.Column("TIMESTAMP_X", sa.DateTime))
sa.Table("b_sale_order", BX, sa.Column("ID", INT, primary_key=True), sa.Column("LID", sa.CHAR(2)),
         sa.Column("PAYED", CH), sa.Column("CANCELED", CH), sa.Column("STATUS_ID", sa.String(2)),
         sa.Column("PRICE_DELIVERY", BX_MONEY), sa.Column("PRICE", BX_MONEY), sa.Column("CURRENCY", sa.CHAR(3)),
         sa.Column("USER_ID", INT), sa.Column("DATE_INSERT", sa.DateTime), sa.Column("DATE_UPDATE", sa.DateTime))
sa.Table("b_sale_order_props", BX, sa.Column("ID", INT, primary_key=True), sa.Column("PERSON_TYPE_ID", INT),
         sa.Column("NAME", sa.String(255)), sa.Column("TYPE", sa.String(20)), sa.Column("IS_EMAIL", CH),
         sa.Column("IS_PHONE", CH), sa.Column("CODE", sa.String(50)))
sa.Table("b_sale_order_props_value", BX, sa.Column("ID", INT, primary_key=True), sa.Column("ORDER_ID", INT),
         sa.Column("ORDER_PROPS_ID", INT), sa.Column("NAME", sa.String(255)), sa.Column("VALUE", sa.String(500)),
         sa.Column("CODE", sa.String(50)))
sa.Table("b_sale_basket", BX, sa.Column("ID", INT, primary_key=True), sa.Column("ORDER_ID", INT),
         sa.Column("PRODUCT_ID", INT), sa.Column("PRICE", BX_MONEY), sa.Column("BASE_PRICE", BX_MONEY),
         sa.Column("DISCOUNT_PRICE", BX_MONEY), sa.Column("CURRENCY", sa.CHAR(3)), sa.Column("QUANTITY", DBL),
         sa.Column("NAME", sa.String(255)), sa.Column("TYPE", INT), sa.Column("SET_PARENT_ID", INT),
         sa.Column("DATE_INSERT", sa.DateTime), sa.Column("DATE_UPDATE", sa.DateTime))

DAY = datetime(2026, 11, 20, 10, 0, 0)
DELETED_ORDER = 7  # its basket row names a product deleted from the catalog (a test of its own)
# element, iblock, name, active, catalog type (1 product, 2 set, 3 with offers, 4 offer), stock, available
ELEMENTS = [
    (10, 2, "Шарф \"Зима\" & <b>", "Y", 1, 5.0, "Y"),  # stored as typed
    (20, 2, "Платье", "Y", 3, 0.0, "Y"),
    (21, 3, "Платье (S)", "Y", 4, 5.0, "Y"),
    (22, 3, "Платье (M)", "Y", 4, 0.0, "N"),
    (24, 2, "Старое платье", "N", 3, 0.0, "Y"),       # switched off: its offer is unavailable
    (25, 3, "Старое платье (S)", "Y", 4, 3.0, "Y"),
    (30, 2, "Подарочный набор", "Y", 2, 4.0, "Y"),
    (40, 2, "Сыр", "Y", 1, -2.5, "Y"),                 # by weight, oversold
    (41, 2, "Масло", "N", 1, 8.0, "Y"),                # switched off
    (90, 7, "Другой сайт", "Y", 1, 1.0, "Y"),          # another catalog iblock: not this one
]
# price row, product, price type, price, currency, quantity from, to
PRICES = [(1, 10, 1, "990", 1, 9), (2, 10, 1, "900", 10, None), (3, 10, 2, "700", None, None),
          (4, 21, 1, "2500", None, None), (5, 22, 1, "2600", None, None), (6, 25, 1, "1000", None, None),
          (7, 30, 1, "1500", None, None), (8, 40, 1, "1200", None, None), (9, 41, 1, "300", None, None),
          (10, 90, 1, "5", None, None)]
# order, status, paid, canceled, user, currency, delivery, price
ORDERS = [(1, "N", "N", "N", 1, "RUB", "300", "1290"), (2, "N", "Y", "N", 2, "RUB", "300", "2700"),
          (3, "F", "Y", "N", 1, "RUB", "300", "1800"), (4, "N", "N", "Y", 2, "RUB", "300", "2900"),
          (5, "F", "Y", "N", 1, "RUB", "0", "900"), (6, "P", "Y", "N", 3, "RUB", "0", "990"),
          (7, "F", "Y", "N", 1, "RUB", "0", "450"), (8, "F", "Y", "N", 1, "JPY", "0", "1350"),
          (9, "F", "Y", "N", 1, "RUB", "0", "200")]
ANONYMOUS = 100  # the sale module's anonymous buyer: orders placed without registering
# user, login, e-mail, mobile, name, last name, birthday, gender, city
USERS = [(1, "u1", "user1@example.ru", "", "Анна", "Иванова", DAY.date().replace(year=1990), "F", "Омск"),
         (2, "u2", "user2@example.ru", "", "Борис", None, None, "M", None),
         (3, "u3", "", "+79000000003", "Юлия", None, None, None, None),     # a phone customer
         (4, "editor", "editor@example.ru", "", "Редактор", None, None, None, None),  # no orders
         (ANONYMOUS, "anonymous", "anonymous@example.ru", "", None, None, None, None, None)]
# with people: guest orders (the anonymous buyer's, and a deleted user's), each with its e-mail / phone property
PEOPLE_ORDERS = [(20, ANONYMOUS, "Guest@example.ru", None), (21, ANONYMOUS, "guest@example.ru", None),
                 (22, ANONYMOUS, None, "+7 911 555-00-77"), (23, ANONYMOUS, "USER2@example.ru", None),
                 (24, 99, "gone@example.ru", None)]
# basket row, order, product, name, price, base price, quantity, set parent
BASKET = [
    (1, 1, 10, "Шарф", "990", "990", 1.0, None),
    (2, 2, 21, "Платье (S)", "2400", "2500", 1.0, None),
    (3, 3, 30, "Подарочный набор", "1500", "1500", 1.0, 3),          # the set's own row: its price is the line's
    (4, 3, 10, "Шарф", "990", "990", 1.0, 3),             # its components: not lines
    (5, 3, 40, "Сыр", "1200", "1200", 1.0, 3),
    (6, 4, 22, "Платье (M)", "2600", "2600", 1.0, None),
    (7, 5, 40, "Сыр", "1200", "1200", 0.75, None),        # 0.75 kg
    (8, 6, 10, "Шарф", "990", "990", 1.0, None),
    (9, 7, 50, "Снятый товар", "450", "450", 1.0, None),  # deleted from the catalog
    (10, 8, 10, "Шарф", "1349.6", "1349.6", 1.0, None),   # JPY: 0 places
    (11, 9, 10, "Шарф", "99.995", "99.995", 2.0, None),   # 4 places
]


def _bitrix_shop(url: str, deleted_product_order: bool = False, people: bool = False) -> sa.Engine:
    """Catalog iblock 2 with its offers iblock 3 (and another catalog, 7), sections, the elements, prices
    (quantity tiers and a second price type) and orders above, with their properties and basket rows; order 7,
    naming a product deleted from the catalog, only when asked."""
    orders = [o for o in ORDERS if deleted_product_order or o[0] != DELETED_ORDER]
    basket = [b for b in BASKET if deleted_product_order or b[1] != DELETED_ORDER]
    if people:
        orders += [(i, "F", "Y", "N", user, "RUB", "0", "990") for i, user, _, _ in PEOPLE_ORDERS]
        basket += [(i, i, 10, "Шарф", "990", "990", 1.0, None) for i, *_ in PEOPLE_ORDERS]
    engine = sa.create_engine(url)
    BX.drop_all(engine)
    BX.create_all(engine)
    t = BX.tables
    with engine.begin() as conn:
        conn.execute(t["b_user"].insert(), [
            {"ID": i, "LOGIN": login, "EMAIL": email, "PERSONAL_PHONE": "", "PERSONAL_MOBILE": mobile, "NAME": name,
             "LAST_NAME": last, "PERSONAL_BIRTHDAY": birthday, "PERSONAL_GENDER": gender, "PERSONAL_CITY": city}
            for i, login, email, mobile, name, last, birthday, gender, city in USERS])
        conn.execute(t["b_user"].update().values(TIMESTAMP_X=DAY - timedelta(days=1), DATE_REGISTER=DAY - timedelta(days=30)))
        conn.execute(t["b_option"].insert(), [{"MODULE_ID": "sale", "NAME": "anonymous_user_id", "VALUE": str(ANONYMOUS)}])
        conn.execute(t["b_subscription"].insert(), [
            {"ID": 1, "USER_ID": 1, "EMAIL": "user1@example.ru", "ACTIVE": "Y", "CONFIRMED": "Y"},    # subscribed
            {"ID": 2, "USER_ID": 2, "EMAIL": "user2@example.ru", "ACTIVE": "Y", "CONFIRMED": "N"},    # not confirmed
            {"ID": 3, "USER_ID": None, "EMAIL": "Guest@example.ru", "ACTIVE": "Y", "CONFIRMED": "Y"},  # a guest's
            {"ID": 4, "USER_ID": 4, "EMAIL": "editor@example.ru", "ACTIVE": "Y", "CONFIRMED": "Y"}])  # no orders
        conn.execute(t["b_subscription"].update().values(DATE_INSERT=DAY, DATE_UPDATE=DAY))
        conn.execute(t["b_catalog_iblock"].insert(), [{"IBLOCK_ID": 2, "PRODUCT_IBLOCK_ID": 0, "SKU_PROPERTY_ID": 0},
                                                      {"IBLOCK_ID": 3, "PRODUCT_IBLOCK_ID": 2, "SKU_PROPERTY_ID": 30},
                                                      {"IBLOCK_ID": 7, "PRODUCT_IBLOCK_ID": 0, "SKU_PROPERTY_ID": 0}])
        conn.execute(t["b_catalog_group"].insert(), [{"ID": 1, "NAME": "BASE", "BASE": "Y"},
                                                     {"ID": 2, "NAME": "OPT", "BASE": "N"}])
        conn.execute(t["b_catalog_currency_lang"].insert(), [
            {"ID": 1, "CURRENCY": "RUB", "LID": "ru", "FORMAT_STRING": "# ₽", "DECIMALS": 2},
            {"ID": 2, "CURRENCY": "JPY", "LID": "ru", "FORMAT_STRING": "¥#", "DECIMALS": 0}])
        conn.execute(t["b_iblock_section"].insert(), [
            {"ID": 5, "TIMESTAMP_X": DAY, "IBLOCK_ID": 2, "IBLOCK_SECTION_ID": None, "ACTIVE": "Y", "NAME": "Одежда"},
            {"ID": 6, "TIMESTAMP_X": DAY, "IBLOCK_ID": 2, "IBLOCK_SECTION_ID": 5, "ACTIVE": "Y", "NAME": "Платья"},
            {"ID": 9, "TIMESTAMP_X": DAY, "IBLOCK_ID": 7, "IBLOCK_SECTION_ID": None, "ACTIVE": "Y", "NAME": "Чужой"}])
        conn.execute(t["b_iblock_element"].insert(), [
            {"ID": i, "TIMESTAMP_X": DAY, "IBLOCK_ID": ib, "IBLOCK_SECTION_ID": None, "ACTIVE": act, "NAME": n}
            for i, ib, n, act, *_ in ELEMENTS])
        conn.execute(t["b_iblock_section_element"].insert(), [{"IBLOCK_SECTION_ID": 5, "IBLOCK_ELEMENT_ID": 10},
                                                              {"IBLOCK_SECTION_ID": 6, "IBLOCK_ELEMENT_ID": 20}])
        conn.execute(t["b_iblock_element_property"].insert(), [
            {"ID": n, "IBLOCK_PROPERTY_ID": 30, "IBLOCK_ELEMENT_ID": offer, "VALUE": str(parent), "VALUE_NUM": parent}
            for n, (offer, parent) in enumerate([(21, 20), (22, 20), (25, 24)], 1)])
        conn.execute(t["b_catalog_product"].insert(), [
            {"ID": i, "QUANTITY": q, "AVAILABLE": av, "TYPE": ty, "TIMESTAMP_X": DAY}
            for i, _, _, _, ty, q, av in ELEMENTS])
        conn.execute(t["b_catalog_price"].insert(), [
            {"ID": n, "PRODUCT_ID": i, "CATALOG_GROUP_ID": g, "PRICE": Decimal(p), "CURRENCY": "RUB",
             "QUANTITY_FROM": qf, "QUANTITY_TO": qt, "TIMESTAMP_X": DAY + timedelta(minutes=5)}
            for n, i, g, p, qf, qt in PRICES])
        conn.execute(t["b_sale_order"].insert(), [
            {"ID": i, "LID": "s1", "STATUS_ID": st, "PAYED": paid, "CANCELED": canceled,
             "PRICE_DELIVERY": Decimal(dlv), "PRICE": Decimal(price), "CURRENCY": cur, "USER_ID": user,
             "DATE_INSERT": DAY, "DATE_UPDATE": DAY + timedelta(minutes=i)}
            for i, st, paid, canceled, user, cur, dlv, price in orders])
        conn.execute(t["b_sale_order_props"].insert(), [
            {"ID": 2, "PERSON_TYPE_ID": 1, "NAME": "E-Mail", "TYPE": "STRING", "IS_EMAIL": "Y", "IS_PHONE": "N",
             "CODE": "EMAIL"},
            {"ID": 3, "PERSON_TYPE_ID": 1, "NAME": "Телефон", "TYPE": "STRING", "IS_EMAIL": "N", "IS_PHONE": "Y",
             "CODE": "PHONE"}])
        conn.execute(t["b_sale_order_props_value"].insert(), [
            {"ID": 1, "ORDER_ID": 1, "ORDER_PROPS_ID": 2, "NAME": "E-Mail", "VALUE": "buyer@example.ru", "CODE": "EMAIL"},
            {"ID": 2, "ORDER_ID": 2, "ORDER_PROPS_ID": 2, "NAME": "E-Mail", "VALUE": "", "CODE": "EMAIL"},
            {"ID": 3, "ORDER_ID": 6, "ORDER_PROPS_ID": 3, "NAME": "Телефон", "VALUE": "+79001234567", "CODE": "PHONE"},
            *({"ID": 10 + i, "ORDER_ID": i, "ORDER_PROPS_ID": 2 if email else 3, "NAME": "", "VALUE": email or phone,
               "CODE": "EMAIL" if email else "PHONE"} for i, _, email, phone in (PEOPLE_ORDERS if people else []))])
        conn.execute(t["b_sale_basket"].insert(), [
            {"ID": n, "ORDER_ID": o, "PRODUCT_ID": p, "NAME": name, "PRICE": Decimal(price), "BASE_PRICE": Decimal(base),
             "DISCOUNT_PRICE": Decimal(base) - Decimal(price), "CURRENCY": "RUB", "QUANTITY": q,
             "TYPE": 1 if n == 3 else None, "SET_PARENT_ID": parent, "DATE_INSERT": DAY, "DATE_UPDATE": DAY}
            for n, o, p, name, price, base, q, parent in basket])
    return engine



def test_the_bitrix_preset_syncs_a_bitrix_database(tmp_path: Path, emulator) -> None:
    url = os.environ.get("SHOP_TEST_MYSQL_URL")
    if not url:
        pytest.skip("mysql: set SHOP_TEST_MYSQL_URL (bash .ci/services.sh starts a server); Bitrix runs on MySQL only")
    engine = _bitrix_shop(url)
    emulator.currencies.add("JPY")
    cfg = init_and_check("bitrix", url, tmp_path, emulator, SHOP_TIMEZONE="UTC", BITRIX_CATALOG_IBLOCK_ID="2")

    sync_cleanly(cfg)
    store = emulator.store
    assert {k: (v["name"], v.get("parent_external_id")) for k, v in store.categories.items()} == {
        "5": ("Одежда", None), "6": ("Платья", "5")}  # not iblock 7's
    catalog = {k: (v.get("price"), v["count"], v["is_available"]) for k, v in store.products.items()}
    assert catalog == {
        "10": ("990", 5, True),    # the base price for one unit, not the 10+ tier nor the OPT price
        "20": (None, 0, True), "24": (None, 0, False),  # products with offers: priced by their offers
        "30": ("1500", 4, True),
        "40": ("1200", 0, True),   # -2.5 kg in stock: 0
        "41": ("300", 8, False)}   # switched off
    assert store.products["20"]["categories"] == ["6"] and store.products["10"]["name"] == 'Шарф "Зима" & <b>'
    assert {k: (v["product_external_id"], Decimal(v["price"]), v["is_available"]) for k, v in store.skus.items()} == {
        "21": ("20", Decimal(2500), True), "22": ("20", Decimal(2600), False),
        "25": ("24", Decimal(1000), False)}  # its product is switched off
    orders = store.orders
    assert {k: (v["status"], v.get("email"), v["matching"]) for k, v in orders.items()} == {
        "1": ("new", "user1@example.ru", "email"),  # the account's e-mail, not the property's (issue 28: one profile)
        "2": ("paid", "user2@example.ru", "email"),
        "3": ("delivered", "user1@example.ru", "email"), "4": ("canceled", "user2@example.ru", "email"),
        "5": ("delivered", "user1@example.ru", "email"), "6": ("paid", None, "phone"),
        "8": ("delivered", "user1@example.ru", "email"),
        "9": ("delivered", "user1@example.ru", "email")}
    assert orders["6"]["phone"] == "+79000000003"  # the account's phone, as its profile has it (issue 28)
    assert line_tuples(orders["1"]) == [("10", 1, Decimal(990), "new")]
    assert line_tuples(orders["2"]) == [("21", 1, Decimal(2400), "processing")]
    assert Decimal(orders["2"]["lines"][0]["base_price_per_item"]) == 2500
    assert line_tuples(orders["3"]) == [("30", 1, Decimal(1500), "delivered")]   # the set's row, not its components
    assert line_tuples(orders["4"]) == [("22", 1, Decimal(2600), "canceled")]
    assert line_tuples(orders["5"]) == [("40", 1, Decimal(900), "delivered")]    # 0.75 kg x 1200 as one line
    assert (orders["8"]["total_price"], line_tuples(orders["8"])) == ("1350", [("10", 1, Decimal(1350), "delivered")])
    assert line_tuples(orders["9"]) == [("10", 2, Decimal(100), "delivered")]    # 99.995 to 2 places
    assert_totals_exact(orders)

    # order 1 ships: its status and the stock it took move, with Bitrix's own timestamps
    later = db_now(engine) - timedelta(hours=1)  # within sync.trigger_window: fires triggers
    with engine.begin() as conn:
        order, product = BX.tables["b_sale_order"], BX.tables["b_catalog_product"]
        conn.execute(order.update().where(order.c.ID == 1).values(STATUS_ID="F", PAYED="Y", DATE_UPDATE=later))
        conn.execute(product.update().where(product.c.ID == 10).values(QUANTITY=4.0, TIMESTAMP_X=later))
    sync_cleanly(cfg)
    assert store.products["10"]["count"] == 4
    assert (orders["1"]["status"], line_tuples(orders["1"])) == ("delivered", [("10", 1, Decimal(990), "delivered")])
    assert set(store.products) == {"10", "20", "24", "30", "40", "41"} and len(orders) == 8  # nothing extra
    assert (emulator.skip_triggers["1"], emulator.skip_triggers["3"]) == (False, True)  # "3": months old
    engine.dispose()


def test_an_order_naming_a_deleted_bitrix_product_goes_out(tmp_path: Path, emulator) -> None:
    """A basket row keeps PRODUCT_ID after the element is deleted: the order goes out at once, with a
    stand-in built from the row's own NAME and price."""
    url = os.environ.get("SHOP_TEST_MYSQL_URL")
    if not url:
        pytest.skip("mysql: set SHOP_TEST_MYSQL_URL; Bitrix runs on MySQL only")
    _bitrix_shop(url, deleted_product_order=True).dispose()
    emulator.currencies.add("JPY")
    cfg = init_and_check("bitrix", url, tmp_path, emulator, SHOP_TIMEZONE="UTC", BITRIX_CATALOG_IBLOCK_ID="2")
    sync_cleanly(cfg, runs=2)
    store = emulator.store
    assert line_tuples(store.orders["7"]) == [("50", 1, Decimal(450), "delivered")]
    assert (store.products["50"]["name"], store.products["50"]["is_available"]) == ("Снятый товар", False)
    assert len(store.orders) == 9 and set(store.products) == {"10", "20", "24", "30", "40", "41", "50"}



def test_every_bitrix_buyer_is_one_profile_and_only_subscribers_are_subscribed(tmp_path: Path, emulator) -> None:
    """Registered buyers (b_user rows with an order, not the anonymous buyer) and guest buyers (orders of the
    anonymous buyer or of a deleted user, by their e-mail, else phone, property) arrive as profiles before their
    orders, into an emulator refusing orders of unknown buyers: each buyer once, a guest order under a
    registered buyer's e-mail is that buyer's. Only an active and confirmed b_subscription subscribes (a
    user's, or a guest's by e-mail). A user's change re-sends that profile; an unsubscribe in Altcraft stays."""
    url = os.environ.get("SHOP_TEST_MYSQL_URL")
    if not url:
        pytest.skip("mysql: set SHOP_TEST_MYSQL_URL; Bitrix runs on MySQL only")
    emulator.require_profiles = True
    engine = _bitrix_shop(url, people=True)
    emulator.currencies.add("JPY")
    cfg = init_and_check("bitrix", url, tmp_path, emulator, SHOP_TIMEZONE="UTC", BITRIX_CATALOG_IBLOCK_ID="2")

    sync_cleanly(cfg)
    store = emulator.store
    assert set(store.orders) == {"1", "2", "3", "4", "5", "6", "8", "9", "20", "21", "22", "23", "24"}
    profiles = {profile_key(p): (p.get("_fname"), p.get("_lname"), p.get("_bdate"), p.get("_sex"), p.get("_city"),
                                  sorted(s["channel"] for s in p.get("subscriptions") or []))
                for p in store.profiles.values()}
    assert len(profiles) == len(store.profiles)  # every buyer once
    assert profiles == {
        "email:user1@example.ru": ("Анна", "Иванова", "1990-11-20", "female", "Омск", ["email"]),
        "email:user2@example.ru": ("Борис", None, None, "male", None, []),    # subscribed, not confirmed
        "phone:+79000000003": ("Юлия", None, None, None, None, []),
        "email:guest@example.ru": (None, None, None, None, None, ["email"]),  # two spellings; subscribed
        "phone:+79115550077": (None, None, None, None, None, []),
        "email:gone@example.ru": (None, None, None, None, None, []),          # a deleted user's order
    }  # not the editor (no order) nor the anonymous buyer
    assert store.orders["23"]["email"] == "USER2@example.ru"  # a guest order under Борис's e-mail: his profile

    again = run_all(cfg, streams=["customers", "guests", "orders"])
    assert sum(s.new + s.changed for s in again.values()) == 0
    anna = next(p for p in store.profiles.values() if p.get("email") == "user1@example.ru")
    anna["subscriptions"][0]["status"] = 2  # unsubscribed in Altcraft
    with engine.begin() as conn:
        user = BX.tables["b_user"]
        conn.execute(user.update().where(user.c.ID == 1).values(
            NAME="Аня", TIMESTAMP_X=db_now(engine) - timedelta(minutes=5)))
    third = run_all(cfg, streams=["customers", "guests", "orders"])
    assert (third["customers"].changed, third["guests"].new + third["guests"].changed) == (1, 0)
    assert anna["_fname"] == "Аня" and anna["subscriptions"][0]["status"] == 2
    engine.dispose()
