"""The candidate readers of ``bench/readers.py``: each turns one SQL string into a pandas frame its own way
(pandas over SQLAlchemy, ADBC, ConnectorX, psycopg's COPY), imported only when it is measured."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

READERS = ("today", "pandas-sa", "adbc", "connectorx", "pg-copy-binary", "pg-copy-arrow")
SUPPORTS = {
    "adbc": {"sqlite", "postgresql"},
    "pg-copy-binary": {"postgresql"},
    "pg-copy-arrow": {"postgresql"},
}
KNOWN_FAILURES = {
    ("connectorx", "sqlite"): "ConnectorX fixes a column's type from its first value, and SQLite's NUMERIC columns "
                              "mix INTEGER (whole prices) and REAL: 'Invalid column type Real'",
}
"""Readers measured anyway (the table shows the failure) but not expected to read every shop."""
MODULES = {"adbc": {"sqlite": "adbc_driver_sqlite", "postgresql": "adbc_driver_postgresql"},
           "connectorx": "connectorx", "pg-copy-binary": "psycopg", "pg-copy-arrow": "psycopg"}


ARROW_SCHEMA: list[Any] = []
"""The Arrow schema of the last table a reader turned into a frame (the types probe reports it)."""


def arrow_frame(table: Any) -> Any:
    """Arrow -> pandas, decimals kept as Arrow decimals (``to_pandas`` would build a ``Decimal`` per value)."""
    import pandas as pd
    import pyarrow as pa

    ARROW_SCHEMA[:] = [table.schema]
    return table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_decimal(t) or pa.types.is_null(t) else None)


def reader_query(name: str, dialect: str, url: str) -> tuple[Callable[[str], Any], Callable[[], None]]:
    """``name``'s way of turning one SQL string into a frame, and how to close what it opened."""
    import sqlalchemy as sa

    u = sa.make_url(url)
    if name == "pandas-sa":
        import pandas as pd

        engine = sa.create_engine(url)
        conn = engine.connect()
        return (lambda sql: pd.read_sql(sa.text(sql), conn)), lambda: (conn.close(), engine.dispose())
    if name == "adbc":
        if dialect == "sqlite":
            import adbc_driver_sqlite.dbapi as adbc
            aconn = adbc.connect(u.database)
        else:
            import adbc_driver_postgresql.dbapi as adbc
            aconn = adbc.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))

        def adbc_query(sql: str) -> Any:
            with aconn.cursor() as cur:
                cur.execute(sql)
                return arrow_frame(cur.fetch_arrow_table())

        return adbc_query, aconn.close
    if name == "connectorx":
        import connectorx as cx

        conn_str = cx_url(dialect, url)
        return (lambda sql: arrow_frame(cx.read_sql(conn_str, sql, return_type="arrow"))), lambda: None
    if name in ("pg-copy-binary", "pg-copy-arrow"):
        import psycopg

        pconn = psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
        return (lambda sql: (copy_binary if name == "pg-copy-binary" else copy_arrow)(pconn, sql)), pconn.close
    raise SystemExit(f"unknown reader {name}")


def cx_url(dialect: str, url: str) -> str:
    import sqlalchemy as sa

    u = sa.make_url(url)
    if dialect == "sqlite":
        return f"sqlite://{u.database}"
    scheme = "postgresql" if dialect == "postgresql" else "mysql"
    return u.set(drivername=scheme).render_as_string(hide_password=False)


def copy_binary(conn: Any, sql: str) -> Any:
    """psycopg's binary COPY: the columns' types from a described ``LIMIT 0``, each value by its binary
    loader (NUMERIC as ``Decimal``), rows into a frame."""
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
        names = [d.name for d in cur.description]
        oids = [d.type_code for d in cur.description]
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(oids)
            rows = list(copy.rows())
    return pd.DataFrame.from_records(rows, columns=names, coerce_float=False)


PG_ARROW = {16: "bool", 20: "int64", 21: "int16", 23: "int32", 25: "string", 1043: "string", 701: "float64",
            1114: "timestamp[us]", 1184: "timestamp[us, tz=UTC]"}


def copy_arrow(conn: Any, sql: str) -> Any:
    """``COPY (...) TO STDOUT (FORMAT CSV)`` parsed by ``pyarrow.csv`` with the columns' own types: NUMERIC
    as decimal128 (exact), an unquoted empty field as NULL and a quoted one as an empty string."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
        desc = list(cur.description)
        buf = io.BytesIO()
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)") as copy:
            for block in copy:
                buf.write(block)
    names = [d.name for d in desc]
    if not buf.tell():  # no rows: pyarrow's CSV reader refuses an empty file
        return arrow_frame(pa.table({n: pa.array([], type=pa.string()) for n in names}))
    types = {d.name: (pa.decimal128(38, 10) if d.type_code == 1700 else pa.type_for_alias(PG_ARROW.get(d.type_code, "string")))
             for d in desc}
    table = pacsv.read_csv(io.BytesIO(buf.getvalue()), read_options=pacsv.ReadOptions(column_names=names),
                           convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                quoted_strings_can_be_null=False,
                                                                true_values=["t"], false_values=["f"]))
    return arrow_frame(table)


def available(name: str, dialect: str) -> bool:
    """Whether ``name`` reads ``dialect`` here (supported, and its package installed)."""
    import importlib.util

    if name in SUPPORTS and dialect not in SUPPORTS[name]:
        return False
    module = MODULES.get(name)
    if isinstance(module, dict):
        module = module.get(dialect)
    return module is None or importlib.util.find_spec(module) is not None
