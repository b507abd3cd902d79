"""What real shops hold that the transforms must take (issue 26): phone-only orders matched by a fallback
mode, HTML-escaped names, negative stock, quantities by weight, the change time of each order (trigger
window) and what each line says about its product (for a stand-in)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from altcraft_sync.cursor import PRODUCT_NAME
from tests.transforms.test_transforms import (
    lines_frame,
    make_config,
    orders_frame,
    seed_line,
    seed_order,
    seed_region,
    seed_sku,
)
from transforms.catalog import map_catalog, map_categories
from transforms.order_extras import WHOLE_COUNT
from transforms.orders import map_orders
from transforms.spec import mapping_spec


def orders_config(matching=None, lines=None, orders=None):
    cfg = make_config()
    raw = cfg.model_dump(by_alias=True, mode="json")
    for section in raw["streams"].values():
        for key in [k for k, v in section.items() if v is None]:
            section.pop(key)
        for child in ("lines", "regional"):
            if isinstance(section.get(child), dict):
                for key in [k for k, v in section[child].items() if v is None]:
                    section[child].pop(key)
    raw["source"]["url"] = "sqlite://"
    raw["state"]["url"] = "sqlite://"
    raw["altcraft"]["token"] = "t"
    o = raw["streams"]["orders"]
    if matching is not None:
        o["matching"] = matching
    o["lines"].update(lines or {})
    o.update(orders or {})
    from altcraft_sync.config import parse_config

    return parse_config(raw)


PHONE_FALLBACK = {"mode": "email", "fallback": ["phone"], "columns": {"email": "email", "phone": "phone"}}


def test_an_order_without_an_email_is_matched_by_the_fallback_mode():
    cfg = orders_config(matching=PHONE_FALLBACK)
    orders = orders_frame([
        seed_order(external_id=1, **{"m.email": "a@example.com", "m.phone": "+7 900 000-00-01"}),
        seed_order(external_id=2, **{"m.email": None, "m.phone": "+7 900 000-00-02"}),
        seed_order(external_id=3, **{"m.email": "n/a", "m.phone": "+7 900 000-00-03"}),  # not an address
        seed_order(external_id=4, **{"m.email": "", "m.phone": None}),
    ])
    lines = lines_frame([seed_line(p) for p in (1, 2, 3, 4)])
    out = map_orders(orders, lines, mapping_spec(cfg, "orders"))
    by_id = {r["external_id"]: r for r in out.records()}
    assert sorted(by_id) == ["1", "2", "3"]
    # the phone as its buyer's profile has it (issue 28: the order must find that profile)
    assert (by_id["1"]["matching"], by_id["1"]["email"], by_id["1"]["phone"]) == ("email", "a@example.com",
                                                                                   "+79000000001")
    assert by_id["2"]["matching"] == "phone" and "email" not in by_id["2"]
    assert by_id["3"]["matching"] == "phone" and "email" not in by_id["3"]  # the unusable e-mail left out
    q = out.quarantine
    assert list(q["external_id"]) == ["4"]
    assert q["check"].iloc[0].startswith("matching: no mode can be used ('email' needs email; 'phone' needs phone")


def test_without_a_fallback_the_records_and_reasons_are_as_before():
    """An existing config (no ``fallback``) sends byte-identical records: nothing is re-sent after the upgrade."""
    out = map_orders(orders_frame([seed_order(external_id=1), seed_order(external_id=2, **{"m.email": None})]),
                     lines_frame([seed_line(1), seed_line(2)]), mapping_spec(make_config(), "orders"))
    assert [r["matching"] for r in out.records()] == ["email"]
    assert list(out.quarantine["check"]) == ["matching 'email' needs email"]


def test_a_fallback_mode_needs_its_fields_mapped():
    from altcraft_sync.errors import ConfigError

    with pytest.raises(ConfigError, match=r"matching.fallback.0: mode 'phone' needs field 'phone'"):
        orders_config(matching={"mode": "email", "fallback": ["phone"], "columns": {"email": "email"}})
    with pytest.raises(ConfigError, match=r"matching.fallback.0: mode 'fax' is not one of"):
        orders_config(matching={"mode": "email", "fallback": ["fax"], "columns": {"email": "email"}})


def test_html_escaped_names_are_decoded_where_the_mapping_says():
    cfg = orders_config()
    raw = cfg.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["streams"]["categories"]["html_unescape"] = ["name"]
    raw["streams"]["skus"]["html_unescape"] = ["name", "description"]
    raw["streams"]["skus"]["regional"]["html_unescape"] = ["test_field_string"]
    from altcraft_sync.config import parse_config

    cfg = parse_config(raw)
    cats = pd.DataFrame({"_pk": [1, 2], "_ts": "2024-01-01", "external_id": ["1", "2"],
                         "name": ["Laptops &amp; Notebooks", "Tom&#039;s &quot;Best&quot;"], "parent_external_id": [None, "1"]})
    assert [r["name"] for r in map_categories(cats, mapping_spec(cfg, "categories")).records()] == [
        "Laptops & Notebooks", 'Tom\'s "Best"']
    skus = pd.DataFrame([seed_sku(1, name="Caf&eacute; &lt;3", description="a &amp;amp; b")])
    regions = pd.DataFrame([seed_region(1, 1, **{"cf.test_field_string": "x &gt; y"})])
    rec = map_catalog(skus, regions, mapping_spec(cfg, "skus")).records()[0]
    assert (rec["name"], rec["description"]) == ("Café <3", "a &amp; b")  # decoded once, as the shop shows it
    assert rec["regional_data"][0]["custom_fields"]["test_field_string"] == "x > y"
    assert rec["custom_fields"]["test_field_string"] == "x"  # not listed for the SKU itself


def test_html_unescape_names_only_fields_of_its_section():
    from altcraft_sync.errors import ConfigError

    raw = make_config().model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["streams"]["categories"]["html_unescape"] = ["description"]
    from altcraft_sync.config import parse_config

    with pytest.raises(ConfigError, match=r"streams.categories.html_unescape.0: 'description' is not read by this section"):
        parse_config(raw)


def test_negative_stock_is_valid_as_altcraft_documents_it():
    """api.md: ``count`` is an int ("Stock"), with no sign rule. What negative stock means (0 available) is
    the mapping's to say; the contract sends the integer it is given."""
    skus = pd.DataFrame([seed_sku(1, count=-3)])
    regions = pd.DataFrame([seed_region(1, 1, count=-1)])
    out = map_catalog(skus, regions, mapping_spec(make_config(), "skus"))
    assert out.quarantine.empty
    rec = out.records()[0]
    assert rec["count"] == -3 and rec["regional_data"][0]["count"] == -1


def test_a_fractional_quantity_is_quarantined_with_its_reason_by_default():
    orders = orders_frame([seed_order(external_id=1, total_price=775.0)])
    lines = lines_frame([seed_line(1, count="0.75", final_price_per_item="900", base_price_per_item=None,
                                   min_price_per_item=None)])
    out = map_orders(orders, lines, mapping_spec(make_config(), "orders"))
    assert out.payloads == []
    q = out.quarantine
    row = q[q["field"] == "lines.count"].iloc[0]
    assert (row["check"], row["value"]) == (WHOLE_COUNT, "0.75 (line line_01)")


def test_whole_line_sends_a_fractional_quantity_as_one_item_of_its_amount():
    cfg = orders_config(lines={"fractional_count": "whole_line"})
    orders = orders_frame([seed_order(external_id=1, total_price=1433.32, delivery_cost=100.0)])
    lines = lines_frame([
        seed_line(1, external_id="w", count="0.333", final_price_per_item="99.99", base_price_per_item="120",
                  min_price_per_item=None),  # 33.29667 -> 33.30; 39.96 base
        seed_line(1, external_id="n", count=2, final_price_per_item="650.01", base_price_per_item=None,
                  min_price_per_item=None),
    ])
    out = map_orders(orders, lines, mapping_spec(cfg, "orders"))
    assert out.quarantine.empty, out.quarantine.to_string()
    w, n = out.records()[0]["lines"]
    assert (w["count"], w["final_price_per_item"], w["base_price_per_item"]) == (1, "33.3", "39.96")
    assert (n["count"], n["final_price_per_item"]) == (2, "650.01")


def test_each_order_carries_its_change_time_and_each_line_what_it_says_about_its_product():
    cfg = orders_config(lines={"product_name": "title", "html_unescape": ["product_name"]})
    spec = mapping_spec(cfg, "orders")
    orders = orders_frame([seed_order(external_id=1), seed_order(external_id=2, currency="EUR")])
    orders["_ts"] = ["2024-03-01 10:00:00", None]
    lines = lines_frame([seed_line(1, external_id="a", product="p1", **{PRODUCT_NAME: "Mug &amp; Cup"}),
                         seed_line(2, external_id="b", product="p2", final_price_per_item=450,
                                   total_price=None, count=2, **{PRODUCT_NAME: None})])
    orders.loc[1, "total_price"] = 1000.0
    out = map_orders(orders, lines, spec)
    assert [p.external_id for p in out.payloads] == ["1", "2"]
    assert out.changed_at is not None
    assert out.changed_at[0] == datetime(2024, 3, 1, 10, tzinfo=UTC).timestamp()
    # no updated_at value: the order's create_time (2022-01-02 15:04:05.141)
    assert math.isclose(out.changed_at[1], datetime(2022, 1, 2, 15, 4, 5, 141000, tzinfo=UTC).timestamp())
    assert out.ref_lines is not None and out.refs is not None
    assert out.refs.values.to_pylist() == ["p1", "p2"]
    assert out.ref_lines.names.to_pylist() == ["Mug & Cup", None]
    assert out.ref_lines.prices.to_pylist() == ["900", "450"]
    assert out.ref_lines.currencies.to_pylist() == ["USD", "EUR"]


def test_catalogue_streams_carry_no_change_times():
    out = map_catalog(pd.DataFrame([seed_sku(1)]), None, mapping_spec(make_config(), "skus"))
    assert out.changed_at is None and out.ref_lines is None
