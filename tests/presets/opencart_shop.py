"""An OpenCart 3.0.3.8 shop for the preset tests: the tables the preset reads, with the column names and types
of upload/install/opencart.sql (NOT NULL columns get a default here so rows name only what a case needs),
filled with generated data covering every case issue 26 lists."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

# table -> "column type" list, as opencart.sql declares them; the first column is the key unless `pk:` says
_TABLES = {
    "category": "category_id int, image varchar(255)?, parent_id int, top tinyint, column int, sort_order int, "
                "status tinyint, date_added datetime, date_modified datetime",
    "category_description": "pk:category_id,language_id; category_id int, language_id int, name varchar(255), "
                            "description text, meta_title varchar(255), meta_description varchar(255), "
                            "meta_keyword varchar(255)",
    "currency": "currency_id int, title varchar(32), code varchar(3), symbol_left varchar(12), "
                "symbol_right varchar(12), decimal_place char(1), value double, status tinyint, date_modified datetime",
    "language": "language_id int, name varchar(32), code varchar(5), locale varchar(255), image varchar(64), "
                "directory varchar(32), sort_order int, status tinyint",
    "order": "order_id int, invoice_no int, invoice_prefix varchar(26), store_id int, store_name varchar(64), "
             "store_url varchar(255), customer_id int, customer_group_id int, firstname varchar(32), "
             "lastname varchar(32), email varchar(96), telephone varchar(32), fax varchar(32), custom_field text, "
             "payment_firstname varchar(32), payment_lastname varchar(32), payment_company varchar(60), "
             "payment_address_1 varchar(128), payment_address_2 varchar(128), payment_city varchar(128), "
             "payment_postcode varchar(10), payment_country varchar(128), payment_country_id int, "
             "payment_zone varchar(128), payment_zone_id int, payment_address_format text, payment_custom_field text, "
             "payment_method varchar(128), payment_code varchar(128), shipping_firstname varchar(32), "
             "shipping_lastname varchar(32), shipping_company varchar(40), shipping_address_1 varchar(128), "
             "shipping_address_2 varchar(128), shipping_city varchar(128), shipping_postcode varchar(10), "
             "shipping_country varchar(128), shipping_country_id int, shipping_zone varchar(128), "
             "shipping_zone_id int, shipping_address_format text, shipping_custom_field text, "
             "shipping_method varchar(128), shipping_code varchar(128), comment text, total decimal(15,4), "
             "order_status_id int, affiliate_id int, commission decimal(15,4), marketing_id int, "
             "tracking varchar(64), language_id int, currency_id int, currency_code varchar(3), "
             "currency_value decimal(15,8), ip varchar(40), forwarded_ip varchar(40), user_agent varchar(255), "
             "accept_language varchar(255), date_added datetime, date_modified datetime",
    "order_history": "order_history_id int, order_id int, order_status_id int, notify tinyint, comment text, "
                     "date_added datetime",
    "order_product": "order_product_id int, order_id int, product_id int, name varchar(255), model varchar(64), "
                     "quantity int, price decimal(15,4), total decimal(15,4), tax decimal(15,4), reward int",
    "order_total": "order_total_id int, order_id int, code varchar(32), title varchar(255), value decimal(15,4), "
                   "sort_order int",
    "product": "product_id int, model varchar(64), sku varchar(64), upc varchar(12), ean varchar(14), "
               "jan varchar(13), isbn varchar(17), mpn varchar(64), location varchar(128), quantity int, "
               "stock_status_id int, image varchar(255)?, manufacturer_id int, shipping tinyint, "
               "price decimal(15,4), points int, tax_class_id int, date_available date, weight decimal(15,8), "
               "weight_class_id int, length decimal(15,8), width decimal(15,8), height decimal(15,8), "
               "length_class_id int, subtract tinyint, minimum int, sort_order int, status tinyint, viewed int, "
               "date_added datetime, date_modified datetime",
    "product_description": "pk:product_id,language_id; product_id int, language_id int, name varchar(255), "
                           "description text, tag text, meta_title varchar(255), meta_description varchar(255), "
                           "meta_keyword varchar(255)",
    "product_to_category": "pk:product_id,category_id; product_id int, category_id int",
    "customer": "customer_id int, customer_group_id int, store_id int, language_id int, firstname varchar(32), "
                "lastname varchar(32), email varchar(96), telephone varchar(32), fax varchar(32), password varchar(40), "
                "salt varchar(9), cart text?, wishlist text?, newsletter tinyint, address_id int, custom_field text, "
                "ip varchar(40), status tinyint, safe tinyint, token text, code varchar(40), date_added datetime",
    "address": "address_id int, customer_id int, firstname varchar(32), lastname varchar(32), company varchar(40), "
               "address_1 varchar(128), address_2 varchar(128), city varchar(128), postcode varchar(10), "
               "country_id int, zone_id int, custom_field text",
    "setting": "setting_id int, store_id int, code varchar(128), key varchar(128), value text, serialized tinyint",
}
_LONG_AGO = datetime(2000, 1, 1)


def _type(name: str) -> tuple[Any, Any]:
    """The SQLAlchemy type of an opencart.sql column type and the default a row that omits it gets."""
    if m := re.fullmatch(r"(varchar|char)\((\d+)\)", name):
        return (sa.String if m[1] == "varchar" else sa.CHAR)(int(m[2])), ""
    if m := re.fullmatch(r"decimal\((\d+),(\d+)\)", name):
        return sa.Numeric(int(m[1]), int(m[2])), Decimal(0)
    simple = {"int": (sa.Integer(), 0), "tinyint": (sa.SmallInteger(), 0), "text": (sa.Text(), ""),
              "double": (sa.Double(), 0.0), "datetime": (sa.DateTime(), _LONG_AGO), "date": (sa.Date(), _LONG_AGO.date())}
    return simple[name]


def opencart_metadata(prefix: str) -> sa.MetaData:
    meta = sa.MetaData()
    for table, spec in _TABLES.items():
        keys, _, body = spec.partition("; ") if spec.startswith("pk:") else ("", "", spec)
        pk = keys.removeprefix("pk:").split(",") if keys else [body.split(" ", 1)[0]]
        columns = []
        for col in body.split(", "):
            name, kind = col.split(" ")
            nullable = kind.endswith("?")
            type_, default = _type(kind.rstrip("?"))
            columns.append(sa.Column(name, type_, primary_key=name in pk, nullable=nullable,
                                     default=None if nullable or name in pk else default))
        sa.Table(prefix + table, meta, *columns)
    return meta


# --- the generated shop ------------------------------------------------------------------------------------
DAY = datetime(2026, 9, 1, 10, 0, 0)  # months before the run: a first load of history
CURRENCIES = {"USD": ("2", 1), "EUR": ("2", Decimal("0.78460002")), "JPY": ("0", Decimal("150.12345678"))}
STATUS = {"pending": 1, "processing": 2, "shipped": 3, "complete": 5, "canceled": 7, "refunded": 11, "processed": 15}


def _line(op_id: int, order_id: int, product_id: int, name: str, qty: int, price: str, tax: str = "0") -> dict:
    return {"order_product_id": op_id, "order_id": order_id, "product_id": product_id, "name": name, "model": name,
            "quantity": qty, "price": Decimal(price), "tax": Decimal(tax), "total": Decimal(price) * qty}


def _order(order_id: int, status: int, total: str, currency: str = "USD", email: str = "", phone: str = "",
           minutes: int = 0) -> dict:
    return {"order_id": order_id, "order_status_id": status, "total": Decimal(total), "email": email,
            "telephone": phone, "currency_code": currency, "currency_value": CURRENCIES[currency][1],
            "date_added": DAY + timedelta(minutes=minutes), "date_modified": DAY + timedelta(minutes=minutes),
            "customer_id": 0, "firstname": "", "lastname": "", "payment_city": ""}


DELETED_PRODUCT = 45  # named by order 6, not in the product table
ORDERS = [  # (order, its lines, its shipping)
    # a complete USD order with shipping and a coupon in its total
    (_order(1, STATUS["complete"], "207", email="a@example.com"), [_line(1, 1, 40, "iPhone", 2, "101")], "10"),
    # EUR at OpenCart's rate: total and line prices x currency_value, rounded to 2 places; the line with its tax
    (_order(2, STATUS["processing"], "120", "EUR", email="b@example.com", minutes=1),
     [_line(2, 2, 41, "iMac", 1, "100", "20")], None),
    # an abandoned checkout (status 0): left out until it completes
    (_order(3, 0, "101", email="c@example.com", minutes=2), [_line(3, 3, 40, "iPhone", 1, "101")], None),
    # JPY (0 decimal places), a 4-decimal price, shipped
    (_order(4, STATUS["shipped"], "127.0050", "JPY", email="d@example.com", minutes=3),
     [_line(4, 4, 42, "Apple Cinema 30&quot;", 1, "122.0050")], "5"),
    # taken by phone: no e-mail
    (_order(5, STATUS["pending"], "101", phone="+7 912 345-67-89", minutes=4), [_line(5, 5, 40, "iPhone", 1, "101")], None),
    # names a product deleted since (45 is not in the product table)
    (_order(6, STATUS["refunded"], "300", email="f@example.com", minutes=5),
     [_line(6, 6, DELETED_PRODUCT, "Sony VAIO &amp; Dock", 1, "300")], None),
    # names a product whose stock went negative
    (_order(7, STATUS["processed"], "80.5", email="g@example.com", minutes=6),
     [_line(7, 7, 43, "MacBook", 1, "80.5")], None),
    # will be canceled between the runs (addOrderHistory puts its stock back)
    (_order(8, STATUS["processing"], "40", email="h@example.com", minutes=7), [_line(8, 8, 44, "iPod", 2, "20")], None),
]
LIVE_ORDERS = [o for o in ORDERS if all(x["product_id"] != DELETED_PRODUCT for x in o[1])]
PRODUCTS = [  # product_id, name as stored, price, quantity, status
    (40, "iPhone", "101.0000", 970, 1), (41, "iMac", "100.0000", 977, 0), (42, "Apple Cinema 30&quot;", "122.0050", 5, 1),
    (43, "MacBook", "80.5000", -3, 1), (44, "iPod", "19.9949", 10, 1)]


# customer_id, firstname, lastname (as stored: HTML-escaped), e-mail, telephone, newsletter, city of the address
CUSTOMERS = [
    (1, "Ann", "O&quot;Neil &amp; Co", "ann@example.com", "+7 912 000-00-01", 1, "Omsk"),
    (2, "Bob", "Brown", "bob@example.com", "", 0, ""),               # no orders of his own
    (3, "Pia", "Ray", "", "+7 911 555-00-77", 1, ""),                # phone only: consent, but no address to mail
]


def _bought(order_id: int, customer: int, email: str = "", phone: str = "", first: str = "Gus") -> tuple:
    order = {**_order(order_id, STATUS["complete"], "101", email=email, phone=phone, minutes=order_id),
             "customer_id": customer, "firstname": first, "lastname": "Lee", "payment_city": "Kazan"}
    return order, [_line(order_id, order_id, 40, "iPhone", 1, "101")], None


PEOPLE_ORDERS = [
    _bought(20, 1, email="ann.old@example.com"),   # Ann's, under the e-mail her account had then
    _bought(21, 0, email="Guest@Example.com"),     # one guest, two spellings
    _bought(22, 0, email="guest@example.com"),
    _bought(23, 0, email="BOB@example.com"),       # a guest order under Bob's e-mail: Bob's
    _bought(24, 99, email="gone@example.com"),     # its customer was deleted since
    _bought(25, 3, phone="+7 911 555-00-77"),      # Pia's, by phone
]


def build_opencart_shop(url: str, prefix: str, orders: list | None = None, people: bool = False) -> sa.MetaData:
    """Create the tables under ``prefix`` and fill them with the cases of :data:`PRODUCTS` and ``orders``
    (default :data:`ORDERS`); with ``people`` also :data:`CUSTOMERS` and :data:`PEOPLE_ORDERS`."""
    orders = (ORDERS if orders is None else orders) + (PEOPLE_ORDERS if people else [])
    meta = opencart_metadata(prefix)
    engine = sa.create_engine(url)
    meta.drop_all(engine)
    meta.create_all(engine)
    t = {name.removeprefix(prefix): table for name, table in meta.tables.items()}
    with engine.begin() as conn:
        conn.execute(t["setting"].insert(), [
            {"setting_id": i, "store_id": 0, "code": "config", "key": k, "value": v}
            for i, (k, v) in enumerate([("config_currency", "USD"), ("config_language", "en-gb"),
                                        ("config_stock_checkout", "0"), ("config_admin_language", "ru-ru")], 1)])
        conn.execute(t["language"].insert(), [{"language_id": 1, "name": "Русский", "code": "ru-ru", "status": 1},
                                              {"language_id": 2, "name": "English", "code": "en-gb", "status": 1}])
        conn.execute(t["currency"].insert(), [
            {"currency_id": i, "title": code, "code": code, "decimal_place": places, "value": float(rate), "status": 1}
            for i, (code, (places, rate)) in enumerate(CURRENCIES.items(), 1)])
        conn.execute(t["category"].insert(), [
            {"category_id": c, "parent_id": p, "status": 1, "date_added": DAY, "date_modified": DAY}
            for c, p in [(20, 0), (18, 0), (26, 20)]])
        conn.execute(t["category_description"].insert(), [
            {"category_id": c, "language_id": lang, "name": n} for c, lang, n in [
                (20, 2, "Desktops"), (20, 1, "Компьютеры"), (18, 2, "Laptops &amp; Notebooks"), (26, 2, "PC")]])
        conn.execute(t["product"].insert(), [
            {"product_id": p, "model": f"Product {p}", "price": Decimal(price), "quantity": qty, "status": status,
             "subtract": 1, "minimum": 1, "date_added": DAY, "date_modified": DAY}
            for p, _, price, qty, status in PRODUCTS])
        conn.execute(t["product_description"].insert(), [
            {"product_id": p, "language_id": 2, "name": name} for p, name, *_ in PRODUCTS])
        conn.execute(t["product_to_category"].insert(), [
            {"product_id": p, "category_id": c} for p, c in [(40, 20), (40, 26), (41, 20), (42, 18), (43, 18)]])
        conn.execute(t["order"].insert(), [order for order, _, _ in orders])
        if people:
            conn.execute(t["customer"].insert(), [
                {"customer_id": i, "firstname": first, "lastname": last, "email": email, "telephone": phone,
                 "newsletter": news, "address_id": i if city else 0, "status": 1, "date_added": DAY - timedelta(days=i)}
                for i, first, last, email, phone, news, city in CUSTOMERS])
            conn.execute(t["address"].insert(), [{"address_id": i, "customer_id": i, "city": city}
                                                 for i, *_, city in CUSTOMERS if city])
        conn.execute(t["order_product"].insert(), [line for _, lines, _ in orders for line in lines])
        totals = []
        for order, lines, shipping in orders:
            oid = order["order_id"]
            totals.append({"order_id": oid, "code": "sub_total", "value": sum(x["total"] for x in lines), "sort_order": 1})
            if shipping:
                totals.append({"order_id": oid, "code": "shipping", "value": Decimal(shipping), "sort_order": 3})
            totals.append({"order_id": oid, "code": "total", "value": order["total"], "sort_order": 9})
        conn.execute(t["order_total"].insert(), [{"order_total_id": i, **row} for i, row in enumerate(totals, 1)])
        conn.execute(t["order_history"].insert(), [
            {"order_history_id": order["order_id"], "order_id": order["order_id"],
             "order_status_id": order["order_status_id"], "date_added": order["date_modified"]}
            for order, _, _ in orders if order["order_status_id"]])
    engine.dispose()
    return meta


def shown(amount: Decimal, currency: str) -> Decimal:
    """An amount in the default currency as OpenCart shows it in ``currency``: times the rate, rounded half
    away from zero to the currency's decimal places (system/library/cart/currency.php)."""
    places, rate = CURRENCIES[currency]
    return (Decimal(amount) * Decimal(rate)).quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)
