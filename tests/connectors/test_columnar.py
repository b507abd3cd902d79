"""Pages read in columns (``source.reader: auto``) give the mapper the frames the rows path gives, on
SQLite, PostgreSQL and MariaDB; a page the columnar reader refuses is read as rows (so an unreadable row
is still isolated and quarantined); the fallback says so once per stream, without the password."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from altcraft_sync.config import load_config
from altcraft_sync.cursor import PROBLEM
from altcraft_sync.errors import ConfigError
from connectors import columnar
from connectors.shop_db import ShopSource
from sandbox import demo_shop
from sandbox.demo import write_demo_config
from tests.helpers import build_shop, shop_url_for


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)


def _source(url: str, tmp: Path, name: str, **source: Any) -> ShopSource:
    path = write_demo_config(url, f"sqlite:///{tmp}/state-{name}.db", "http://127.0.0.1:9/api/v1.1/", "t",
                             tmp / f"{name}.yaml", margin_seconds=0)
    raw = yaml.safe_load(path.read_text())
    raw["source"].update(source)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    src = ShopSource(load_config(path))
    src.bind()
    return src


def _counted(src: ShopSource) -> list[bool]:
    """Whether each page the source asked for came back in columns."""
    seen: list[bool] = []
    ask = src.columns.frame

    def frame(*args: Any) -> Any:
        got = ask(*args)
        seen.append(got is not None)
        return got

    src.columns.frame = frame  # type: ignore[method-assign]
    return seen


def _read_all(src: ShopSource, chunk: int) -> list[Any]:
    """Every page of every stream with its cursor, each page's children by parent, and the children's key
    pages: what a sync reads."""
    out: list[Any] = []
    for name in ("categories", "products", "skus", "orders"):
        children = [e for e in src.entities if e.startswith(name + ".")]
        for frame, cursor in src.read_changes(name, None, src.upper_bound(name, 0), chunk):
            out.append((name, frame, cursor))
            for child in children:
                out.append((child, src.fetch_by_keys(child, frame["_pk"].tolist(), by_parent=True), None))
        for child in children:
            out.extend((child, f, c) for f, c in src.read_changes(child, None, src.upper_bound(child, 0), chunk,
                                                                  keys_only=True))
        if src.entities[name].ts is not None:  # a first sync's pages, in key order
            out.extend((f"{name} by key", f, c) for f, c in src.read_changes(name, None, src.upper_bound(name, 0),
                                                                             chunk, by_key=True))
    return out


def _assert_same(got: list[Any], want: list[Any]) -> None:
    assert [(n, c) for n, _, c in got] == [(n, c) for n, _, c in want]
    for (name, a, _), (_, b, _) in zip(got, want):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None


def test_columnar_pages_equal_the_rows_pages_with_exact_money(shop_url, tmp_path):
    """The demo shop (its planted bad rows included) with prices that a binary float would spoil (0.10,
    0.20, 14 digits), read page by page both ways: the same frames (dtypes, values, NULLs), the same
    cursors, and every page read in columns."""
    engine = build_shop(shop_url, orders=300)
    with engine.begin() as conn:
        for oid, total in ((1, "0.10"), (2, "0.20"), (3, "123456789012.34")):
            conn.execute(demo_shop.orders.update().where(demo_shop.orders.c.id == oid).values(total=Decimal(total)))
    fast, rows = _source(shop_url, tmp_path, "auto"), _source(shop_url, tmp_path, "rows", reader="rows")
    assert fast.columns.reader is not None and rows.columns.reader is None
    asked = _counted(fast)
    got, want = _read_all(fast, 100), _read_all(rows, 100)
    _assert_same(got, want)
    assert asked and all(asked)
    orders = pd.concat([f for n, f, _ in got if n == "orders"]).set_index("external_id")["total_price"]
    if fast.dialect != "sqlite":  # PostgreSQL and MariaDB store decimals: the exact text, never a float
        assert [orders[1], orders[2], orders[3]] == ["0.10", "0.20", "123456789012.34"]
        assert Decimal(orders[1]) + Decimal(orders[2]) == Decimal("0.30")
    else:  # SQLite stores REAL: every reader gets the stored double, the same one
        assert orders[1] + orders[2] == 0.1 + 0.2
    fast.close()
    rows.close()


def test_sqlite_mixed_integer_and_real_and_an_all_null_text_column(tmp_path):
    """SQLite keeps whole prices as INTEGER and others as REAL in one NUMERIC column, and ADBC fixes a
    column's type from the rows it has seen: the first 1,500 lines priced whole come out as the same
    float64 column as the rows path's. A text column NULL on every row (ADBC guesses int64) is None
    objects, as the rows path gives."""
    url = shop_url_for("sqlite", tmp_path)
    engine = build_shop(url, orders=700)
    lines = demo_shop.order_lines
    with engine.begin() as conn:
        conn.execute(lines.update().where(lines.c.id <= 1500).values(final_price=sa.literal_column("100")))
        conn.execute(lines.update().values(gift_message=None))
        stored = conn.execute(sa.text("SELECT typeof(final_price), count(*) FROM order_lines GROUP BY 1")).all()
    assert {kind for kind, _ in stored} == {"integer", "real"}
    fast, rows = _source(url, tmp_path, "auto"), _source(url, tmp_path, "rows", reader="rows")
    asked = _counted(fast)
    keys = list(range(1, 701))
    got, want = (s.fetch_by_keys("orders.lines", keys, by_parent=True) for s in (fast, rows))
    assert asked == [True]
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["final_price_per_item"].dtype == "float64"
    assert got["cf.gift_message"].dtype == object and got["cf.gift_message"].isna().all()
    reader = fast.columns.reader
    assert reader is not None  # what the driver itself guessed for the all-NULL column
    assert str(reader.table("SELECT gift_message FROM order_lines", 10).schema.types[0]) == "int64"
    fast.close()
    rows.close()


def test_sqlite_text_in_a_numeric_column_is_read_as_rows(tmp_path, caplog):
    """A price stored as text in a NUMERIC column: ADBC would give every price of the page as text. The
    page is read as rows (the text stays text, the numbers numbers), said once for the stream."""
    url = shop_url_for("sqlite", tmp_path)
    engine = build_shop(url, orders=60)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET total = 'n/a' WHERE id = 7"))
    fast, rows = _source(url, tmp_path, "auto"), _source(url, tmp_path, "rows", reader="rows")
    asked = _counted(fast)
    with caplog.at_level(logging.INFO, logger="altcraft_sync.shop_db"):
        got = list(fast.read_changes("orders", None, fast.upper_bound("orders", 0), 1000))
        list(fast.read_changes("orders", None, fast.upper_bound("orders", 0), 1000))
    want = list(rows.read_changes("orders", None, rows.upper_bound("orders", 0), 1000))
    pd.testing.assert_frame_equal(got[0][0], want[0][0], check_exact=True)
    assert asked == [False, False]
    told = [r.getMessage() for r in caplog.records if "read as rows" in r.getMessage()]
    assert len(told) == 1 and "streams.orders" in told[0] and "total_price" in told[0]
    fast.close()
    rows.close()


def test_a_refused_page_is_read_as_rows_and_its_unreadable_row_quarantined(tmp_path, caplog):
    """A product name stored as bytes that are not UTF-8: the columnar reader refuses the page, the rows
    path isolates the row (halving by key) and marks it with the column and a safe preview; every other
    row of the page is read."""
    url = shop_url_for("sqlite", tmp_path)
    engine = build_shop(url, orders=20)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET title = CAST(X'436166E9' AS TEXT) WHERE id = 5"))
        count = conn.execute(sa.text("SELECT count(*) FROM products")).scalar()
    src = _source(url, tmp_path, "auto")
    asked = _counted(src)
    with caplog.at_level(logging.INFO, logger="altcraft_sync.shop_db"):
        frames = [f for f, _ in src.read_changes("products", None, src.upper_bound("products", 0), 1000)]
    frame = frames[0]
    assert asked == [False] and len(frame) == count
    problems = frame.set_index("external_id")[PROBLEM].dropna()
    assert list(problems.index) == ["P0000005"]
    assert problems["P0000005"] == ("streams.products.columns.name", "the value can be read as text",
                                    "not UTF-8: 'Caf\\\\xe9'")
    assert any("streams.products: pages are read as rows" in r.getMessage() for r in caplog.records)
    src.close()


def test_a_driver_error_falls_back_once_per_stream_with_the_password_masked(tmp_path, caplog, monkeypatch):
    """The driver fails (here its message echoes a connection string with the password): each page is
    read as rows and is the same; one line per stream says why, and the password is in no log line."""
    url = shop_url_for("sqlite", tmp_path)
    build_shop(url, orders=40)
    src, rows = _source(url, tmp_path, "auto"), _source(url, tmp_path, "rows", reader="rows")
    secret = "Sekr3t-Pa55word"

    def failing(sql: str, hint: int) -> Any:
        raise RuntimeError(f"connection to postgresql://shop:{secret}@db.internal:5432/shop failed\nmore")

    assert src.columns.reader is not None
    monkeypatch.setattr(src.columns.reader, "_run", failing)
    with caplog.at_level(logging.DEBUG, logger="altcraft_sync.shop_db"):
        got = list(src.read_changes("orders", None, src.upper_bound("orders", 0), 10))
        lines = src.fetch_by_keys("orders.lines", got[0][0]["_pk"].tolist(), by_parent=True)
    want = list(rows.read_changes("orders", None, rows.upper_bound("orders", 0), 10))
    assert len(got) == len(want) > 1
    for (a, ca), (b, cb) in zip(got, want):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert ca == cb
    pd.testing.assert_frame_equal(lines, rows.fetch_by_keys("orders.lines", want[0][0]["_pk"].tolist(), by_parent=True))
    said = [r for r in caplog.records if r.levelno >= logging.INFO and "read as rows" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and "RuntimeError" in said[0].getMessage()
    assert secret not in caplog.text and "shop:***@db.internal" in said[0].getMessage()
    src.close()
    rows.close()


def test_a_connection_the_driver_cannot_open_is_masked():
    """ADBC's own connection error for a PostgreSQL URL holding a password, and a driver message echoing
    the connection string: masked in the refusal itself, before any log sees it."""
    reader = columnar.AdbcPostgreSQL(sa.make_url("postgresql+psycopg://shop:Sekr3t-Pa55word@127.0.0.1:1/shop"))
    if not reader.installed():
        pytest.skip("adbc-driver-postgresql is not installed")
    with pytest.raises(columnar.Refused) as err:
        reader.table("SELECT 1", 1)
    assert "Sekr3t-Pa55word" not in str(err.value) and "adbc-postgresql" in str(err.value)

    def echoing(sql: str, hint: int) -> Any:
        raise OSError(f"cannot connect to {columnar.libpq_url(reader.url)}")

    reader._run = echoing  # type: ignore[method-assign]
    with pytest.raises(columnar.Refused) as err:
        reader.table("SELECT 1", 1)
    assert "Sekr3t-Pa55word" not in str(err.value) and "postgresql://shop:***@127.0.0.1:1/shop" in str(err.value)


def test_exact_decimals_of_each_driver():
    """A NUMERIC read natively (not as text) is a ``Decimal`` as the rows path's driver gives it: the
    PostgreSQL text of the value, or MariaDB's decimal128 at the column's declared scale; never a float."""
    import pyarrow as pa

    pg_field = pa.field("n", pa.string(), metadata={b"POSTGRESQL:type": b"numeric"})
    pg = pa.Table.from_arrays([pa.array(["123456789012345.67", "0.10", None])], schema=pa.schema([pg_field]))
    frame = columnar.arrow_frame(pg, columnar.AdbcPostgreSQL(sa.make_url("postgresql://x@h/d")), {})
    assert frame["n"].tolist() == [Decimal("123456789012345.67"), Decimal("0.10"), None]
    assert str(frame["n"][1]) == "0.10"
    my = pa.table({"n": pa.array([Decimal("1.5"), Decimal("123456789012345.67")], type=pa.decimal128(38, 10))})
    cx = columnar.ConnectorXMySQL(sa.make_url("mysql://x@h/d"))
    frame = columnar.arrow_frame(my, cx, {"n": sa.Numeric(17, 2)})
    assert [str(v) for v in frame["n"]] == ["1.50", "123456789012345.67"]
    with pytest.raises(columnar.Refused):  # an untyped DECIMAL has no scale to give it: read as rows
        columnar.arrow_frame(my, cx, {})


def test_the_reader_setting(tmp_path, monkeypatch, caplog):
    """``source.reader: rows`` reads as today, silently; an unknown value names the setting; ``auto`` with
    the driver not installed reads as rows and says so once per stream."""
    url = shop_url_for("sqlite", tmp_path)
    build_shop(url, orders=10)
    with pytest.raises(ConfigError, match=r"source\.reader"):
        _source(url, tmp_path, "bad", reader="columns")
    monkeypatch.setattr(columnar.AdbcSQLite, "installed", classmethod(lambda cls: False))
    src = _source(url, tmp_path, "missing")
    with caplog.at_level(logging.INFO, logger="altcraft_sync.shop_db"):
        list(src.read_changes("orders", None, src.upper_bound("orders", 0), 4))
        list(src.read_changes("products", None, src.upper_bound("products", 0), 4))
    said = [r.getMessage() for r in caplog.records if "read as rows" in r.getMessage()]
    assert said == ["streams.orders: pages are read as rows where the columnar reader cannot read them: "
                    "adbc_driver_sqlite is not installed",
                    "streams.products: pages are read as rows where the columnar reader cannot read them: "
                    "adbc_driver_sqlite is not installed"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_columnar_read_loads_no_dbapi_layer_and_holds_no_transaction(dialect, tmp_path):
    """The readers go through the driver manager's own objects: in a fresh interpreter, a page read loads
    neither ``adbc_driver_manager.dbapi`` nor the ``pyarrow.dataset`` it imports (Parquet, Acero, S3: ~13 MB
    resident that a read never uses), and the connection is in autocommit mode, so no snapshot is held
    between pages."""
    import subprocess
    import sys

    url = shop_url_for(dialect, tmp_path)
    reader = {"sqlite": "AdbcSQLite", "postgresql": "AdbcPostgreSQL"}[dialect]
    if not getattr(columnar, reader).installed():
        pytest.skip(f"{getattr(columnar, reader).module} is not installed")
    script = (
        "import sys, sqlalchemy as sa\n"
        "from connectors import columnar\n"
        f"r = columnar.{reader}(sa.make_url(sys.argv[1]))\n"
        "assert r.table('SELECT 1 AS x', 1).to_pylist() == [{'x': 1}]\n"
        "print(sorted(m for m in ('pyarrow.dataset', 'adbc_driver_manager.dbapi') if m in sys.modules),\n"
        "      r._conn.connection.get_option('adbc.connection.autocommit'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "true"]
