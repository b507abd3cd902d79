"""The demo shop: a reference schema (SQLAlchemy Core) and a deterministic, bulk data generator.

The schema looks like a real shop's, not like Altcraft's: integer keys, shop-side status names that the
config maps to Altcraft's, SKU codes separate from ids, a customers table joined for matching, regional
prices in a child table. ``altcraft-sync.yaml`` at the repository root is its mapping and the shipped
example for real shops.

The generator is vectorised with numpy and inserts in large batches, so 1,000,000 orders (~3,000,000
lines) take minutes, not hours. A handful of deliberately invalid rows (a negative line count, a customer
with no email, an order whose total does not add up, a SKU with a negative price, an over-long product
description) make quarantine visible in the demo. Invalid catalogue rows are never referenced by orders,
so every *valid* order can be delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import sqlalchemy as sa

from sandbox.demo_people import add_people, person_columns

metadata = sa.MetaData()

categories = sa.Table(
    "categories", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("categories.id"), nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_categories_sync", "updated_at", "id"),
)
products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("article", sa.String(40), nullable=False, unique=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("brand", sa.String(100)),
    sa.Column("url", sa.String(300)),
    sa.Column("category_id", sa.Integer, sa.ForeignKey("categories.id")),
    sa.Column("base_price", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3)),
    sa.Column("warranty", sa.Boolean),
    sa.Column("tags", sa.Text),
    sa.Column("material", sa.String(50)),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_products_sync", "updated_at", "id"),
)
skus = sa.Table(
    "skus", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku_code", sa.String(40), nullable=False, unique=True),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("product_article", sa.String(40), nullable=False),
    sa.Column("category_id", sa.Integer),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("price", sa.Numeric(12, 2), nullable=False),
    sa.Column("old_price", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("stock", sa.Integer, nullable=False),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("barcodes", sa.Text),
    sa.Column("pictures", sa.Text),
    sa.Column("color", sa.String(30)),
    sa.Column("weight_g", sa.Integer),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_skus_sync", "updated_at", "id"),
)
sku_regions = sa.Table(
    "sku_regions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku_id", sa.Integer, sa.ForeignKey("skus.id"), nullable=False, index=True),
    sa.Column("region_code", sa.String(40), nullable=False),
    sa.Column("price", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3)),
    sa.Column("stock", sa.Integer),
    sa.Column("available", sa.Boolean),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_sku_regions_sync", "updated_at", "id"),
)
customers = sa.Table(
    "customers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(200)),
    sa.Column("phone", sa.String(30)),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("birthday", sa.Date),
    sa.Column("gender", sa.String(1)),
    sa.Column("city", sa.String(100)),
    sa.Column("newsletter", sa.Boolean, nullable=False, default=False),
    sa.Column("sms_consent", sa.Boolean, nullable=False, default=False),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_customers_sync", "updated_at", "id"),
)
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=True),
    sa.Column("guest_email", sa.String(200)),  # orders without an account (see sandbox/demo_people.py)
    sa.Column("guest_phone", sa.String(30)),
    sa.Column("guest_name", sa.String(100)),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("delivery_cost", sa.Numeric(12, 2)),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("region_code", sa.String(40)),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("tags", sa.Text),
    sa.Column("gift_wrap", sa.Boolean),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_orders_sync", "updated_at", "id"),
)
order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("sku_code", sa.String(40), nullable=False),
    sa.Column("base_price", sa.Numeric(12, 2)),
    sa.Column("min_price", sa.Numeric(12, 2)),
    sa.Column("final_price", sa.Numeric(12, 2), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("gift_message", sa.String(200)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_order_lines_sync", "updated_at", "id"),
)

ORDER_STATES = np.array(["created", "paid", "shipped", "completed", "cancelled", "partly_refunded"])
LINE_STATES = np.array(["new", "packing", "in_transit", "done", "cancelled", "returned", "pickup_point"])
CURRENCIES = np.array(["RUB", "USD", "EUR", "KZT"])
REGIONS = np.array(["moscow", "spb", "kazan", "almaty", "novosibirsk"])
CHANNELS = np.array(["website", "mobile_app", "call_center"])
COLORS = np.array(["black", "white", "red", "blue", "green", "silver"])
BRANDS = np.array(["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne"])
NOUNS = np.array(["Phone", "Case", "Charger", "Headphones", "Watch", "Tablet", "Cable", "Speaker", "Lamp", "Kettle"])

EPOCH = datetime(2024, 1, 1)


@dataclass(frozen=True)
class DemoSize:
    orders: int
    skus: int
    products: int
    categories: int
    customers: int

    @classmethod
    def for_orders(cls, n: int, skus: int | None = None) -> DemoSize:
        n_skus = skus or max(20, min(100_000, n // 10))
        return cls(orders=n, skus=n_skus, products=max(8, n_skus // 3), categories=max(6, min(400, n_skus // 50)),
                   customers=max(10, n // 3))


def create_schema(engine: sa.Engine) -> None:
    metadata.create_all(engine)


def _money(cents: np.ndarray) -> list[str]:
    """Exact decimal strings from integer cents (no float on the way into the database)."""
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]


def _times(rng: np.random.Generator, n: int, start: datetime, span_s: int) -> np.ndarray:
    """Second-resolution times: plenty of equal timestamps, like a real shop's bulk updates.

    Drawn as fractions of the span, not as ``integers(0, span_s)``: the span follows the clock, and numpy's
    bounded integers take a bound-dependent number of bits from the generator, so every later draw (which
    customer placed an order, which SKUs it holds) changed from one build to the next."""
    offsets = (rng.random(n) * span_s).astype(np.int64)
    return np.datetime64(start, "s") + offsets.astype("timedelta64[s]")


def _insert(conn: sa.Connection, table: sa.Table, columns: dict[str, list], batch: int = 20_000) -> None:
    names = list(columns)
    values = [columns[n] for n in names]
    total = len(values[0])
    for start in range(0, total, batch):
        rows = [dict(zip(names, row)) for row in zip(*(v[start:start + batch] for v in values))]
        conn.execute(table.insert(), rows)


def generate(engine: sa.Engine, n_orders: int, seed: int = 42, skus_count: int | None = None,
             now: datetime | None = None, progress=None, people: bool = False) -> DemoSize:
    """Create the schema and fill it deterministically (same seed, same rows: every table draws from one
    generator in a fixed order). ``people`` adds what a customers sync needs to show (phone-only customers,
    guest orders: :func:`sandbox.demo_people.add_people`), drawing nothing from the generator, so every
    other row is the same either way."""
    size = DemoSize.for_orders(n_orders, skus_count)
    rng = np.random.default_rng(seed)
    now = (now or datetime.now(UTC).replace(tzinfo=None)).replace(microsecond=0)
    span = max(3600, int((now - timedelta(hours=1) - EPOCH).total_seconds()))
    create_schema(engine)
    with engine.begin() as conn:
        _fill_categories(conn, rng, size)
        p_cat = _fill_products(conn, rng, size)
        s_ids, s_cents, sku_codes = _fill_skus(conn, rng, size, p_cat)
        _fill_regions(conn, rng, s_ids, s_cents)
        _fill_customers(conn, rng, size)
        # orders and lines, in blocks to bound memory at 1M orders
        line_id = 0
        block = 200_000
        for start in range(0, size.orders, block):
            line_id = _fill_orders(conn, rng, size, start, block, s_cents, sku_codes, span, now, line_id)
            if progress:
                progress(min(size.orders, start + block))
        if people:
            add_people(conn, size)
    return size


def _fill_categories(conn: sa.Connection, rng: np.random.Generator, size: DemoSize) -> None:
    # categories: a tree, parents have lower ids
    cat_ids = np.arange(1, size.categories + 1)
    parents = [None if i <= 3 else int(rng.integers(1, i)) for i in cat_ids.tolist()]
    _insert(conn, categories, {
        "id": cat_ids.tolist(), "name": [f"Category {i}" for i in cat_ids.tolist()], "parent_id": parents,
        "updated_at": _times(rng, size.categories, EPOCH, 86_400).astype(datetime).tolist(),
    })


def _fill_products(conn: sa.Connection, rng: np.random.Generator, size: DemoSize) -> np.ndarray:
    # products, plus one extra invalid product (a description over Altcraft's 1000 characters) that
    # has no SKUs, so nothing else depends on it
    n_products = size.products + 1
    p_ids = np.arange(1, n_products + 1)
    p_cat = rng.integers(1, size.categories + 1, n_products)
    descriptions = [f"A dependable {NOUNS[i % len(NOUNS)].lower()} for every day." for i in p_ids.tolist()]
    descriptions[-1] = "x" * 1200
    _insert(conn, products, {
        "id": p_ids.tolist(), "article": [f"P{i:07d}" for i in p_ids.tolist()],
        "title": [f"{BRANDS[i % 6]} {NOUNS[i % 10]} {i}" for i in p_ids.tolist()],
        "description": descriptions, "brand": BRANDS[p_ids % 6].tolist(),
        "url": [f"https://shop.example.com/p/{i}" for i in p_ids.tolist()], "category_id": p_cat.tolist(),
        "base_price": _money(rng.integers(199, 99_999, n_products) * 10 + 9),
        "currency": ["RUB"] * n_products, "warranty": (p_ids % 3 == 0).tolist(),
        "tags": [orjson.dumps(["new"] if i % 5 == 0 else []).decode() for i in p_ids.tolist()],
        "material": np.array(["plastic", "metal", "glass"])[p_ids % 3].tolist(),
        "is_deleted": [False] * n_products,
        "updated_at": _times(rng, n_products, EPOCH, 86_400 * 30).astype(datetime).tolist(),
    })
    return p_cat


def _fill_skus(conn: sa.Connection, rng: np.random.Generator, size: DemoSize,
               p_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    # skus: every product has >= 1; the last SKU is invalid (negative price) and never ordered
    s_ids = np.arange(1, size.skus + 1)
    s_prod = np.where(s_ids <= size.products, s_ids, rng.integers(1, size.products, size.skus))
    s_cents = rng.integers(99, 99_999, size.skus) * 10 + 9
    s_price = _money(s_cents)
    s_price[-1] = "-5.00"
    sku_codes = [f"S{i:07d}" for i in s_ids.tolist()]
    _insert(conn, skus, {
        "id": s_ids.tolist(), "sku_code": sku_codes, "product_id": s_prod.tolist(),
        "product_article": [f"P{p:07d}" for p in s_prod.tolist()],
        "category_id": p_cat[s_prod - 1].tolist(),
        "name": [f"{NOUNS[p % 10]} {p} / {COLORS[i % 6]}" for i, p in zip(s_ids.tolist(), s_prod.tolist())],
        "price": s_price, "old_price": [None if i % 4 else p for i, p in zip(s_ids.tolist(), _money(s_cents + 1000))],
        "currency": CURRENCIES[s_ids % 2].tolist(), "stock": rng.integers(0, 500, size.skus).tolist(),
        "available": (s_ids % 17 != 0).tolist(),
        "barcodes": [orjson.dumps([4600000000000 + i]).decode() for i in s_ids.tolist()],
        "pictures": [orjson.dumps([f"https://cdn.example.com/{i}.jpg"]).decode() for i in s_ids.tolist()],
        "color": COLORS[s_ids % 6].tolist(), "weight_g": (100 + s_ids % 900).tolist(),
        "is_deleted": [False] * size.skus,
        "updated_at": _times(rng, size.skus, EPOCH, 86_400 * 60).astype(datetime).tolist(),
    })
    return s_ids, s_cents, sku_codes


def _fill_regions(conn: sa.Connection, rng: np.random.Generator, s_ids: np.ndarray, s_cents: np.ndarray) -> None:
    # regional prices: every third SKU has two regions
    r_sku = np.repeat(s_ids[s_ids % 3 == 0], 2)
    r_n = len(r_sku)
    _insert(conn, sku_regions, {
        "id": np.arange(1, r_n + 1).tolist(), "sku_id": r_sku.tolist(),
        "region_code": REGIONS[np.arange(r_n) % 2].tolist(),
        "price": _money(s_cents[r_sku - 1] - 100), "currency": ["RUB"] * r_n,
        "stock": rng.integers(0, 100, r_n).tolist(), "available": [True] * r_n,
        "updated_at": _times(rng, r_n, EPOCH, 86_400 * 60).astype(datetime).tolist(),
    })


def _fill_customers(conn: sa.Connection, rng: np.random.Generator, size: DemoSize) -> None:
    # customers: one has no email (its orders cannot be matched -> quarantined)
    c_ids = np.arange(1, size.customers + 1)
    emails: list[str | None] = [f"customer{i}@example.com" for i in c_ids.tolist()]
    emails[4] = None
    updated = _times(rng, size.customers, EPOCH, 86_400).astype(datetime).tolist()
    _insert(conn, customers, {
        "id": c_ids.tolist(), "email": emails,
        "phone": [f"+7900{i:07d}" for i in c_ids.tolist()],
        **person_columns(c_ids.tolist(), updated),
        "updated_at": updated,
    })


def _fill_orders(conn: sa.Connection, rng: np.random.Generator, size: DemoSize, start: int, block: int,
                 s_cents: np.ndarray, sku_codes: list[str], span: int, now: datetime, line_id: int) -> int:
    """One block of orders and their lines (1..5 lines, mean 3); returns the last line id. The first block
    plants two invalid orders: a negative line count (order 1) and a total that does not add up (order 7)."""
    orderable = size.skus - 1  # the invalid last SKU is never ordered
    ids = np.arange(start + 1, min(size.orders, start + block) + 1)
    n = len(ids)
    n_lines = rng.integers(1, 6, n)  # 1..5 lines, mean 3
    order_of_line = np.repeat(ids, n_lines)
    m = len(order_of_line)
    line_sku = rng.integers(1, orderable + 1, m)
    unit = s_cents[line_sku - 1]
    qty = rng.integers(1, 4, m)
    disc = rng.integers(0, 2, m) * (unit // 10)
    final = unit - disc
    created = _times(rng, n, EPOCH, span)
    updated = created + rng.integers(0, 72, n).astype("timedelta64[h]")
    updated = np.minimum(updated, np.datetime64(now - timedelta(hours=1), "s"))
    delivery = rng.integers(0, 3, n) * 29_900
    line_total = np.bincount(np.searchsorted(ids, order_of_line), weights=final * qty, minlength=n)
    total = line_total.astype(np.int64) + delivery
    qty_list = qty.tolist()
    totals = total.copy()
    if start == 0 and n > 12:
        qty_list[0] = -1  # invalid line: negative count (quarantines order 1)
        totals[6] += 100  # invalid: order 7's total does not add up
    cust = rng.integers(1, size.customers + 1, n)
    _insert(conn, orders, {
        "id": ids.tolist(), "customer_id": cust.tolist(),
        "state": ORDER_STATES[rng.integers(0, len(ORDER_STATES), n)].tolist(),
        "currency": ["RUB"] * n, "delivery_cost": _money(delivery), "total": _money(totals),
        "region_code": REGIONS[rng.integers(0, len(REGIONS), n)].tolist(),
        "channel": CHANNELS[rng.integers(0, len(CHANNELS), n)].tolist(),
        "tags": [orjson.dumps(["promo"]).decode() if i % 7 == 0 else None for i in ids.tolist()],
        "gift_wrap": (ids % 11 == 0).tolist(),
        "created_at": created.astype(datetime).tolist(), "updated_at": updated.astype(datetime).tolist(),
        "is_deleted": [False] * n,
    })
    line_updated = np.repeat(updated, n_lines)
    _insert(conn, order_lines, {
        "id": np.arange(line_id + 1, line_id + m + 1).tolist(), "order_id": order_of_line.tolist(),
        "sku_code": [sku_codes[s - 1] for s in line_sku.tolist()],
        "base_price": _money(unit), "min_price": _money(unit - unit // 5), "final_price": _money(final),
        "qty": qty_list, "state": LINE_STATES[rng.integers(0, len(LINE_STATES), m)].tolist(),
        "gift_message": [None] * m,
        "updated_at": line_updated.astype(datetime).tolist(),
    })
    return line_id + m


def touch(engine: sa.Engine, *, order_ids: list[int], line_id: int | None = None, sku_id: int | None = None,
          at: datetime | None = None) -> None:
    """Change a few rows the way a shop does (the demo's second run sends exactly these).

    Orders get a new state and ``updated_at``; the line changes only in ``order_lines`` (its order row
    keeps its ``updated_at``: the sync must still re-send that order); the SKU gets a new price.
    """
    at = at or datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        if order_ids:
            conn.execute(orders.update().where(orders.c.id.in_(order_ids)).values(state="completed", updated_at=at))
        if line_id is not None:
            conn.execute(
                order_lines.update().where(order_lines.c.id == line_id)
                .values(state="done", gift_message="Happy birthday!", updated_at=at)
            )
        if sku_id is not None:
            conn.execute(skus.update().where(skus.c.id == sku_id).values(stock=skus.c.stock + 7, updated_at=at))
