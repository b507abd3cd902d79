"""A row can never stop a stream: each bad value is quarantined on its own record with its reason, the
rest of the stream is delivered, and no later run meets an internal error."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from altcraft_sync.config import load_config
from connectors.state import StateStore
from tests.helpers import db_now, mapped_source, run_all
from tests.hostile.conftest import Hostile


def execute(h: Hostile, *statements: str, **params: Any) -> None:
    engine = sa.create_engine(h.shop_url)
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql), {"now": db_now(engine), **params})
    engine.dispose()


def reasons(h: Hostile, entity: str) -> dict[str, list[dict[str, Any]]]:
    rows = StateStore(load_config(h.config).state).quarantine_rows(entity=entity)
    return {r["external_id"]: r["reasons"] for r in rows}


def delivered_all_but(h: Hostile, stream: str, bad: set[str]) -> None:
    """Every valid record of ``stream`` reached Altcraft; the bad ones did not."""
    expected = mapped_source(h.config)[stream]
    held = getattr(h.emulator.store, stream)
    assert not bad & set(held) and not bad & set(expected)
    assert dict(held) == expected


def set_source(h: Hostile, **source: Any) -> None:
    raw = yaml.safe_load(h.config.read_text())
    raw["source"].update(source)
    h.config.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_dates_outside_what_the_time_zone_can_represent(hostile: Hostile):
    set_source(hostile, timezone="Europe/Berlin")
    execute(hostile, "UPDATE orders SET created_at = '0001-01-01 00:00:00', updated_at = :now WHERE id = 5",
            "UPDATE orders SET created_at = '0001-01-01 00:30:00+02:00', updated_at = :now WHERE id = 6")
    run_all(hostile.config)
    found = reasons(hostile, "order")
    for ext in ("5", "6"):
        assert any(r["field"] == "create_time" and r["check"].startswith("str_matches") for r in found[ext]), found[ext]
    assert found["6"][0]["value"].startswith("outside years 0001-9999 UTC")
    delivered_all_but(hostile, "orders", {"5", "6"})
    run_all(hostile.config, run_id="later")  # no OverflowError, ever


@pytest.mark.parametrize("case", ["NUL byte", "control character", "1,000,000 characters", "price 1e300"])
def test_a_bad_product_value_is_quarantined_alone(hostile: Hostile, case: str):
    sql, field, check = {
        "NUL byte": ("UPDATE products SET title = 'Kettle' || char(0) || 'x', updated_at = :now WHERE id = 2",
                     "name", "no NUL or control characters"),
        "control character": ("UPDATE products SET brand = 'Acme' || char(27) || '[31m', updated_at = :now WHERE id = 2",
                              "manufacturer_name", "no NUL or control characters"),
        "1,000,000 characters": ("UPDATE products SET title = :long, updated_at = :now WHERE id = 2",
                                 "name", "at most 1000 characters (sync.max_name_length)"),
        "price 1e300": ("UPDATE products SET base_price = 1e300, updated_at = :now WHERE id = 2",
                        "price", "15 digits before the point"),
    }[case]
    execute(hostile, sql, long="n" * 1_000_000)
    article = sa.create_engine(hostile.shop_url).connect().execute(sa.text("SELECT article FROM products WHERE id = 2")).scalar()
    run_all(hostile.config)
    found = reasons(hostile, "product")[article]
    assert any(r["field"] == field and check in r["check"] for r in found), found
    delivered_all_but(hostile, "products", {article})
    run_all(hostile.config, run_id="later")


def test_an_email_with_a_zero_width_space_is_quarantined(hostile: Hostile):
    execute(hostile, "UPDATE customers SET email = 'zw' || char(8203) || 'x@example.com', updated_at = :now "
                     "WHERE id = (SELECT customer_id FROM orders WHERE id = 9)",
            "UPDATE orders SET updated_at = :now WHERE id = 9")
    run_all(hostile.config)
    found = reasons(hostile, "order")["9"]
    assert any(r["check"] in ("email is an address", "str_matches") or "email" in r["check"] for r in found), found
    assert "9" not in hostile.emulator.store.orders
    run_all(hostile.config, run_id="later")


def test_null_and_repeated_keys_are_quarantined_and_never_crash_a_later_run(hostile: Hostile):
    raw = yaml.safe_load(hostile.config.read_text())
    query = raw["streams"]["orders"]["query"]
    rest = query.split(" ", 2)[2]  # after "SELECT o.id,"
    raw["streams"]["orders"]["query"] = (f"{query} UNION ALL SELECT NULL AS id, {rest} WHERE o.id IN (1, 2)"
                                         f" UNION ALL SELECT o.id, {rest} WHERE o.id = 3")
    hostile.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_all(hostile.config)
    found = reasons(hostile, "order")
    null_rows = [ext for ext, rs in found.items() if rs[0]["check"] == "the key is not NULL"]
    assert len(null_rows) == 2  # two NULL keys, two records: never merged into one "None"
    assert found["3"][0]["value"] == "2 rows with key 3"
    state = StateStore(load_config(hostile.config).state)
    keys = {r["source_pk"] for r in state.quarantine_rows(entity="order")}
    assert not any(k and "." in k for k in keys), keys  # "3", never "3.0"
    assert "3" not in hostile.emulator.store.orders and "4" in hostile.emulator.store.orders

    raw["streams"]["orders"]["query"] = query  # the query fixed
    hostile.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_all(hostile.config, run_id="fixed")
    assert "3" in hostile.emulator.store.orders


def test_state_left_by_an_older_version_is_read_defensively(hostile: Hostile):
    """Keys an older version stored as floats ("7.0"), or a bad run as "None", never stop a run."""
    run_all(hostile.config)
    state = StateStore(load_config(hostile.config).state)
    with state.engine.begin() as conn:
        two = conn.execute(sa.text("SELECT external_id FROM ledger WHERE entity = 'order' AND status = 'delivered' "
                                   "ORDER BY external_id LIMIT 2")).scalars().all()
        conn.execute(sa.text("UPDATE ledger SET source_pk = source_pk || '.0', status = 'failed' "
                             "WHERE entity = 'order' AND external_id IN (:a, :b)"), {"a": two[0], "b": two[1]})
        conn.execute(sa.text("UPDATE quarantine SET source_pk = 'None' WHERE entity = 'order'"))
        conn.execute(sa.text("INSERT INTO ledger (entity, external_id, source_pk, fingerprint, status, attempts, "
                             "permanent, updated_at) VALUES ('order', 'ghost', 'nan', NULL, 'failed', 1, 0, :now)"),
                     {"now": db_now(state.engine)})
    for ext in two:
        del hostile.emulator.store.orders[ext]
    stats = run_all(hostile.config, run_id="after-old-state")
    assert stats["orders"].retried == 2 and stats["orders"].delivered == 2
    expected = mapped_source(hostile.config)["orders"]
    assert {ext: hostile.emulator.store.orders[ext] for ext in two} == {ext: expected[ext] for ext in two}
