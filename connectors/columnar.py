"""Columnar readers: one SQL string in, one Arrow table out, with no Python object per value. ADBC reads
SQLite and PostgreSQL, ConnectorX reads MySQL/MariaDB (ADBC has no MySQL driver on PyPI, and ConnectorX
cannot read SQLite's NUMERIC columns, which mix INTEGER and REAL). :func:`arrow_frame` turns a table
into the frame the rows path builds (``shop_rows._frame``), or refuses it when it cannot be the same.

Why, and what it saves: ``docs/performance.md`` ("Reading the shop in columns"). The drivers take no bound
parameters here: the caller renders its query with the dialect's own literal rendering
(:func:`literal_sql`), never by formatting text into SQL. Connection strings carry the password; every
error leaving this module is masked (``altcraft_sync.masking``)."""

from __future__ import annotations

import importlib.util
import threading
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.sql import visitors

from altcraft_sync.cursor import PK, TS
from altcraft_sync.masking import mask

NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
"""Text SQLite would have stored as a number in a column of numeric affinity."""


class Refused(Exception):
    """The reader cannot give this page as the rows path would (a driver error, a value or a type it
    does not read the same way): the page is read as rows. ``sticky``: the same will hold on every page
    of this query (a column type), so the stream stops asking."""

    def __init__(self, reason: str, sticky: bool = False) -> None:
        super().__init__(mask(reason))
        self.sticky = sticky


class ColumnarReader(ABC):
    """A driver's connection, opened on first use and kept (autocommit: no snapshot held between pages)."""

    name = "columnar"
    module = ""

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.Lock()
        """One query at a time on the connection (a DBAPI connection is not shared between threads)."""

    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec(cls.module) is not None

    def table(self, sql: str, rows_hint: int) -> pa.Table:
        """The result of ``sql``; any driver error becomes a masked :class:`Refused` (the connection is
        dropped, so the next page starts on a fresh one)."""
        try:
            with self._lock:
                return self._run(sql, rows_hint)
        except Refused:
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as err:  # each driver's own types; a Rust panic (pyo3) is a BaseException
            self.close()
            if type(err).__name__ == "PanicException":  # the driver cannot read this query's types at all
                raise Refused(f"{self.name}: the driver cannot read this query", sticky=True) from None
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise Refused(f"{self.name}: {type(err).__name__}: {first}") from None

    @abstractmethod
    def _run(self, sql: str, rows_hint: int) -> pa.Table:
        """Run ``sql`` on this driver's connection (opened on first use) and return all its rows."""

    def prepared(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """The query as this driver can run it (the same rows and values)."""
        return query

    def check(self, field: pa.Field, declared: sa.types.TypeEngine[Any], column: pa.ChunkedArray) -> None:
        """Raise :class:`Refused` when a column of this Arrow type is not read as the rows path reads it."""
        return None  # a driver whose types all read as the rows path's needs no check

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing left to release
                pass


class AdbcHandles:
    """One ADBC database and its one connection, held through the driver manager's own objects rather than
    its DBAPI layer: ``adbc_driver_manager.dbapi`` imports ``pyarrow.dataset`` (and with it Parquet, Acero,
    Substrait and the S3 file system: ~13 MB resident and ~60 ms of start that a read never uses), and
    asks the server to prepare each new query before running it (on PostgreSQL one more round trip a
    page). A connection of the driver manager is in autocommit mode, as ADBC specifies: no snapshot is
    held between pages."""

    def __init__(self, database: Any) -> None:
        import adbc_driver_manager

        self._manager = adbc_driver_manager
        self.database = database
        try:
            self.connection = adbc_driver_manager.AdbcConnection(database)
        except BaseException:
            database.close()
            raise

    def table(self, sql: str, options: dict[str, str] | None = None) -> pa.Table:
        """Every row of ``sql``, read to the end before the statement closes. The driver runs the query
        and its reads without Python's lock, so the push and commit threads go on meanwhile."""
        with self._manager.AdbcStatement(self.connection) as statement:
            if options:
                statement.set_options(**options)
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            return pa.RecordBatchReader.from_stream(stream).read_all()

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.database.close()


class AdbcSQLite(ColumnarReader):
    name = "adbc-sqlite"
    module = "adbc_driver_sqlite"

    def _run(self, sql: str, rows_hint: int) -> pa.Table:
        if self._conn is None:
            import adbc_driver_sqlite

            self._conn = AdbcHandles(adbc_driver_sqlite.connect(self.url.database))
        # the driver fixes a column's type from its first batch and fails on a later value of another
        # type: one batch for the whole page makes it see every value before it decides
        return cast(AdbcHandles, self._conn).table(
            sql, {"adbc.sqlite.query.batch_rows": str(max(rows_hint + 1, 1024))})

    def check(self, field: pa.Field, declared: sa.types.TypeEngine[Any], column: pa.ChunkedArray) -> None:
        """A column whose affinity is not TEXT may hold numbers and text side by side, and ADBC gives them
        all as text where the rows path keeps each value's own type. Declared numeric: the page is read as
        rows. Untyped (a query's expression): as rows when any value reads as a number (which is what a
        number stored there would look like); text that cannot be a number is safe."""
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type) or pa.types.is_binary(field.type)):
            return
        if isinstance(declared, sa.types.NullType):
            if pa.types.is_binary(field.type) or pc.any(pc.match_substring_regex(column, NUMBER)).as_py():
                raise Refused(f"column {field.name}: text that reads as a number in an untyped column (SQLite may "
                              "store numbers there); read as rows", sticky=True)
        elif _sqlite_affinity(declared) != "TEXT":
            raise Refused(f"column {field.name}: text in a column declared {declared}; its values may mix types")


class AdbcPostgreSQL(ColumnarReader):
    name = "adbc-postgresql"
    module = "adbc_driver_postgresql"
    TYPES = frozenset({"int2", "int4", "int8", "float8", "text", "varchar", "bpchar", "bool", "timestamp",
                       "timestamptz", "date", "numeric", "bytea"})
    """The PostgreSQL types read exactly as psycopg reads them (float4 widens differently, json and uuid
    become Python objects there and text here)."""

    def _run(self, sql: str, rows_hint: int) -> pa.Table:
        if self._conn is None:
            import adbc_driver_postgresql

            self._conn = AdbcHandles(adbc_driver_postgresql.connect(libpq_url(self.url)))
        return cast(AdbcHandles, self._conn).table(sql)

    def check(self, field: pa.Field, declared: sa.types.TypeEngine[Any], column: pa.ChunkedArray) -> None:
        pg = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        if pg not in self.TYPES:
            raise Refused(f"column {field.name}: PostgreSQL type {pg or field.type} is read as rows", sticky=True)


class ConnectorXMySQL(ColumnarReader):
    name = "connectorx-mysql"
    module = "connectorx"

    def _run(self, sql: str, rows_hint: int) -> pa.Table:
        import connectorx as cx

        return cx.read_sql(self.url.set(drivername="mysql").render_as_string(hide_password=False), sql,
                           return_type="arrow")

    def prepared(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """ConnectorX panics on a column of MySQL's NULL type (a stream without ``updated_at`` selects a
        bare NULL as its cursor): it is selected as a NULL of type CHAR, which reads as None all the same."""
        columns = list(query.selected_columns)
        if not any(isinstance(getattr(c, "element", None), sa.sql.elements.Null) for c in columns):
            return query
        return query.with_only_columns(*[sa.cast(sa.null(), sa.String()).label(str(c.key))
                                         if isinstance(getattr(c, "element", None), sa.sql.elements.Null) else c
                                         for c in columns])

    def check(self, field: pa.Field, declared: sa.types.TypeEngine[Any], column: pa.ChunkedArray) -> None:
        """PyMySQL parses a FLOAT's text (1.1), ConnectorX widens the 32-bit value (1.100000023841858);
        a DECIMAL comes as ``decimal128(38, 10)``, whose scale is the column's only when it is declared."""
        if pa.types.is_floating(field.type) and field.type.bit_width != 64:
            raise Refused(f"column {field.name}: FLOAT is widened differently; read as rows", sticky=True)
        if pa.types.is_decimal(field.type) and getattr(declared, "scale", None) is None:
            raise Refused(f"column {field.name}: a DECIMAL of unknown scale is read as rows", sticky=True)



def libpq_url(url: sa.URL) -> str:
    """The URL as libpq takes it (``postgresql://``, without SQLAlchemy's driver suffix); it holds the
    password: never logged, every error built from it goes through ``mask``."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def literal_sql(query: sa.Select[Any], dialect: sa.Dialect) -> str:
    """``query`` with its bound values rendered as literals by the dialect's own literal processors (quotes
    escaped by SQLAlchemy, never by string formatting). An untyped value (SQLite's raw reads compare
    columns untyped) takes its Python value's type, so it has a literal rendering."""
    def typed(element: Any) -> Any:
        if isinstance(element, sa.BindParameter) and isinstance(element.type, sa.types.NullType):
            return sa.literal(element.effective_value)
        return None

    typed_query: Any = cast(Any, visitors.replacement_traverse)(query, {}, typed)
    return str(typed_query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def arrow_frame(table: pa.Table, reader: ColumnarReader, declared: dict[str, sa.types.TypeEngine[Any]]) -> pd.DataFrame:
    """The frame ``shop_rows._frame`` builds from the same rows: the key and cursor columns as the
    driver's Python values (object), integers as int64 (float64 with NaN where a value is NULL, as
    pandas infers), text as ``str``, an all-NULL column as ``None`` objects whatever type the driver
    guessed for it, decimals as ``Decimal`` (never a float), booleans with NULLs as objects. A column the
    reader does not read as the rows path does raises :class:`Refused`."""
    out: dict[str, pd.Series] = {}
    n = table.num_rows
    for field, column in zip(table.schema, table.columns):
        name = field.name
        if column.null_count == n:
            out[name] = pd.Series([None] * n, dtype=object)
            continue
        kind = declared.get(name, sa.types.NullType())
        reader.check(field, kind, column)
        try:
            out[name] = _series(name, field, column, getattr(kind, "scale", None))
        except (pa.ArrowException, ArithmeticError, ValueError) as err:  # e.g. an unsigned value past int64
            raise Refused(f"column {name}: {type(err).__name__}: {str(err).splitlines()[0][:120]}") from None
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _series(name: str, field: pa.Field, column: pa.ChunkedArray, scale: int | None) -> pd.Series:
    t = field.type
    if name in (PK, TS):
        return pd.Series(_python_values(column), dtype=object)
    if (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
        return pd.Series([None if v is None else Decimal(v) for v in column.to_pylist()], dtype=object)
    if pa.types.is_integer(t):
        return pd.Series(column.cast(pa.float64() if column.null_count else pa.int64()).to_numpy())
    if pa.types.is_floating(t):
        return pd.Series(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        column.validate(full=True)  # SQLite hands over stored bytes that are not UTF-8 as they are
        return column.to_pandas()
    if pa.types.is_decimal(t) and scale is not None:  # as the driver reads it: the column's own scale
        step = Decimal(1).scaleb(-scale)
        return pd.Series([None if v is None else v.quantize(step) for v in column.to_pylist()], dtype=object)
    if pa.types.is_boolean(t) or pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t):
        return column.to_pandas() if pa.types.is_boolean(t) and not column.null_count \
            else pd.Series(column.to_pylist(), dtype=object)
    if pa.types.is_timestamp(t):
        return pd.Series(column.to_pandas()).astype(f"datetime64[us, {t.tz}]" if t.tz else "datetime64[us]")
    raise Refused(f"column {name}: Arrow type {t} is read as rows", sticky=True)


def _python_values(column: pa.ChunkedArray) -> list[Any] | np.ndarray:
    """The key or cursor column as the driver's Python values (``int``, ``datetime``), as the rows path
    gives them. numpy converts whole integer and microsecond time columns to the same objects ~40 times
    faster than Arrow's value-by-value ``to_pylist`` (a page's cursor column cost ~14 ms on PostgreSQL);
    a time zone, nanoseconds or NULL integers go through ``to_pylist``."""
    t = column.type
    if pa.types.is_timestamp(t) and t.tz is None and t.unit != "ns":
        return column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False).astype(object)
    if (pa.types.is_signed_integer(t) or (pa.types.is_integer(t) and t.bit_width < 64)) and not column.null_count:
        return column.cast(pa.int64()).to_numpy().astype(object)
    return column.to_pylist()


def declared_type(column: sa.ColumnElement[Any]) -> sa.types.TypeEngine[Any]:
    """The type a page's column is declared with, under its label and SQLite's untyped read."""
    element = getattr(column, "element", column)
    element = getattr(element, "clause", element) if isinstance(element, sa.sql.elements.TypeCoerce) else element
    return element.type


def _sqlite_affinity(declared: sa.types.TypeEngine[Any]) -> str:
    """SQLite's column affinity from a declared type name (https://sqlite.org/datatype3.html §3.1)."""
    try:
        text = str(declared).upper()
    except Exception:  # a type without a default rendering
        return "NUMERIC"
    if any(k in text for k in ("DATE", "TIME")):  # ISO text in practice (SQLAlchemy writes it so)
        return "TEXT"
    if "INT" in text:
        return "INTEGER"
    if any(k in text for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in text or not text:
        return "BLOB"
    if any(k in text for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"
