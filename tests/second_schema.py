"""A second shop schema, nothing like the demo's, synced purely through config.

Awkward on purpose: a table name with a space, a column named ``order`` (a reserved word), string primary
keys, per-dialect timestamp types (``timestamptz`` on PostgreSQL, ``DATETIME(6)`` on MySQL, ISO text with a
``T`` separator on SQLite) and transliterated Russian names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

meta = sa.MetaData()


def _ts_type() -> sa.types.TypeEngine[Any]:
    return (
        sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb").with_variant(sa.String(40), "sqlite")
    )


tovary = sa.Table(
    "tovary", meta,
    sa.Column("artikul", sa.String(30), primary_key=True),
    sa.Column("nazvanie", sa.String(200), nullable=False),
    sa.Column("izmeneno", _ts_type(), nullable=False),
)
varianty = sa.Table(
    "varianty", meta,
    sa.Column("kod", sa.String(30), primary_key=True),
    sa.Column("artikul", sa.String(30), nullable=False),
    sa.Column("nazvanie", sa.String(200), nullable=False),
    sa.Column("cena", sa.Numeric(10, 2), nullable=False),
    sa.Column("izmeneno", _ts_type(), nullable=False),
)
zakazy = sa.Table(
    "zakazy", meta,
    sa.Column("nomer", sa.String(20), primary_key=True),
    sa.Column("sostoyanie", sa.String(20), nullable=False),
    sa.Column("summa", sa.Numeric(12, 2), nullable=False),
    sa.Column("pochta", sa.String(100)),
    sa.Column("izmeneno", _ts_type(), nullable=False),
    sa.Index("ix_zakazy_sync", "izmeneno", "nomer"),
)
pozicii = sa.Table(
    "Order Lines", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order", sa.String(20), nullable=False, index=True),
    sa.Column("variant", sa.String(30), nullable=False),
    sa.Column("cena", sa.Numeric(10, 2), nullable=False),
    sa.Column("kolvo", sa.Integer, nullable=False),
    sa.Column("izmeneno", _ts_type(), nullable=False),
)

CONFIG: dict[str, Any] = {
    "sync": {"endpoint": "shop", "default_currency": "RUB"},
    "streams": {
        "products": {"table": "tovary", "primary_key": "artikul", "updated_at": "izmeneno",
                     "columns": {"external_id": "artikul", "name": "nazvanie"}},
        "skus": {"table": "varianty", "primary_key": "kod", "updated_at": "izmeneno",
                 "columns": {"external_id": "kod", "product_external_id": "artikul", "name": "nazvanie", "price": "cena"}},
        "orders": {
            "table": "zakazy", "primary_key": "nomer", "updated_at": "izmeneno",
            "columns": {"external_id": "nomer", "status": "sostoyanie", "total_price": "summa"},
            "matching": {"mode": "email", "columns": {"email": "pochta"}},
            "status_map": {"novyj": "new", "oplachen": "paid", "otmenen": "canceled"},
            "lines": {"table": "Order Lines", "primary_key": "id", "updated_at": "izmeneno", "parent_key": "order",
                      "columns": {"external_id": "id", "product": "variant", "final_price_per_item": "cena",
                                  "count": "kolvo"},
                      "default_status": "new"},
        },
    },
}


def ts_value(engine: sa.Engine, moment: datetime) -> Any:
    if engine.dialect.name == "sqlite":
        return moment.replace(tzinfo=None).isoformat(timespec="microseconds")  # 'T' separator text
    if engine.dialect.name in ("mysql", "mariadb"):
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def create(engine: sa.Engine) -> None:
    meta.drop_all(engine)
    meta.create_all(engine)


def fill(engine: sa.Engine, n_orders: int, base: datetime, tie_every: int = 1) -> dict[str, Any]:
    """Orders ``Z-000001``... with 2 lines each; ``tie_every`` orders share one timestamp."""
    statuses = ["novyj", "oplachen", "otmenen"]
    n_var = 12
    with engine.begin() as conn:
        conn.execute(
            tovary.insert(),
            [{"artikul": f"T{i}", "nazvanie": f"Tovar {i}", "izmeneno": ts_value(engine, base)} for i in range(4)],
        )
        conn.execute(varianty.insert(), [{"kod": f"V{i}", "artikul": f"T{i % 4}", "nazvanie": f"Variant {i}",
                                          "cena": f"{10 + i}.99", "izmeneno": ts_value(engine, base)} for i in range(n_var)])
        orders, lines = [], []
        for i in range(1, n_orders + 1):
            ts = ts_value(engine, base + timedelta(seconds=(i // tie_every)))
            v1, v2 = i % n_var, (i * 7) % n_var
            total = (10 + v1 + 0.99) * 1 + (10 + v2 + 0.99) * 2
            orders.append({"nomer": f"Z-{i:06d}", "sostoyanie": statuses[i % 3], "summa": f"{total:.2f}",
                           "pochta": f"buyer{i}@example.org", "izmeneno": ts})
            lines += [
                {
                    "id": 2 * i - 1,
                    "order": f"Z-{i:06d}",
                    "variant": f"V{v1}",
                    "cena": f"{10 + v1}.99",
                    "kolvo": 1,
                    "izmeneno": ts,
                },
                {"id": 2 * i, "order": f"Z-{i:06d}", "variant": f"V{v2}", "cena": f"{10 + v2}.99", "kolvo": 2, "izmeneno": ts},
            ]
        for start in range(0, len(orders), 20_000):
            conn.execute(zakazy.insert(), orders[start:start + 20_000])
        for start in range(0, len(lines), 20_000):
            conn.execute(pozicii.insert(), lines[start:start + 20_000])
    return {"variants": n_var}


def config(shop_url: str, state_url: str, api_url: str, token: str, **source: Any) -> dict[str, Any]:
    import copy

    cfg = copy.deepcopy(CONFIG)
    cfg["source"] = {"url": shop_url, "safety_margin_seconds": 0, **source}
    cfg["state"] = {"url": state_url}
    cfg["altcraft"] = {"api_url": api_url, "token": token}
    return cfg
