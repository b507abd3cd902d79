"""The demo shop is the same shop from one build to the next: tests pick records from it by position."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from sandbox import demo_shop as D


def _rows(url: str, table: sa.Table, skip: tuple[str, ...] = ()) -> list[tuple]:
    cols = [c for c in table.c if c.name not in skip]
    with sa.create_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(table.c.id))]


def test_two_builds_at_different_times_differ_only_in_their_times(tmp_path) -> None:
    """Which customer placed an order and which SKUs its lines hold must not follow the clock: a build a
    day and 17 s later gave order 1 another buyer, and a test that took two orders of different buyers got
    two of one (fixed in ``_times``). The same clock gives the same shop, times included."""
    urls = [f"sqlite:///{tmp_path}/shop{i}.db" for i in range(3)]
    first = datetime(2026, 11, 2, 10, 0, 0)
    for url, now in zip(urls, (first, first + timedelta(days=1, seconds=17), first)):
        D.generate(sa.create_engine(url), 300, now=now, people=True)
    times = ("created_at", "updated_at")
    for table in (D.orders, D.order_lines, D.customers, D.skus):
        assert _rows(urls[0], table, times) == _rows(urls[1], table, times), table.name
        assert _rows(urls[0], table) == _rows(urls[2], table), table.name
    assert _rows(urls[0], D.orders) != _rows(urls[1], D.orders)  # the times do follow the clock
