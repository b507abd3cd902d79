"""The demo shop's people: customers' personal data and consent, phone-only customers, and guest orders
(buyers without an account), for the customers and guests streams to show.

Everything here is a function of the row's id, never a draw from the shop generator's random stream, so a
shop built with or without ``people`` holds the same catalogue, orders and lines otherwise.

With ``people`` (:func:`add_people`):

- every 25th customer has no e-mail, only a phone (matched by phone);
- every 10th order (ids ending in 3) is a guest order: no customer, the buyer's e-mail on the order; 40
  guest addresses repeat, so guests buy more than once;
- every 30th order (ids ending in 23 of each 30) is a guest order with a phone only;
- order 13, if it exists, is a guest order under registered customer 2's e-mail (the same person: one
  profile, the customer's).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

FIRST = ("Anna", "Boris", "Vera", "Gleb", "Daria", "Egor", "Zoya", "Ivan", "Kira", "Lev")
LAST = ("Ivanova", "Petrov", "Sidorova", "Smirnov", "Kuznetsova", "Popov", "Volkova", "Sokolov")
CITIES = ("Moscow", "Saint Petersburg", "Kazan", "Almaty", None)

_customers = sa.table("customers", sa.column("id"), sa.column("email"))
_orders = sa.table("orders", sa.column("id"), sa.column("customer_id"), sa.column("guest_email"),
                   sa.column("guest_phone"), sa.column("guest_name"))


def person_columns(ids: list[int], updated: list[datetime]) -> dict[str, list[Any]]:
    """Names, birthday, gender, city, registration time and consent of customers ``ids``: every third has
    agreed to the newsletter, every fifth to SMS; a birthday or city is missing now and then."""
    return {
        "first_name": [FIRST[i % len(FIRST)] for i in ids],
        "last_name": [LAST[i % len(LAST)] for i in ids],
        "birthday": [None if i % 7 == 0 else date(1960 + i % 45, 1 + i % 12, 1 + i % 28) for i in ids],
        "gender": ["f" if i % 2 else "m" for i in ids],
        "city": [CITIES[i % len(CITIES)] for i in ids],
        "newsletter": [i % 3 == 0 for i in ids],
        "sms_consent": [i % 5 == 0 for i in ids],
        "is_deleted": [False] * len(ids),
        "created_at": [u - timedelta(days=30 + i % 300) for i, u in zip(ids, updated)],
    }


def add_people(conn: sa.Connection, size: Any) -> None:
    """Phone-only customers and guest orders (see the module docstring)."""
    conn.execute(_customers.update().where(_customers.c.id % 25 == 0).values(email=None))
    ids = conn.execute(sa.select(_orders.c.id).where(_orders.c.id % 10 == 3)).scalars().all()
    rows = [{"oid": i, "email": None if i % 30 == 23 else f"guest{i // 10 % 40}@example.net",
             "phone": f"+7911{1_000_000 + i // 30 % 20}" if i % 30 == 23 else None,
             "name": None if i % 30 == 23 else f"Guest {i // 10 % 40}"} for i in ids]
    email = conn.execute(sa.select(_customers.c.email).where(_customers.c.id == 2)).scalar()
    for row in rows:
        if row["oid"] == 13 and email:
            row.update(email=email.upper(), phone=None, name=None)
    if rows:
        conn.execute(_orders.update().where(_orders.c.id == sa.bindparam("oid")).values(
            customer_id=None, guest_email=sa.bindparam("email"), guest_phone=sa.bindparam("phone"),
            guest_name=sa.bindparam("name")), rows)
