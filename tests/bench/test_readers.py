"""The reader benchmark (``bench/readers.py``) decides which reader the next round takes: its exactness
check must tell exact money from a float or a wrong value, and every reader must read what today's does."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from tests.helpers import build_shop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import columnar  # the script's modules, beside each other
import exact_money
import readers


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("readers")
    url = f"sqlite:///{tmp}/shop.db"
    build_shop(url, orders=300).dispose()
    return readers.plan(url, 300, tmp), tmp


@pytest.mark.parametrize("name", [r for r in columnar.READERS if r != "today"])
def test_each_installed_reader_reads_what_today_reads_with_exact_money(name, tiny_plan):
    p, tmp = tiny_plan
    if not columnar.available(name, "sqlite"):
        pytest.skip(f"{name}: not for SQLite, or not installed")
    if (name, "sqlite") in columnar.KNOWN_FAILURES:
        pytest.skip(columnar.KNOWN_FAILURES[name, "sqlite"])
    today = readers.read_all("today", p, tmp)
    theirs = readers.read_all(name, p, tmp)
    assert today["exact"], today
    assert (theirs["orders"], theirs["lines"]) == (today["orders"], today["lines"]) == (300, today["lines"])
    assert theirs["exact"], theirs
    assert today["lines"] > 600  # 1-5 lines an order: the lines query ran for every page


def test_the_plan_sums_money_in_the_database_itself(tiny_plan):
    p, _ = tiny_plan
    ref = p["reference"]
    assert ref["total_price"] > 0 and ref["final_price_per_item"] > 0
    assert set(ref) == set(exact_money.ORDER_MONEY + exact_money.LINE_MONEY)


def test_the_check_refuses_a_float_where_the_database_stores_decimals():
    frames = {"orders": pd.DataFrame({"total_price": [10.1, 0.2]}), "lines": pd.DataFrame({"final_price_per_item": [1.5]})}
    ref = {"total_price": 1030, "final_price_per_item": 150}
    assert exact_money.money_check(frames, ref, stored_float=True)["exact"]  # SQLite: the stored REAL is the value
    out = exact_money.money_check(frames, ref, stored_float=False)
    assert not out["exact"] and out["floats"] == ["final_price_per_item", "total_price"]


def test_the_check_finds_a_wrong_value_and_a_value_past_the_scale():
    exact = {"orders": pd.DataFrame({"total_price": pd.array([Decimal("10.10"), None], dtype=object)}),
             "lines": pd.DataFrame({"final_price_per_item": pd.array(["1.50", "2"], dtype=object)})}
    ref = {"total_price": 1010, "final_price_per_item": 350}
    assert exact_money.money_check(exact, ref, stored_float=False) == {
        "exact": True, "kinds": {"total_price": "decimal", "final_price_per_item": "text"}, "wrong_sums": {}, "floats": []}
    off = {**ref, "total_price": 1011}
    assert exact_money.money_check(exact, off, stored_float=False)["wrong_sums"] == {"total_price": (1010, 1011)}
    with pytest.raises(ValueError, match="more than 2 places"):
        exact_money.minor_units(["1.005"])


def test_arrow_decimals_stay_decimals_in_the_frame():
    table = pa.table({"total": pa.array([Decimal("19.99"), None], type=pa.decimal128(14, 2)), "tags": pa.nulls(2)})
    frame = columnar.arrow_frame(table)
    assert exact_money.money_kind(frame["total"]) == "decimal"
    assert exact_money.minor_units(frame["total"]) == 1999
    assert exact_money.money_kind(frame["tags"]) == "null"
