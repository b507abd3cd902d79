"""What differs between the databases altcraft-sync reads and keeps its state in, in one object per
database: the clock, reading values (raw or typed, prices as text), ``key IN (...)`` and how many keys one
lookup takes, the keyset "after" condition, and upserts. The shop source and the state store ask their
:class:`Dialect`; no other module branches on a database's name."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

IN_BATCH = 900
"""Keys one ``IN (...)`` list takes (SQLite's default parameter limit is 999)."""
ANY_BATCH = 20_000
"""Keys one lookup takes where they travel as one parameter (PostgreSQL's array, SQLite's JSON)."""
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38)
"""SQLite's JSON functions are built in (before 3.38 they were a compile option)."""

Excluded = Callable[[Any], dict[str, Any]]
"""Extra ``SET`` values of an upsert, given the row being inserted (``excluded`` / ``inserted``)."""


class Dialect:
    """The portable behaviour; each database's subclass overrides what it does better or differently."""

    name = "generic"
    raw_reads = False
    """Read values exactly as stored, without SQLAlchemy's type processors (SQLite)."""
    key_batch = IN_BATCH
    has_fast_ledger_upsert = False
    """``INSERT ... ON CONFLICT DO UPDATE`` on the DBAPI cursor (the ledger's hot write)."""
    placeholder = "%s"

    def clock(self, conn: sa.Connection) -> datetime:
        """The database's own clock, as aware UTC."""
        value = conn.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar()
        assert isinstance(value, datetime)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def read(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """A column as a page reads it."""
        return sa.type_coerce(column, sa.types.NullType()) if self.raw_reads else column

    def read_money(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """A price as the database's own decimal text: as exact as the driver's ``Decimal``, and a str is
        cheaper to read, to pickle to a map worker and to convert."""
        return sa.cast(column, sa.String())

    def key_in(self, column: sa.ColumnElement[Any], keys: list[Any]) -> sa.ColumnElement[bool]:
        """``column IN (keys)``, at most :attr:`key_batch` keys."""
        return column.in_(keys)

    def key_order(self, column: sa.ColumnElement[Any], nullable: bool) -> sa.ColumnElement[Any]:
        """The key as the keyset orders it: NULLs first within a time, as SQLite and MySQL sort them by
        default, so that a page's cursor has passed every NULL key of its time (the keyset condition can
        never select a NULL key again) and a page ending on one is completed (``shop_db``)."""
        return column

    def after(self, ts: sa.ColumnElement[Any], pk: sa.ColumnElement[Any], at: Any,
              after_pk: Any) -> sa.ColumnElement[bool]:
        """The keyset condition ``(ts, pk) > (at, after_pk)``, written ``ts >= at AND (ts > at OR pk > p)``:
        the leading range keeps one index range scan in index order (the textbook ``ts > t OR (ts = t AND
        pk > p)`` makes SQLite use a multi-index OR plus a sort of every remaining row, on every page)."""
        return sa.and_(ts >= at, sa.or_(ts > at, pk > after_pk))

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
               update: list[str], extra: Excluded | None = None) -> None:
        """Insert ``rows`` or update ``update`` (and ``extra``) where ``keys`` exist. Portable fallback:
        delete + insert in the caller's transaction."""
        for row in rows:
            conn.execute(table.delete().where(*[table.c[k] == row[k] for k in keys]))
        conn.execute(table.insert(), rows)

    def ledger_stamp(self, ts: datetime) -> str | datetime:
        """A timestamp as the fast ledger upsert binds it."""
        return ts

    def on_conflict(self, keys: list[str]) -> str:
        """The hand-written upsert's conflict clause, up to its assignments."""
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET"

    def incoming(self, column: str) -> str:
        """The value a hand-written upsert's row brings for ``column``."""
        return f"excluded.{column}"

    def missing_file(self, url: sa.URL) -> str | None:
        """The database file a URL names that does not exist (a file database would create it empty)."""
        return None

    def previews_stored_bytes(self) -> bool:
        """Whether an unreadable text value's stored bytes can be read back (``CAST(x AS BLOB)``)."""
        return False

    def tune_state(self, engine: sa.Engine) -> None:
        """Settings the state store's connections need on this database (none by default)."""

    def has_latin1_columns(self) -> bool:
        """Whether text columns may be declared latin1 (MySQL/MariaDB's cp1252), so that UTF-8 bytes written
        through a wrong connection charset come back double-encoded (``source.utf8_in_latin1``)."""
        return False

    def notes_url(self, url: str) -> str | None:
        """Where the state store keeps its in-flight notes, when not in its own database."""
        return None

    columnar: str | None = None
    """The columnar reader of this database (``connectors.columnar``); None: pages are read as rows."""

    def columnar_reader(self, url: sa.URL) -> tuple[Any, str]:
        """The columnar reader for ``url`` (None when there is none here) and, when None, why."""
        from connectors import columnar

        kind: type[columnar.ColumnarReader] | None = getattr(columnar, self.columnar, None) if self.columnar else None
        if kind is None:
            return None, f"no columnar reader for {self.name}"
        if not kind.installed():
            return None, f"{kind.module} is not installed"
        return kind(url), ""


class SQLite(Dialect):
    name = "sqlite"
    columnar = "AdbcSQLite"
    raw_reads = True
    key_batch = ANY_BATCH if SQLITE_JSON else IN_BATCH
    has_fast_ledger_upsert = True
    placeholder = "?"

    def clock(self, conn: sa.Connection) -> datetime:
        value = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def read_money(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.read(column)  # stored as REAL or text: read as stored

    def key_in(self, column: sa.ColumnElement[Any], keys: list[Any]) -> sa.ColumnElement[bool]:
        """``column IN (SELECT value FROM json_each(:json))``: one parameter instead of one per key (an IN
        list of 900 parameters cost more to render and parse than to run). SQLite applies the column's
        affinity to the values, so text keys still match an integer column, and its index is used."""
        if SQLITE_JSON and all(type(k) in (int, str) for k in keys):
            as_json: sa.BindParameter[str] = sa.bindparam(None, orjson.dumps(keys).decode())
            return column.in_(sa.select(sa.literal_column("value")).select_from(sa.func.json_each(as_json)))
        return column.in_(keys)

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
               update: list[str], extra: Excluded | None = None) -> None:
        # each dialect's module is imported where it is used: a run loads only its own databases' dialects
        # (a SQLite run spent 27 ms importing PostgreSQL's and MySQL's)
        from sqlalchemy.dialects import sqlite as sqlite_dialect

        _on_conflict_update(conn, sqlite_dialect.insert(table), rows, keys, update, extra)

    def ledger_stamp(self, ts: datetime) -> str | datetime:
        return ts.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def missing_file(self, url: sa.URL) -> str | None:
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:") and not Path(database).exists():
            return database
        return None

    def previews_stored_bytes(self) -> bool:
        return True

    def tune_state(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "connect", _state_pragmas)

    def columnar_reader(self, url: sa.URL) -> tuple[Any, str]:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None, "an in-memory or URI SQLite database is read as rows"
        return super().columnar_reader(url)

    def notes_url(self, url: str) -> str | None:
        """A file beside the state file: a note is written just before a push, while the previous chunk's
        commit holds the state file's one write lock; a second file never waits for it."""
        return None if url.startswith("sqlite:///:memory:") or url == "sqlite://" else f"{url}.in-flight"


def _state_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never block the committing thread), and room for the ledger's write pattern: a chunk's
    records land at random places of the (entity, external_id) key, so each commit dirties thousands of
    index pages. A larger page cache than SQLite's default (per connection: each of the pool's fills its
    own) and checkpoints every ~80 MB of WAL keep a page from being written and checkpointed several times
    a chunk; ``journal_size_limit`` shrinks the WAL file back after a checkpoint. Figures: bench/README."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-4096")
    cur.execute("PRAGMA wal_autocheckpoint=20000")
    cur.execute("PRAGMA journal_size_limit=67108864")
    cur.close()


class PostgreSQL(Dialect):
    name = "postgresql"
    columnar = "AdbcPostgreSQL"
    key_batch = ANY_BATCH
    has_fast_ledger_upsert = True

    def key_order(self, column: sa.ColumnElement[Any], nullable: bool) -> sa.ColumnElement[Any]:
        """PostgreSQL sorts NULLs last: ask for them first, but only where the key may be NULL (a user
        query, a nullable column), so a key index still serves the keyset's order everywhere else."""
        return column.asc().nulls_first() if nullable else column

    def key_in(self, column: sa.ColumnElement[Any], keys: list[Any]) -> sa.ColumnElement[bool]:
        """``column = ANY(:array)``: one parameter instead of one per key."""
        item = column.type
        if isinstance(item, sa.types.NullType):  # a user query's column: type the array from the keys
            item = sa.BigInteger() if all(isinstance(k, int) for k in keys) else sa.Text()
        from sqlalchemy.dialects import postgresql as pg_dialect

        return column == sa.any_(sa.bindparam(None, keys, type_=pg_dialect.ARRAY(item)))

    def after(self, ts: sa.ColumnElement[Any], pk: sa.ColumnElement[Any], at: Any,
              after_pk: Any) -> sa.ColumnElement[bool]:
        return sa.tuple_(ts, pk) > sa.tuple_(at, after_pk)  # row-value comparison: one index range scan

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
               update: list[str], extra: Excluded | None = None) -> None:
        from sqlalchemy.dialects import postgresql as pg_dialect

        _on_conflict_update(conn, pg_dialect.insert(table), rows, keys, update, extra)


class MySQL(Dialect):
    name = "mysql"
    columnar = "ConnectorXMySQL"
    has_fast_ledger_upsert = True

    def has_latin1_columns(self) -> bool:
        return True

    def ledger_stamp(self, ts: datetime) -> str | datetime:
        return ts.astimezone(UTC).replace(tzinfo=None)

    def on_conflict(self, keys: list[str]) -> str:
        return "ON DUPLICATE KEY UPDATE"

    def incoming(self, column: str) -> str:
        return f"VALUES({column})"

    def clock(self, conn: sa.Connection) -> datetime:
        value = conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar()
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str],
               update: list[str], extra: Excluded | None = None) -> None:
        from sqlalchemy.dialects import mysql as mysql_dialect

        ins = mysql_dialect.insert(table)
        values: dict[str, Any] = {c: ins.inserted[c] for c in update}
        if extra:
            values.update(extra(ins.inserted))
        conn.execute(ins.on_duplicate_key_update(values), rows)


def _on_conflict_update(conn: sa.Connection, ins: Any, rows: list[dict[str, Any]], keys: list[str], update: list[str],
                        extra: Excluded | None) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite and PostgreSQL spell it alike)."""
    values: dict[str, Any] = {c: ins.excluded[c] for c in update}
    if extra:
        values.update(extra(ins.excluded))
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=values), rows)


def dialect_of(engine: sa.Engine) -> Dialect:
    """The dialect object of an engine's database (MariaDB is MySQL's)."""
    by_name: dict[str, type[Dialect]] = {"sqlite": SQLite, "postgresql": PostgreSQL, "mysql": MySQL, "mariadb": MySQL}
    return by_name.get(engine.dialect.name, Dialect)()
