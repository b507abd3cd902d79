"""A generated WooCommerce store in WooCommerce's own tables (column names and types as
woocommerce/woocommerce's class-wc-install.php and OrdersTableDataStore.php, and WordPress's schema, define
them), under any table prefix, with its orders in HPOS tables or in the legacy posts storage.

The store holds every case the WooCommerce presets must get right: HTML-escaped names, a 4-decimal price,
backorders (negative stock), a disabled variation, a draft product, a variation whose stock its parent
manages, a deleted product still named by an order, a phone-only order, a checkout draft, an admin
auto-draft, a refund of one whole line, and a trashed order. With ``people``: WordPress users (customers by role
or by their orders, others not), guest orders under one e-mail in two spellings, a guest under a customer's
e-mail, a deleted user's order, a phone-only guest, and an order anonymized by a personal data erasure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")
MONEY = sa.Numeric(26, 8)
DAY = datetime(2026, 11, 20, 10, 0, 0)  # the store's history: long before the sync runs


def schema(prefix: str) -> sa.MetaData:
    """The tables the presets read, as WordPress and WooCommerce create them, named with ``prefix``."""
    md = sa.MetaData()

    def table(name: str, *cols: sa.Column) -> None:
        sa.Table(prefix + name, md, *cols)

    table("posts", sa.Column("ID", BIG, primary_key=True), sa.Column("post_title", sa.Text),
          sa.Column("post_status", sa.String(20)), sa.Column("post_type", sa.String(20)),
          sa.Column("post_parent", BIG), sa.Column("guid", sa.String(255)),
          sa.Column("post_date_gmt", sa.DateTime), sa.Column("post_modified_gmt", sa.DateTime))
    table("postmeta", sa.Column("meta_id", BIG, primary_key=True), sa.Column("post_id", BIG),
          sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))
    table("options", sa.Column("option_id", BIG, primary_key=True), sa.Column("option_name", sa.String(191)),
          sa.Column("option_value", sa.Text), sa.Column("autoload", sa.String(20)))
    table("wc_product_meta_lookup", sa.Column("product_id", BIG, primary_key=True), sa.Column("sku", sa.String(100)),
          sa.Column("min_price", sa.Numeric(19, 4)), sa.Column("max_price", sa.Numeric(19, 4)),
          sa.Column("stock_quantity", sa.Float), sa.Column("stock_status", sa.String(100)))
    table("terms", sa.Column("term_id", BIG, primary_key=True), sa.Column("name", sa.String(200)),
          sa.Column("slug", sa.String(200)))
    table("term_taxonomy", sa.Column("term_taxonomy_id", BIG, primary_key=True), sa.Column("term_id", BIG),
          sa.Column("taxonomy", sa.String(32)), sa.Column("parent", BIG))
    table("term_relationships", sa.Column("object_id", BIG, primary_key=True),
          sa.Column("term_taxonomy_id", BIG, primary_key=True))
    table("wc_orders", sa.Column("id", BIG, primary_key=True), sa.Column("status", sa.String(20)),
          sa.Column("currency", sa.String(10)), sa.Column("type", sa.String(20)), sa.Column("tax_amount", MONEY),
          sa.Column("total_amount", MONEY), sa.Column("customer_id", BIG), sa.Column("billing_email", sa.String(320)),
          sa.Column("date_created_gmt", sa.DateTime), sa.Column("date_updated_gmt", sa.DateTime),
          sa.Column("parent_order_id", BIG))
    table("wc_order_addresses", sa.Column("id", BIG, primary_key=True), sa.Column("order_id", BIG),
          sa.Column("address_type", sa.String(20)), sa.Column("first_name", sa.Text), sa.Column("last_name", sa.Text),
          sa.Column("city", sa.Text), sa.Column("email", sa.String(320)), sa.Column("phone", sa.String(100)))
    table("wc_orders_meta", sa.Column("id", BIG, primary_key=True), sa.Column("order_id", BIG),
          sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))
    table("users", sa.Column("ID", BIG, primary_key=True), sa.Column("user_login", sa.String(60)),
          sa.Column("user_email", sa.String(100)), sa.Column("user_registered", sa.DateTime),
          sa.Column("display_name", sa.String(250)))
    table("usermeta", sa.Column("umeta_id", BIG, primary_key=True), sa.Column("user_id", BIG),
          sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))
    table("wc_order_operational_data", sa.Column("id", BIG, primary_key=True), sa.Column("order_id", BIG),
          sa.Column("shipping_total_amount", MONEY), sa.Column("discount_total_amount", MONEY))
    table("woocommerce_order_items", sa.Column("order_item_id", BIG, primary_key=True),
          sa.Column("order_item_name", sa.Text), sa.Column("order_item_type", sa.String(200)),
          sa.Column("order_id", BIG))
    table("woocommerce_order_itemmeta", sa.Column("meta_id", BIG, primary_key=True), sa.Column("order_item_id", BIG),
          sa.Column("meta_key", sa.String(255)), sa.Column("meta_value", sa.Text))
    return md


@dataclass
class Order:
    id: int
    status: str
    total: str
    email: str | None = "buyer@example.com"
    phone: str | None = None
    shipping: str = "0"
    type: str = "shop_order"
    parent: int = 0
    currency: str = "USD"
    customer: int = 0
    first_name: str = "Ann"
    last_name: str = "Lee"
    city: str = ""
    anonymized: bool = False


@dataclass
class Item:
    id: int
    order: int
    name: str
    type: str = "line_item"
    meta: dict[str, str] | None = None


def line(product: int, qty: int, subtotal: str, total: str, variation: int = 0, **extra: str) -> dict[str, str]:
    """A line item's meta as WooCommerce writes it (WC_Order_Item_Product_Data_Store: all text)."""
    return {"_product_id": str(product), "_variation_id": str(variation), "_qty": str(qty),
            "_line_subtotal": subtotal, "_line_total": total, **extra}


# (ID, title, status, type, parent, min price, stock, stock status, categories)
CATALOGUE: list[tuple[Any, ...]] = [
    (10, "Beanie", "publish", "product", 0, "18", 7.0, "instock", [17]),
    (20, "Hoodie", "publish", "product", 0, "42", 5.0, "instock", [16]),  # manages stock for the yellow one
    (21, "Hoodie - Red", "publish", "product_variation", 20, "42", 3.0, "instock", []),
    (22, "Hoodie - Blue", "publish", "product_variation", 20, "45", 0.0, "outofstock", []),
    (23, "Hoodie - Green", "private", "product_variation", 20, "42", 4.0, "instock", []),  # disabled
    (24, "Hoodie - Yellow", "publish", "product_variation", 20, "44", None, "instock", []),  # parent's stock
    (30, "Salt &amp; Pepper Mill", "publish", "product", 0, "10.1250", -3.0, "onbackorder", [15]),
    (40, "Old Poster", "draft", "product", 0, "5", 2.0, "instock", []),
]

ORDERS = [
    Order(100, "wc-completed", "79.00", email="buyer100@example.com", shipping="5"),
    Order(101, "wc-processing", "45.00", email="buyer101@example.com"),
    Order(102, "wc-completed", "-42.00", email=None, type="shop_order_refund", parent=100),  # refunds line 2
    Order(103, "trash", "18.00"),
    Order(104, "wc-checkout-draft", "18.00"),                         # block checkout draft: not an order
    Order(105, "wc-pending", "21.25", email=None, phone="+7 999 000-11-22"),  # a phone order
    Order(106, "wc-cancelled", "12.50", email="buyer106@example.com"),  # names a deleted product
    Order(107, "auto-draft", "0", email=None),                        # an admin order not created yet
    Order(108, "wc-on-hold", "132.00", email="buyer108@example.com"),
]

ITEMS = [
    Item(1, 100, "Beanie", meta=line(10, 2, "36", "32")),            # a 4.00 coupon: 16 each after discount
    Item(2, 100, "Hoodie - Red", meta=line(20, 1, "42", "42", variation=21)),
    Item(3, 100, "Flat rate", "shipping", {"cost": "5.00", "method_id": "flat_rate"}),
    Item(4, 100, "save4", "coupon", {"discount_amount": "4"}),
    Item(5, 101, "Hoodie - Blue", meta=line(20, 1, "45", "45", variation=22)),
    Item(6, 102, "Hoodie - Red", meta=line(20, -1, "-42", "-42", variation=21, _refunded_item_id="2")),
    Item(7, 103, "Beanie", meta=line(10, 1, "18", "18")),
    Item(8, 104, "Beanie", meta=line(10, 1, "18", "18")),
    Item(9, 105, "Salt &amp; Pepper Mill", meta=line(30, 2, "21.25", "21.25")),  # 10.625 each
    Item(10, 106, "Discontinued Lamp", meta=line(50, 1, "12.50", "12.50")),      # product 50 was deleted
    Item(11, 108, "Hoodie - Yellow", meta=line(20, 3, "132", "132", variation=24)),
]


# (ID, login, e-mail, role, first name, last name, billing phone, billing city)
USERS: list[tuple[Any, ...]] = [
    (1, "ann", "ann@example.com", "customer", "Ann", "Smith", "+7 (912) 000-00-01", "Omsk"),
    (2, "bob", "bob@example.com", "customer", "Bob", "Brown", "", ""),          # no orders of his own
    (3, "manager", "manager@example.com", "shop_manager", "Meg", "Ray", "", ""),  # buys too: a customer
    (4, "reader", "reader@example.com", "subscriber", "Rick", "Poe", "", ""),    # no orders: not a customer
]

PEOPLE_ORDERS = [
    Order(120, "wc-completed", "18.00", email="ann.billing@example.com", customer=1, city="Omsk"),  # her account's
    Order(121, "wc-processing", "18.00", email="manager@example.com", customer=3),
    Order(122, "wc-completed", "18.00", email="Guest@Example.com", first_name="Gus", city="Kazan"),
    Order(123, "wc-completed", "18.00", email="guest@example.com", first_name="Gus"),  # the same guest
    Order(124, "wc-completed", "18.00", email="BOB@example.com"),            # a guest order under Bob's e-mail
    Order(125, "wc-completed", "18.00", email="gone@example.com", customer=999),  # its user was deleted
    Order(126, "wc-pending", "18.00", email=None, phone="+7 911 555-00-77", first_name="Pia"),  # phone only
    Order(127, "wc-completed", "18.00", email="deleted@site.invalid", phone="+0 000 000-00-00",
          first_name="[deleted]", anonymized=True),                          # a personal data erasure
]
PEOPLE_ITEMS = [Item(200 + o.id - 120, o.id, "Beanie", meta=line(10, 1, "18", "18")) for o in PEOPLE_ORDERS]


def build(url: str, prefix: str = "wp_", legacy: bool = False, decimals: int | None = 2,
          currency: str = "USD", without: frozenset[int] = frozenset(), people: bool = False) -> sa.MetaData:
    """Create the store at ``url``: catalogue, options, and :data:`ORDERS` (but those ``without``) with their
    items, in HPOS tables or (``legacy``) as shop_order posts with their postmeta; with ``people``, also
    :data:`USERS` and :data:`PEOPLE_ORDERS`."""
    orders = [o for o in ORDERS + (PEOPLE_ORDERS if people else []) if o.id not in without]
    items = [it for it in ITEMS + (PEOPLE_ITEMS if people else []) if it.order not in without]
    md = schema(prefix)
    t = {name[len(prefix):]: table for name, table in md.tables.items()}
    engine = sa.create_engine(url)
    md.drop_all(engine)
    md.create_all(engine)
    options = [("woocommerce_currency", currency)] + ([("woocommerce_price_num_decimals", str(decimals))]
                                                      if decimals is not None else [])
    with engine.begin() as conn:
        conn.execute(t["options"].insert(), [{"option_id": i, "option_name": n, "option_value": v, "autoload": "yes"}
                                             for i, (n, v) in enumerate(options, 1)])
        conn.execute(t["terms"].insert(), [{"term_id": 15, "name": "Kitchen", "slug": "kitchen"},
                                           {"term_id": 16, "name": "Hoodies", "slug": "hoodies"},
                                           {"term_id": 17, "name": "Hats &amp; Caps", "slug": "hats-caps"}])
        conn.execute(t["term_taxonomy"].insert(), [
            {"term_taxonomy_id": 15, "term_id": 15, "taxonomy": "product_cat", "parent": 0},
            {"term_taxonomy_id": 16, "term_id": 16, "taxonomy": "product_cat", "parent": 0},
            {"term_taxonomy_id": 17, "term_id": 17, "taxonomy": "product_cat", "parent": 16}])
        conn.execute(t["posts"].insert(), [
            {"ID": i, "post_title": title, "post_status": st, "post_type": ty, "post_parent": parent,
             "guid": f"https://shop.example/?p={i}", "post_date_gmt": DAY, "post_modified_gmt": DAY}
            for i, title, st, ty, parent, *_ in CATALOGUE])
        conn.execute(t["wc_product_meta_lookup"].insert(), [
            {"product_id": i, "sku": f"sku-{i}", "min_price": Decimal(price), "max_price": Decimal(price),
             "stock_quantity": stock, "stock_status": ss} for i, _, _, _, _, price, stock, ss, _ in CATALOGUE])
        conn.execute(t["term_relationships"].insert(), [
            {"object_id": i, "term_taxonomy_id": c} for i, *_, cats in CATALOGUE for c in cats])
        _orders(conn, t, orders, legacy)
        if people:
            _users(conn, t, prefix)
        conn.execute(t["woocommerce_order_items"].insert(), [
            {"order_item_id": it.id, "order_id": it.order, "order_item_type": it.type, "order_item_name": it.name}
            for it in items])
        conn.execute(t["woocommerce_order_itemmeta"].insert(), [
            {"meta_id": it.id * 20 + k, "order_item_id": it.id, "meta_key": key, "meta_value": value}
            for it in items for k, (key, value) in enumerate((it.meta or {}).items())])
    engine.dispose()
    return md


def _users(conn: sa.Connection, t: dict[str, sa.Table], prefix: str) -> None:
    """WordPress users with WooCommerce's customer meta (WC_Customer_Data_Store's keys); the role is the
    serialized ``<prefix>capabilities`` meta, as WP_User::set_role() writes it."""
    conn.execute(t["users"].insert(), [
        {"ID": i, "user_login": login, "user_email": email, "user_registered": DAY - timedelta(days=30 + i),
         "display_name": first} for i, login, email, _, first, *_ in USERS])
    meta = [(i, k, v) for i, _, _, role, first, last, phone, city in USERS for k, v in (
        (f"{prefix}capabilities", f'a:1:{{s:{len(role)}:"{role}";b:1;}}'), ("first_name", first), ("last_name", last),
        ("billing_phone", phone), ("billing_city", city), ("last_update", "1763632800"))]
    conn.execute(t["usermeta"].insert(), [
        {"umeta_id": n, "user_id": i, "meta_key": k, "meta_value": v} for n, (i, k, v) in enumerate(meta, 1)])


def _orders(conn: sa.Connection, t: dict[str, sa.Table], orders: list[Order], legacy: bool) -> None:
    updated = {o.id: DAY + timedelta(minutes=o.id - 99) for o in orders}
    if legacy:
        conn.execute(t["posts"].insert(), [
            {"ID": o.id, "post_title": f"Order {o.id}", "post_status": o.status, "post_type": o.type,
             "post_parent": o.parent, "guid": "", "post_date_gmt": DAY, "post_modified_gmt": updated[o.id]}
            for o in orders])
        meta = [(o.id, k, v) for o in orders for k, v in (
            ("_order_currency", o.currency), ("_order_total", o.total), ("_billing_email", o.email or ""),
            ("_billing_phone", o.phone or ""), ("_order_shipping", o.shipping), ("_order_key", f"wc_order_{o.id}"),
            ("_customer_user", str(o.customer)), ("_billing_first_name", o.first_name),
            ("_billing_last_name", o.last_name), ("_billing_city", o.city))]
        meta += [(o.id, "_anonymized", "yes") for o in orders if o.anonymized]
        conn.execute(t["postmeta"].insert(), [
            {"meta_id": n, "post_id": i, "meta_key": k, "meta_value": v} for n, (i, k, v) in enumerate(meta, 1)])
        return
    conn.execute(t["wc_orders"].insert(), [
        {"id": o.id, "status": o.status, "currency": o.currency, "type": o.type, "tax_amount": 0,
         "total_amount": Decimal(o.total), "customer_id": o.customer, "billing_email": o.email, "date_created_gmt": DAY,
         "date_updated_gmt": updated[o.id], "parent_order_id": o.parent} for o in orders])
    conn.execute(t["wc_order_addresses"].insert(), [
        {"id": n, "order_id": o.id, "address_type": "billing", "first_name": o.first_name, "last_name": o.last_name,
         "city": o.city, "email": o.email, "phone": o.phone or ""}
        for n, o in enumerate(orders, 1) if o.type == "shop_order"])
    anonymized = [o.id for o in orders if o.anonymized]
    if anonymized:
        conn.execute(t["wc_orders_meta"].insert(), [
            {"id": n, "order_id": i, "meta_key": "_anonymized", "meta_value": "yes"} for n, i in enumerate(anonymized, 1)])
    conn.execute(t["wc_order_operational_data"].insert(), [
        {"id": n, "order_id": o.id, "shipping_total_amount": Decimal(o.shipping), "discount_total_amount": 0}
        for n, o in enumerate(orders, 1)])


def change(url: str, md: sa.MetaData, prefix: str, at: datetime, legacy: bool = False) -> None:
    """What WooCommerce writes, at ``at``, when: the red variation is disabled (its post goes private), the
    beanie is switched to draft, and on-hold order 108 is cancelled, which restores its 3 yellow hoodies to the
    stock the parent product manages (wc_increase_stock_levels -> wc_update_product_stock: the parent's lookup
    row and its post_modified_gmt move; the yellow variation's own post does not)."""
    posts, lookup = md.tables[prefix + "posts"], md.tables[prefix + "wc_product_meta_lookup"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(posts.update().where(posts.c.ID == 21).values(post_status="private", post_modified_gmt=at))
        conn.execute(posts.update().where(posts.c.ID == 10).values(post_status="draft", post_modified_gmt=at))
        conn.execute(lookup.update().where(lookup.c.product_id == 20).values(stock_quantity=8.0))
        conn.execute(posts.update().where(posts.c.ID == 20).values(post_modified_gmt=at))
        if legacy:
            conn.execute(posts.update().where(posts.c.ID == 108).values(post_status="wc-cancelled",
                                                                         post_modified_gmt=at))
        else:
            orders = md.tables[prefix + "wc_orders"]
            conn.execute(orders.update().where(orders.c.id == 108).values(status="wc-cancelled", date_updated_gmt=at))
    engine.dispose()
