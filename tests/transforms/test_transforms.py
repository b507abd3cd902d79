"""Transforms: pure functions from canonical source frames to Altcraft records and a quarantine.

Frames here look exactly like what connectors.shop_db returns: ``_pk``, ``_ts``, the Altcraft field names
the mapping labels columns with, ``cf.<id>`` for custom fields and ``m.<field>`` for matching fields."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altcraft_sync.config import parse_config
from engine.roots import definitions_for, roots_body
from transforms import money as M
from transforms import values as V
from transforms.catalog import map_catalog, map_categories
from transforms.category_tree import parents_first, under_waiting
from transforms.orders import map_orders
from transforms.spec import mapping_spec

SEED_DEFS = [
    {"external_id": "order_field_id_123", "name": "Дополнительное поле заказа", "entity_type": "order",
     "required": False, "value_type": "unicode", "default_value": "значение тестового поля"},
    {"external_id": "line_field_id_123", "name": "Дополнительное поле позиции заказа", "entity_type": "line_order",
     "required": False, "value_type": "unicode", "default_value": "значение тестового поля"},
    {"external_id": "test_field_string", "name": "Строковое поле", "entity_type": "sku", "required": False,
     "value_type": "unicode", "default_value": "Значение тестового поля sku по умолчанию"},
    {"external_id": "weight", "name": "Weight", "entity_type": "order", "required": False, "value_type": "int",
     "default_value": 0},
]
ORDER_COLS = ["external_id", "endpoint", "tags", "status", "delivery_cost", "total_price", "currency", "create_time", "region"]
LINE_COLS = ["external_id", "status", "product", "base_price_per_item", "min_price_per_item", "final_price_per_item", "count"]
SKU_COLS = ["name", "external_id", "price", "old_price", "currency", "description", "product_external_id", "categories",
            "tags", "manufacturer_name", "url", "pictures", "count", "expiration_time", "is_available", "delivery",
            "barcode", "manufacturer_warranty"]
REGION_COLS = ["external_id", "price", "old_price", "currency", "count", "is_available", "delivery"]


def make_config(**over):
    cfg = {
        "sync": {"money_scale": 2},
        "custom_fields": SEED_DEFS,
        "custom_line_statuses": [{"external_id": "status_id_123", "name": "Доставлен в пункт выдачи", "type": "in_process"}],
        "streams": {
            "orders": {
                "table": "orders",
                "primary_key": "id",
                "updated_at": "u",
                "columns": {c: c for c in ORDER_COLS},
                "custom_fields": {"order_field_id_123": "x", "weight": "w"},
                "matching": {"mode": "email", "columns": {"email": "email"}},
                "lines": {
                    "table": "lines",
                    "primary_key": "id",
                    "updated_at": "u",
                    "parent_key": "order_id",
                    "columns": {c: c for c in LINE_COLS},
                    "custom_fields": {"line_field_id_123": "y"},
                },
            },
            "skus": {
                "table": "skus",
                "primary_key": "id",
                "updated_at": "u",
                "columns": {c: c for c in SKU_COLS},
                "custom_fields": {"test_field_string": "z"},
                "regional": {
                    "table": "r",
                    "primary_key": "id",
                    "updated_at": "u",
                    "parent_key": "sku_id",
                    "columns": {c: c for c in REGION_COLS},
                    "custom_fields": {"test_field_string": "z"},
                },
            },
            "categories": {
                "table": "c",
                "primary_key": "id",
                "updated_at": "u",
                "columns": {"external_id": "id", "name": "name", "parent_external_id": "parent"},
            },
        },
    }
    for key, value in over.items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.__setitem__(key, value)
    return parse_config(cfg)


def orders_frame(rows):
    df = pd.DataFrame(rows)
    df.insert(0, "_pk", range(1, len(rows) + 1))
    df.insert(1, "_ts", "2022-01-02 15:04:05")
    return df


def lines_frame(rows):
    df = pd.DataFrame(rows)
    df.insert(0, "_pk", range(1, len(rows) + 1))
    df.insert(1, "_ts", "2022-01-02 15:04:05")
    return df


def seed_order(**over):
    row = {"external_id": 1234000, "endpoint": "website", "tags": '["one", "two"]', "status": "delivered",
           "delivery_cost": 100.0, "total_price": 1000.0, "currency": "USD",
           "create_time": "2022-01-02 15:04:05.141", "region": "region_YnCrJj8Y1", "cf.order_field_id_123": "data",
           "cf.weight": None, "m.email": "johndoe@example.com"}
    row.update(over)
    return row


def seed_line(parent=1, **over):
    row = {"_parent": parent, "external_id": "line_01", "status": "status_id_123", "product": "iphone_test_1",
           "base_price_per_item": 900, "min_price_per_item": 900, "final_price_per_item": 900, "count": 1,
           "cf.line_field_id_123": "data"}
    row.update(over)
    return row


def test_seed_order_example_reproduced_field_for_field():
    out = map_orders(orders_frame([seed_order()]), lines_frame([seed_line()]), mapping_spec(make_config(), "orders"))
    assert out.quarantine.empty
    assert out.records() == [{
        "external_id": "1234000", "matching": "email", "email": "johndoe@example.com", "endpoint": "website",
        "tags": ["one", "two"], "status": "delivered", "delivery_cost": "100", "total_price": "1000", "currency": "USD",
        "create_time": "2022-01-02T15:04:05.141Z", "custom_fields": {"order_field_id_123": "data"},
        "region": "region_YnCrJj8Y1",
        "lines": [{"external_id": "line_01", "status": "status_id_123", "product": "iphone_test_1",
                   "base_price_per_item": "900", "min_price_per_item": "900", "final_price_per_item": "900",
                   "count": 1, "custom_fields": {"line_field_id_123": "data"}}],
    }]
    defs = roots_body(definitions_for(make_config(), "orders", ["orders"]))
    assert defs["custom_fields"][:2] == SEED_DEFS[:2]
    assert defs["custom_line_statuses"] == [
        {"external_id": "status_id_123", "name": "Доставлен в пункт выдачи", "type": "in_process"}
    ]


def test_seed_sku_example_reproduced_field_for_field():
    sku = pd.DataFrame([{
        "_pk": 1, "_ts": "2024-01-01 00:00:00", "name": "Apple iPhone 13 256GB", "external_id": "sku_test_1",
        "price": Decimal("1000"), "old_price": Decimal("1100.00"), "currency": "USD", "description": "Описание SKU",
        "product_external_id": "iphone_test_1", "categories": '["test_category_2"]', "tags": "phone, Apple",
        "manufacturer_name": "Apple", "url": "https://example.com", "pictures": '["https://example.com", "https://example.com"]',
        "count": 10, "expiration_time": 730, "is_available": 1, "delivery": "true",
        "barcode": "[23346346, 23546362, 76834566]", "manufacturer_warranty": True, "cf.test_field_string": "Тестовое поле",
    }])
    region = pd.DataFrame([{"_pk": 9, "_ts": "2024-01-01 00:00:00", "_parent": 1, "external_id": "region_YnCrJj8Y1",
                            "price": 75000.0, "old_price": 80000, "currency": "RUB", "count": 8, "is_available": True,
                            "delivery": True, "cf.test_field_string": "Тестовое поле"}])
    out = map_catalog(sku, region, mapping_spec(make_config(), "skus"))
    assert out.quarantine.empty
    assert out.records() == [{
        "name": "Apple iPhone 13 256GB", "external_id": "sku_test_1", "price": "1000", "old_price": "1100",
        "currency": "USD", "description": "Описание SKU", "product_external_id": "iphone_test_1",
        "categories": ["test_category_2"], "tags": ["phone", "Apple"], "manufacturer_name": "Apple",
        "url": "https://example.com", "pictures": ["https://example.com", "https://example.com"], "count": 10,
        "expiration_time": "730", "is_available": True, "delivery": True, "barcode": [23346346, 23546362, 76834566],
        "manufacturer_warranty": True, "custom_fields": {"test_field_string": "Тестовое поле"},
        "regional_data": [{"external_id": "region_YnCrJj8Y1", "price": "75000", "old_price": "80000", "currency": "RUB",
                           "custom_fields": {"test_field_string": "Тестовое поле"}, "count": 8, "is_available": True,
                           "delivery": True}],
    }]


@pytest.mark.parametrize("order_over, line_over, check, field", [
    ({"status": "shipped"}, {}, "isin", "status"),
    ({"total_price": -5.0}, {}, "non-negative decimal", "total_price"),
    ({"total_price": 1000.001}, {}, "non-negative decimal", "total_price"),
    ({"currency": None}, {}, "not_nullable", "currency"),
    ({"endpoint": ""}, {}, "str_length", "endpoint"),
    ({"create_time": "yesterday"}, {}, "str_matches", "create_time"),
    ({"m.email": None}, {}, "matching 'email' needs email", None),
    ({"m.email": "not-an-address"}, {}, "email is an address", None),
    ({"total_price": 999.0}, {}, "total_price = sum", None),
    ({"region": ""}, {}, "str_length", "region"),
    ({}, {"count": 0}, "positive integer", "lines.count"),
    ({}, {"count": 1.5}, "whole number (Altcraft's line count is an integer)", "lines.count"),  # issue 26
    ({}, {"count": None}, "not_nullable", "lines.count"),
    ({}, {"status": "lost"}, "isin", "lines.status"),
    ({}, {"product": ""}, "str_length", "lines.product"),
    ({}, {"final_price_per_item": "9x"}, "non-negative decimal", "lines.final_price_per_item"),
    ({"cf.weight": "heavy"}, {}, "int custom field", "cf.weight"),
    ({"cf.weight": 2.5}, {}, "int custom field", "cf.weight"),
])
def test_each_check_fails_bad_rows_and_passes_good_ones(order_over, line_over, check, field):
    good = seed_order(external_id=1)
    bad = seed_order(external_id=2, **order_over)
    lines = lines_frame([seed_line(1), seed_line(2, **line_over)])
    out = map_orders(orders_frame([good, bad]), lines, mapping_spec(make_config(), "orders"))
    assert [r["external_id"] for r in out.records()] == ["1"]
    q = out.quarantine
    assert set(q["external_id"]) == {"2"}
    assert any(check in c and (field is None or f == field) for c, f in zip(q["check"], q["field"])), q.to_string()


def test_a_line_id_repeated_within_an_order_quarantines_that_order_only():
    lines = [seed_line(1, external_id="a"), seed_line(1, external_id="b"), seed_line(2, external_id="a"),
             seed_line(3, external_id="x"), seed_line(3, external_id="x")]
    orders = [seed_order(external_id=i, total_price=[0, 1900.0, 1000.0, 1900.0][i]) for i in (1, 2, 3)]
    out = map_orders(orders_frame(orders), lines_frame(lines), mapping_spec(make_config(), "orders"))
    assert [r["external_id"] for r in out.records()] == ["1", "2"]  # "a" in two orders is fine
    assert set(out.quarantine["external_id"]) == {"3"}
    assert set(out.quarantine["check"]) == {"line external_id unique within its order"}


def seed_sku(pk, **over):
    row = {"_pk": pk, "_ts": "2024-01-01 00:00:00", "name": "Apple iPhone 13 256GB", "external_id": f"sku_{pk}",
           "price": Decimal("1000"), "old_price": Decimal("1100.00"), "currency": "USD", "description": "Описание SKU",
           "product_external_id": "iphone_test_1", "categories": '["test_category_2"]', "tags": "phone, Apple",
           "manufacturer_name": "Apple", "url": "https://example.com", "pictures": "[]", "count": 10,
           "expiration_time": 730, "is_available": 1, "delivery": "true", "barcode": "[1]",
           "manufacturer_warranty": True, "cf.test_field_string": "x"}
    row.update(over)
    return row


def seed_region(pk, parent, **over):
    row = {"_pk": pk, "_ts": "2024-01-01 00:00:00", "_parent": parent, "external_id": f"region_{pk}", "price": 750.0,
           "old_price": 800, "currency": "RUB", "count": 8, "is_available": True, "delivery": True,
           "cf.test_field_string": "x"}
    row.update(over)
    return row


@pytest.mark.parametrize("sku_over, region_over, check, field", [
    ({"name": ""}, {}, "str_length", "name"),
    ({"price": Decimal("-5")}, {}, "non-negative decimal", "price"),
    ({"old_price": "abc"}, {}, "non-negative decimal", "old_price"),
    ({"currency": ""}, {}, "str_length", "currency"),
    ({"description": "x" * 1001}, {}, "str_length", "description"),
    ({"expiration_time": "7 days"}, {}, "str_matches", "expiration_time"),
    ({"count": 2.5}, {}, "integer", "count"),  # negative stock is valid (issue 26): api.md has no sign rule
    ({"is_available": "maybe"}, {}, "boolean", "is_available"),
    ({"product_external_id": None}, {}, "not_nullable", "product_external_id"),
    ({}, {"count": "many"}, "integer", "regional_data.count"),
    ({}, {"price": "1.234"}, "non-negative decimal", "regional_data.price"),
    ({}, {"external_id": "region_2"}, "one entry per region", "regional_data.*"),
])
def test_each_catalog_check_fails_bad_rows_and_passes_good_ones(sku_over, region_over, check, field):
    skus = pd.DataFrame([seed_sku(1), seed_sku(2, **sku_over)])
    # the good SKU has one region; the bad one two, the second of them overridden
    regions = pd.DataFrame([seed_region(1, 1), seed_region(2, 2), seed_region(3, 2, **region_over)])
    out = map_catalog(skus, regions, mapping_spec(make_config(), "skus"))
    assert [r["external_id"] for r in out.records()] == ["sku_1"]
    q = out.quarantine
    assert set(q["external_id"]) == {"sku_2"}
    assert any(check in c and f == field for c, f in zip(q["check"], q["field"])), q.to_string()


@pytest.mark.parametrize("first", ["products", "skus"])
def test_check_labels_do_not_depend_on_which_schema_was_built_first(first):
    """pandera loses a model check's ``name`` after its first schema; a run maps products, then SKUs (a
    subclass), and the SKUs' reasons must read the same either way."""
    from transforms import contract as C

    models = {"products": C.CatalogContract, "skus": C.SkuContract}
    frame = pd.DataFrame({"external_id": ["a"], "name": ["n"], "count": pd.Series([2.5], dtype=object),
                          "expiration_time": ["soon"], "product_external_id": ["p"]}).astype(
        {"external_id": "str", "name": "str", "expiration_time": "str", "product_external_id": "str"})
    for stream in (first, "skus" if first == "products" else "products", first):
        labels = set(C.failures(frame, models[stream].to_schema())["check"])
        assert labels == {"integer", "str_matches('^[0-9]+$')"}, (stream, labels)


def test_duplicate_external_ids_are_both_quarantined():
    out = map_orders(
        orders_frame([seed_order(), seed_order()]),
        lines_frame([seed_line(1), seed_line(2)]),
        mapping_spec(make_config(), "orders"),
    )
    assert out.payloads == [] and set(out.quarantine["check"]) == {"field_uniqueness"}


def test_order_without_lines_is_quarantined():
    out = map_orders(orders_frame([seed_order()]), lines_frame([seed_line(99)]), mapping_spec(make_config(), "orders"))
    assert out.payloads == [] and "greater_than(0)" in out.quarantine["check"].tolist()


def test_total_mismatch_can_warn_instead():
    out = map_orders(orders_frame([seed_order(total_price=999.0)]), lines_frame([seed_line()]),
                     mapping_spec(make_config(sync={"total_mismatch": "warn"}), "orders"))
    assert len(out.payloads) == 1 and "differs" in out.warnings[0]


def test_soft_deleted_rows_become_deletions():
    df = orders_frame([seed_order(external_id=1), seed_order(external_id=2)])
    df["_deleted"] = [0, 1]
    out = map_orders(df, lines_frame([seed_line(1), seed_line(2)]), mapping_spec(make_config(), "orders"))
    assert out.deletions == [("2", 2)] and [r["external_id"] for r in out.records()] == ["1"]


@pytest.mark.parametrize("raw, expected", [
    (19.99, "19.99"), (Decimal("19.99"), "19.99"), ("19.990", "19.99"), (19.9, "19.9"), (900.0, "900"),
    (Decimal("900.00"), "900"), (0.1 + 0.2, "0.3"), (1999, "1999"), (99_999_999_999.99, "99999999999.99"),
    (Decimal("12345678901234567.89"), "12345678901234567.89"), (0, "0"),
])
def test_money_is_exact(raw, expected):
    for series in (pd.Series([raw]), pd.Series([raw], dtype=object)):
        strings, _ = M.money(series, 2)
        assert V.pylist(strings) == [expected]


def test_money_with_too_many_places_is_passed_on_unrounded_for_the_contract():
    assert V.pylist(M.money(pd.Series([19.999]), 2)[0]) == ["19.999"]
    assert V.pylist(M.money(pd.Series([Decimal("0.005")], dtype=object), 2)[0]) == ["0.005"]
    strings, minor = M.money(pd.Series([1.5, None, 2.25]), 2)
    assert V.pylist(strings) == ["1.5", None, "2.25"] and minor.tolist() == [150, 0, 225]


@pytest.mark.parametrize("scale", range(7))
def test_vectorised_minor_units_match_the_scalar_formatting(scale):
    import numpy as np

    minor = np.array([0, 1, -1, 5, 10, 99, 100, 12_345_678, -12_345_678, 10**scale, -(10**scale) - 3,
                      7 * 10 ** (scale + 1), 2**52], dtype=np.int64)
    assert M.minor_strings(minor, scale).tolist() == [M.minor_to_str(int(m), scale) for m in minor]


def test_money_float_column_of_distinct_prices_keeps_every_value():
    # mostly distinct prices go through the vectorised path: each one exact, NaN stays missing, a float
    # past 2**53 minor units is never taken as a whole number of cents
    col = pd.Series([0.05, 10.5, 1234567.89, float("nan"), -3.1, 1e17])
    strings, minor = M.money(col, 2)
    assert V.pylist(strings) == ["0.05", "10.5", "1234567.89", None, "-3.1", "100000000000000000"]
    assert minor.tolist() == [5, 1050, 123456789, 0, -310, 0]


def test_money_from_decimal_text_and_decimals_beyond_int64():
    # PostgreSQL/MySQL prices arrive as the database's decimal text
    text = pd.Series(["19.99", "900.00", "19.999", None, "0.10", "-5", "abc", "19.99"], dtype="str")
    strings, minor = M.money(text, 2)
    assert V.pylist(strings) == ["19.99", "900", "19.999", None, "0.1", "-5", "abc", "19.99"]
    assert minor.tolist() == [1999, 90000, 0, 0, 10, -500, 0, 1999]
    # too big for int64 minor units: passed on in full for the contract, never an overflow
    huge = pd.Series([Decimal("123456789012345678901.5"), Decimal("1.25")], dtype=object)
    strings, minor = M.money(huge, 2)
    assert V.pylist(strings) == ["123456789012345678901.5", "1.25"] and minor.tolist() == [0, 125]


def test_naive_and_aware_times():
    msk = ZoneInfo("Europe/Moscow")
    naive = pd.Series([datetime(2024, 3, 1, 12, 0, 0, 123456)])
    assert V.pylist(V.rfc3339(naive, msk)) == ["2024-03-01T09:00:00.123Z"]
    aware = pd.Series([datetime(2024, 3, 1, 12, 0, tzinfo=UTC)])
    assert V.pylist(V.rfc3339(aware, msk)) == ["2024-03-01T12:00:00.000Z"]
    text = pd.Series(["2024-03-01 12:00:00", "2024-03-01T12:00:00.5", None])
    assert V.pylist(V.rfc3339(text, msk)) == ["2024-03-01T09:00:00.000Z", "2024-03-01T09:00:00.500Z", None]
    mixed = pd.Series(["2024-03-01T12:00:00+05:00", "2024-03-01 12:00:00"], dtype=object)
    assert V.pylist(V.rfc3339(mixed, msk)) == ["2024-03-01T07:00:00.000Z", "2024-03-01T09:00:00.000Z"]
    assert V.pylist(V.rfc3339(pd.Series(["not a time"]), msk)) == ["not a time"]  # left for the contract to reject
    utc = pd.Series(["2024-03-01 12:00:00.5", None, "1969-12-31T23:59:59.9995"], dtype="str")
    assert V.pylist(V.rfc3339(utc, ZoneInfo("UTC"))) == ["2024-03-01T12:00:00.500Z", None, "1969-12-31T23:59:59.999Z"]


def test_empty_frames():
    cfg = make_config()
    empty_o = orders_frame([seed_order()]).iloc[0:0]
    empty_l = lines_frame([seed_line()]).iloc[0:0]
    out = map_orders(empty_o, empty_l, mapping_spec(cfg, "orders"))
    assert out.payloads == [] and out.quarantine.empty and out.deletions == []
    assert (
        map_categories(
            pd.DataFrame({"_pk": [], "_ts": [], "external_id": [], "name": [], "parent_external_id": []}),
            mapping_spec(cfg, "categories"),
        ).payloads
        == []
    )


def test_categories_parents_first_and_cycles_quarantined():
    cats = pd.DataFrame({"_pk": [1, 2, 3, 4, 5, 6], "_ts": "t",
                         "external_id": [3, 2, 1, 10, 11, 12], "name": ["c", "b", "a", "x", "y", "z"],
                         "parent_external_id": [2, 1, None, 11, 10, 99]})
    out = map_categories(cats, mapping_spec(make_config(), "categories"))
    assert [r["external_id"] for r in out.records()] == ["1", "12", "2", "3"]
    assert set(out.quarantine["external_id"]) == {"10", "11"}


def test_categories_of_several_pages_in_tree_order_with_their_orphans():
    """A request may join categories mapped on different pages (a cursor page and those waiting in the
    ledger): parents go first, and one whose parent is neither held nor earlier is an orphan."""
    ids = ["6", "1", "4", "7", "9"]
    parents = ["4", None, "3", "6", "8"]
    order, orphans = parents_first(ids, parents, held={"3"})
    assert [ids[i] for i in order].index("4") < [ids[i] for i in order].index("6") < [ids[i] for i in order].index("7")
    assert orphans == {4: "8"}  # '4' names '3', which Altcraft holds; '9' names '8', which nobody sends
    assert parents_first(ids, parents, held=set())[1] == {2: "3", 4: "8"}
    # '4' waits: its child '6' and grandchild '7' wait with it, naming their own parent
    assert under_waiting(order, ids, parents, {2}) == {0: "4", 3: "6"}
    # a cycle across pages ('a' <-> 'b') comes last; its first member is an orphan, the other waits under it
    cycle, up = ["a", "b", "c"], ["b", "a", None]
    order, orphans = parents_first(cycle, up, held=set())
    assert (order, orphans) == ([2, 0, 1], {0: "b"}) and under_waiting(order, cycle, up, {0}) == {1: "a"}


def test_fingerprint_is_stable_and_content_based():
    cfg = make_config()
    a = map_orders(orders_frame([seed_order()]), lines_frame([seed_line()]), mapping_spec(cfg, "orders")).payloads[0]
    b = map_orders(orders_frame([seed_order()]), lines_frame([seed_line()]), mapping_spec(cfg, "orders")).payloads[0]
    c = map_orders(orders_frame([seed_order(status="paid")]), lines_frame([seed_line()]), mapping_spec(cfg, "orders")).payloads[0]
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert orjson.loads(a.data)["external_id"] == a.external_id == "1234000"


# --- property: every source line lands in exactly one payload order, totals add up ------------------
cents = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def shops(draw):
    n_orders = draw(st.integers(min_value=1, max_value=25))
    orders, lines, line_id = [], [], 0
    for pk in range(1, n_orders + 1):
        n_lines = draw(st.integers(min_value=1, max_value=6))
        total = 0
        for _ in range(n_lines):
            line_id += 1
            price, count = draw(cents), draw(st.integers(min_value=1, max_value=50))
            total += price * count
            lines.append(
                {
                    "_parent": pk,
                    "external_id": line_id,
                    "status": draw(st.sampled_from(["new", "delivered", "status_id_123"])),
                    "product": f"p{draw(st.integers(0, 30))}",
                    "base_price_per_item": None,
                    "min_price_per_item": None,
                    "final_price_per_item": Decimal(price) / 100,
                    "count": count,
                    "cf.line_field_id_123": None,
                }
            )
        delivery = draw(cents)
        orders.append(seed_order(external_id=f"o{pk}", delivery_cost=Decimal(delivery) / 100,
                                 total_price=Decimal(total + delivery) / 100,
                                 create_time=draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))))
    perm = draw(st.permutations(range(len(lines))))
    return orders, [lines[i] for i in perm]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_property_every_line_in_exactly_one_order_and_totals_match(shop):
    orders, lines = shop
    of = orders_frame(orders)
    of["create_time"] = of["create_time"].astype("datetime64[us]")
    lf = lines_frame(lines).astype({"final_price_per_item": object})
    out = map_orders(of, lf, mapping_spec(make_config(), "orders"))
    assert out.quarantine.empty, out.quarantine.to_string()
    records = out.records()
    assert len(records) == len(orders)
    seen = [l["external_id"] for r in records for l in r["lines"]]
    assert sorted(seen, key=int) == sorted((str(l["external_id"]) for l in lines), key=int)
    assert len(seen) == len(set(seen))
    for r, src in zip(sorted(records, key=lambda r: int(r["external_id"][1:])), orders):
        lines_total = sum(Decimal(l["final_price_per_item"]) * l["count"] for l in r["lines"])
        assert Decimal(r["total_price"]) == lines_total + Decimal(r["delivery_cost"])
        assert Decimal(r["total_price"]) == src["total_price"]
    parent_of = {str(l["external_id"]): f"o{l['_parent']}" for l in lines}
    assert all(parent_of[l["external_id"]] == r["external_id"] for r in records for l in r["lines"])


def test_text_columns_are_dtype_checked_with_one_answer() -> None:
    """pandera gets one bool for a string column's dtype check. Answered with a per-row array (pandera's
    own ``pd.StringDtype``), it formatted an empty failure report for every column of every chunk (~2 us an
    order). A column that is not pandas' string dtype still fails."""
    from pandera.engines import pandas_engine

    from transforms import checks, contract

    text = contract.OrderContract.to_schema().columns["external_id"].dtype
    assert isinstance(text, checks.Text)
    assert text.check(pandas_engine.Engine.dtype(pd.Series(["a"], dtype="str").dtype)) is True
    assert text.check(pandas_engine.Engine.dtype(pd.Series(["a"], dtype=object).dtype)) is False
    assert text.check(pandas_engine.Engine.dtype(pd.Series([1]).dtype)) is False


def test_schemas_are_built_once_per_distinct_arguments() -> None:
    from altcraft_sync.config import CustomField
    from transforms import contract

    cf = CustomField(external_id="a", name="A", entity_type="line_order", value_type="int")
    first = contract.line_schema(2, [], [cf], ["external_id", "cf.a"])
    assert contract.line_schema(2, [], [cf], ["external_id", "cf.a"]) is first
    other = CustomField(external_id="a", name="A", entity_type="line_order", value_type="unicode")
    assert contract.line_schema(2, [], [other], ["external_id", "cf.a"]) is not first


@pytest.mark.parametrize("keys", [[3, 1, 2, 10], ["b", "a", "c", "aa"], [2**70, 1, 5, 3]])
def test_children_sort_by_parent_then_key_whatever_the_key_type(keys: list) -> None:
    from transforms.payload import sort_children

    frame = pd.DataFrame({"_parent": [2, 1, 2, 1], "_pk": pd.Series(keys, dtype=object), "v": ["w", "x", "y", "z"]})
    expected = frame.sort_values(["_parent", "_pk"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(sort_children(frame), expected)


def test_vectorised_type_checks_agree_with_the_per_value_ones() -> None:
    """The contract's type checks take one inferred-dtype pass when a column is all of one kind; mixed
    columns still get the per-value test, and the answers are the same."""
    from transforms import checks as C

    cases = {
        "positive": (C.positive_int, [1, 5, None, 0, -2, True, 2.0, "3", 2**70]),
        "ints": (C.positive_int, [1, 5, None, 7]),
        "bools": (C.boolean, [True, None, False]),
        "bools+": (C.boolean, [True, 1, "yes", None]),
        "text": (C.text, ["a", None, ""]),
        "text+": (C.text, ["a", 1, None]),
        "number": (C.number, [1, 2.5, None]),
        "number+": (C.number, [1, True, "x", None]),
    }
    expected = {
        "positive": [True, True, True, False, False, False, False, False, True],
        "ints": [True, True, True, True],
        "bools": [True, True, True],
        "bools+": [True, False, False, True],
        "text": [True, True, True],
        "text+": [True, False, True],
        "number": [True, True, True],
        "number+": [True, False, False, True],
    }
    for name, (check, values) in cases.items():
        assert check(pd.Series(values, dtype=object)).tolist() == expected[name], name
    assert C.EMAIL and pd.Series(["a@b.co", "a\u00a0b@c.de", "a b@c.de"], dtype="str").str.match(C.EMAIL).tolist() == [
        True,
        False,
        False,
    ]


def test_regex_checks_run_in_arrow_mean_what_python_re_means() -> None:
    """The contract's regexes run in Arrow (RE2); each answer must be Python's ``re`` answer, around every
    character Python calls whitespace and in the prices' and times' patterns."""
    import re

    from transforms import checks as C

    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    assert "".join(spaces) == C._SPACE  # written out in the module, computed here
    spaces += ["\u200b", "\u180e", "x"]
    cases = {C.EMAIL: [f"a{w}b@c.de" for w in spaces] + [f"ab@c{w}.de" for w in spaces] + ["a@b.co", "@b.co", "a@b", "é@ü.рф"],
             C.price_pattern(2): ["1", "1.5", "1.55", "1.555", "-1", "1.", ".5", "١٢", "1e3", ""],
             C.RFC3339: ["2022-01-02T15:04:05.141Z", "2022-01-02T15:04:05+03:00", "2022-01-02 15:04:05Z", "2022-01-02T15:04:05"]}
    for pattern, texts in cases.items():
        arrow = C.matches(pattern)(pd.Series(texts + [None], dtype="str")).tolist()
        assert arrow == [re.match(pattern, t) is not None for t in texts] + [True], pattern


_decimal_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,6})?", fullmatch=True),
    st.sampled_from(["", " 5", "1e3", "+5", ".5", "5.", "abc", "-0.00", "NaN", "0x10"]),
    st.none(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_decimal_texts, max_size=30), st.sampled_from([0, 2, 3, 4]))
def test_decimal_text_is_parsed_vectorised_exactly_as_decimal_does(texts: list, scale: int) -> None:
    """Prices read as text (PostgreSQL/MySQL) take a vectorised parse; every value must come out exactly
    as the one-value-at-a-time ``Decimal`` path gives it (object columns still take that path)."""
    vectorised = M.money(pd.Series(texts, dtype="str"), scale)
    one_by_one = M.money(pd.Series(texts, dtype=object), scale)
    assert V.pylist(vectorised[0]) == V.pylist(one_by_one[0])
    assert vectorised[1].tolist() == one_by_one[1].tolist()


_naive_times = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)).map(lambda d: d.isoformat(sep=" ")),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)).map(lambda d: d.isoformat()),
    st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2200, 12, 31).date()).map(str),
    st.sampled_from(["2024-03-01T09:00", "2024-03-01T09", "2024-03-31 02:30:00", "2024-10-27 02:30:00",
                     "2024-03-01 12:00:00+03:00", " 2024-03-01", "2024-3-1", "not a time", "1969-12-31 23:59:59.9995"]),
    st.none(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_naive_times, max_size=20), st.sampled_from(["UTC", "Europe/Moscow", "Europe/Berlin"]))
def test_times_parsed_in_arrow_come_out_as_pandas_parses_them(texts: list, zone: str) -> None:
    """SQLite's text times are parsed by Arrow's cast when every value is plain ISO 8601; anything else
    goes to pandas. Both must give the same wire value for every text (object columns take pandas' path)."""
    tz = ZoneInfo(zone)
    assert V.pylist(V.rfc3339(pd.Series(texts, dtype="str"), tz)) == V.pylist(V.rfc3339(pd.Series(texts, dtype=object), tz))


def test_times_a_clock_change_repeats_or_skips_are_kept_and_agree_on_every_path():
    berlin = ZoneInfo("Europe/Berlin")
    walls = ["2024-10-27 02:30:00", "2024-03-31 02:30:00"]  # repeated (autumn), skipped (spring)
    expected = ["2024-10-27T00:30:00.000Z", "2024-03-31T01:00:00.000Z"]
    assert V.pylist(V.rfc3339(pd.Series(walls, dtype="str"), berlin)) == expected
    assert V.pylist(V.rfc3339(pd.Series(pd.to_datetime(walls)), berlin)) == expected
    mixed = pd.Series(walls + ["2024-10-27T02:30:00+01:00"], dtype=object)  # an offset: one value at a time
    assert V.pylist(V.rfc3339(mixed, berlin)) == expected + ["2024-10-27T01:30:00.000Z"]


def test_ids_and_strings_from_text_and_integer_columns():
    assert V.pylist(V.ids(pd.Series([17, 2**62]))) == ["17", str(2**62)]
    assert V.pylist(V.ids(pd.Series(["A-1", None, "ü"], dtype="str"))) == ["A-1", None, "ü"]
    assert V.pylist(V.ids(pd.Series([17.0, None, " x "], dtype=object))) == ["17", None, "x"]
    assert V.pylist(V.strings(pd.Series([1, 2]))) == ["1", "2"]
    assert V.pylist(V.strings(pd.Series(["a", None], dtype="str"))) == ["a", None]
    assert V.pylist(V.strings(pd.Series([1.5, "b", None], dtype=object))) == ["1.5", "b", None]


def test_a_key_in_several_rows_quarantines_its_record_once_and_sends_the_rest():
    """A join that repeats an order: neither row is sent with an arbitrary row's values; the record is
    quarantined once, naming the key and the count; the other orders go out."""
    from connectors.shop_db import mark_duplicates

    orders = orders_frame([seed_order(), seed_order()])
    orders.loc[1, "_pk"] = orders.loc[0, "_pk"]
    orders.loc[1, "external_id"] = orders.loc[0, "external_id"]
    third = orders_frame([seed_order()])
    third["_pk"], third["external_id"] = [99], ["other"]
    frame = mark_duplicates(pd.concat([orders, third], ignore_index=True), "streams.orders")
    lines = lines_frame([seed_line()])
    lines = pd.concat([lines, lines.assign(_parent=99, external_id="l99")], ignore_index=True)
    out = map_orders(frame, lines, mapping_spec(make_config(), "orders"))
    assert [p.external_id for p in out.payloads] == ["other"]
    q = out.quarantine
    assert len(q) == 1 and q.iloc[0]["field"] == "streams.orders.primary_key"
    assert q.iloc[0]["value"] == f"2 rows with key {orders.loc[0, '_pk']}"


def test_a_total_that_does_not_add_up_is_quarantined_with_the_amounts_it_compared():
    bad = seed_order(external_id=2, total_price=999.0)
    lines = lines_frame([seed_line(1), seed_line(2)])
    out = map_orders(orders_frame([seed_order(external_id=1), bad]), lines, mapping_spec(make_config(), "orders"))
    q = out.quarantine[out.quarantine["check"].str.startswith("total_price = sum")]
    assert q["field"].tolist() == ["total_price"]
    value = q["value"].tolist()[0]
    assert value.startswith("total_price 999.00, lines ") and " + delivery " in value, value


def test_the_total_checks_amounts_leave_the_other_failures_fields_as_they_were():
    bad_total = seed_order(external_id=2, total_price=999.0)
    no_email = seed_order(external_id=3, **{"m.email": None})
    lines = lines_frame([seed_line(1), seed_line(2), seed_line(3)])
    out = map_orders(orders_frame([seed_order(external_id=1), bad_total, no_email]), lines,
                     mapping_spec(make_config(), "orders"))
    q = out.quarantine
    other = q[q["external_id"] == "3"]
    assert len(other) and all(f is None or isinstance(f, str) for f in other["field"].tolist()), other.to_dict("records")
