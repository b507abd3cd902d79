"""The shop database source: any schema, through the validated mapping in the config.

Reads follow ``../shared/design/sync-correctness.md``:

- Keyset pages on ``(updated_at, primary key)``: ``WHERE (ts, pk) > (:ts, :pk) AND ts <= :upper ORDER BY
  ts, pk LIMIT :n``, one short query per page. Exact and tie-safe (equal timestamps across a page boundary
  are each read once), O(1) state, index-backed, and no long-lived cursor or snapshot.
- Cursor values are compared in the column's own representation, as bound parameters: SQLite columns are
  read raw (the stored text) and compared as that text, PostgreSQL/MySQL values as the driver's naive or
  aware datetimes. A watermark round-trips through the state store without losing precision or offset.
- The upper bound comes from the database's own clock minus a safety margin, in the column's
  representation (naive columns are taken to be in ``source.timezone``).
- Children (order lines, SKU regional rows) are read on their own cursor; a changed child makes its parent
  eligible (parent propagation). Parents are always fetched with all of their children.
- Identifiers from the config go through SQLAlchemy (reflected tables, quoted columns); no SQL is built
  from config strings except the user's own SELECT, which is wrapped as a subquery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from altcraft_sync import streams as registry
from altcraft_sync.catalogue import LINE_STATUSES, MONEY_FIELDS, ORDER_STATUSES
from altcraft_sync.config import Config
from altcraft_sync.errors import ConfigError, SourceError
from altcraft_sync.sources import ChildSource, OrdersStream, TableSource
from connectors.dbretry import RetryPolicy, first_line, is_transient, retrying

log = logging.getLogger("altcraft_sync.shop_db")

PK, TS, DELETED, PARENT = "_pk", "_ts", "_deleted", "_parent"
CF_PREFIX = "cf."
MATCH_PREFIX = "m."
IN_BATCH = 900
ANY_BATCH = 20_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position ``(updated_at, pk)`` in the column's native representation.

    ``pk is None`` means "every row with ``updated_at`` strictly after ``ts``" (used for the lookback start).
    """

    ts: Any
    pk: Any = None

    def to_json(self) -> str:
        ts, pk = self.ts, self.pk
        value: str | int | float
        if isinstance(ts, datetime):
            kind, value = ("aware" if ts.tzinfo else "naive"), ts.isoformat()
        elif isinstance(ts, date):
            kind, value = "date", ts.isoformat()
        elif isinstance(ts, (int, float)):
            kind, value = "number", ts
        else:
            kind, value = "raw", str(ts)
        pk_kind = "int" if isinstance(pk, int) else ("none" if pk is None else "str")
        return orjson.dumps({"ts": value, "kind": kind, "pk": pk if pk_kind != "str" else str(pk),
                             "pk_kind": pk_kind}).decode()

    @classmethod
    def from_json(cls, text: str) -> Cursor:
        d = orjson.loads(text)
        kind, value = d["kind"], d["ts"]
        if kind in ("aware", "naive"):
            ts: Any = datetime.fromisoformat(value)
        elif kind == "date":
            ts = date.fromisoformat(value)
        else:
            ts = value
        pk = d["pk"]
        return cls(ts, int(pk) if d["pk_kind"] == "int" else pk)

    def as_datetime(self, tz: ZoneInfo) -> datetime | None:
        """The cursor time as an aware UTC datetime (for lag figures), whatever its representation."""
        return to_utc(self.ts, tz)


def to_utc(value: Any, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz).astimezone(UTC)
    return None


@dataclass
class Entity:
    """One bound, validated source: a reflected table or the user's SELECT as a subquery."""

    name: str
    path: str
    spec: TableSource
    source: sa.FromClause
    pk: sa.ColumnElement[Any]
    ts: sa.ColumnElement[Any]
    columns: list[sa.ColumnElement[Any]] = field(default_factory=list)
    parent: sa.ColumnElement[Any] | None = None

    def col(self, name: str) -> sa.ColumnElement[Any]:
        return self.source.c[name]


class ShopSource:
    """Read access to the shop database for every configured stream."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tz = ZoneInfo(config.source.timezone)
        url = config.source.url.get_secret_value()
        self.display_url = config.source.display_url()
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True, future=True)
        except (SQLAlchemyError, ValueError, ImportError) as err:
            raise ConfigError(f"source.url: cannot use {self.display_url}: {type(err).__name__}") from None
        self.dialect = self.engine.dialect.name
        database = self.engine.url.database
        if self.dialect == "sqlite" and database and database != ":memory:" and not database.startswith("file:") \
                and not Path(database).exists():
            # SQLite would create an empty database and the run would find no tables: say what is wrong
            raise ConfigError(f"source.url: SQLite file {database} does not exist (check the path; it is relative "
                              f"to {Path.cwd()})")
        self.raw = self.dialect == "sqlite"
        r = config.source.retry
        self.retry = RetryPolicy(r.max_attempts, r.max_retry_seconds, r.backoff_initial, r.backoff_max)
        self.entities: dict[str, Entity] = {}
        self._ts_shape: dict[str, tuple[str, str, int]] = {}

    def close(self) -> None:
        self.engine.dispose()

    # --- binding and validation against the live database ----------------------------------------
    def bind(self) -> list[str]:
        """Reflect the mapped tables/queries and check every setting; returns warnings.

        Raises ``ConfigError`` naming the setting (unknown table or column, unmapped status value) and
        ``SourceError`` when the database cannot be reached. Nothing is read or sent before this passes.
        """
        warnings: list[str] = []
        streams = self.config.streams
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                for name in self.config.enabled_streams():
                    spec = streams.section(name)
                    assert spec is not None
                    self.entities[name] = self._bind(conn, name, f"streams.{name}", spec)
                    child = registry.get(name).child
                    child_source: ChildSource | None = getattr(spec, child.name, None) if child else None
                    if child is not None and child_source is not None:
                        self.entities[f"{name}.{child.name}"] = self._bind(
                            conn, f"{name}.{child.name}", f"streams.{name}.{child.name}", child_source)
                for ent in self.entities.values():
                    nulls = conn.execute(sa.select(sa.func.count()).select_from(ent.source).where(ent.ts.is_(None))).scalar()
                    if nulls:
                        warnings.append(
                            f"{ent.path}.updated_at: {nulls} rows have NULL {ent.spec.updated_at} and cannot be synced "
                            "incrementally until it is set"
                        )
        except (ConfigError, SourceError):
            raise
        except DBAPIError as err:
            if err.connection_invalidated or isinstance(err, sa.exc.OperationalError):
                raise SourceError(f"shop database {self.display_url} is unreachable: {first_line(err.orig)}") from None
            raise SourceError(f"shop database {self.display_url}: {first_line(err.orig)}") from None
        except SQLAlchemyError as err:
            raise SourceError(f"shop database {self.display_url}: {type(err).__name__}: {first_line(err)}") from None
        return warnings

    def probe_reads(self) -> None:
        """Run each entity's page query once, limited to one row, exactly as a sync builds it (a child's
        joined to its parent's source): what ``check`` passes, ``sync`` runs."""
        for name, ent in self.entities.items():
            stream = name.split(".")[0]
            skip = (stream, None, self.upper_bound(stream, 0)) if name != stream else None
            try:
                next(self.read_changes(name, None, self.upper_bound(name, 0), 1, keys_only=name != stream,
                                       skip_parents_in=skip), None)
            except SourceError as err:
                raise ConfigError(f"{ent.path}: the page query a sync runs fails: {err}") from None

    def check_values(self, since: dict[str, Cursor | None] | None = None) -> None:
        """Every shop status value must map to an Altcraft status; one-line ``ConfigError`` otherwise.

        ``since`` limits the check per entity to rows after a cursor (an index range): an incremental run
        checks exactly the rows it may read, instead of grouping millions of rows on every run. Without it
        (the first run, ``altcraft-sync check``) every row is checked."""
        spec = self.config.streams.section("orders")
        if not isinstance(spec, OrdersStream):
            return
        line_allowed = set(LINE_STATUSES) | {s.external_id for s in self.config.custom_line_statuses}
        checks: list[tuple[str, dict[str, str], Collection[str], str]] = [
            ("orders", spec.status_map, ORDER_STATUSES, "streams.orders.status_map")]
        if "status" in spec.lines.columns:
            checks.append(("orders.lines", spec.lines.status_map, line_allowed, "streams.orders.lines.status_map"))
        try:
            with self.engine.connect() as conn:
                for entity, value_map, allowed, path in checks:
                    self._check_values(conn, entity, "status", value_map, allowed, path, (since or {}).get(entity))
        except DBAPIError as err:
            raise SourceError(f"shop database {self.display_url}: {first_line(err.orig)}") from None

    def _bind(self, conn: sa.Connection, name: str, path: str, spec: TableSource) -> Entity:
        if spec.table:
            try:
                source: sa.FromClause = sa.Table(spec.table, sa.MetaData(), schema=spec.db_schema, autoload_with=conn)
            except NoSuchTableError:
                raise ConfigError(f"{path}.table: table {spec.table!r} does not exist in {self.display_url}") from None
        else:
            try:
                assert spec.query is not None  # the settings model requires a table or a query
                probe = conn.execute(sa.select(sa.text("*")).select_from(sa.text(f"({spec.query}) AS altcraft_probe")).limit(0))
            except DBAPIError as err:
                raise ConfigError(f"{path}.query: the SELECT fails: {first_line(err.orig)}") from None
            names = list(probe.keys())
            # one alias per entity: a child's page joins its parent's source (both may be queries)
            source = sa.text(spec.query).columns(*[sa.column(n) for n in names]).subquery(f"src_{name.replace('.', '_')}")
        available = set(source.c.keys())

        def need(setting: str, column: str) -> sa.ColumnElement[Any]:
            if column not in available:
                where = f"table {spec.table!r}" if spec.table else "the query's result"
                raise ConfigError(f"{path}.{setting}: column {column!r} is not in {where}")
            return source.c[column]

        pk = need("primary_key", spec.primary_key)
        ts = need("updated_at", spec.updated_at)
        cols: list[sa.ColumnElement[Any]] = [self._read(pk).label(PK), self._read(ts).label(TS)]
        if spec.deleted_flag:
            cols.append(self._read(need("deleted_flag", spec.deleted_flag)).label(DELETED))
        parent = None
        if isinstance(spec, ChildSource):
            parent = need("parent_key", spec.parent_key)
            cols.append(self._read(parent).label(PARENT))
        for fld, column in spec.columns.items():
            read = self._read_money if fld in MONEY_FIELDS else self._read
            cols.append(read(need(f"columns.{fld}", column)).label(fld))
        for cf_id, column in spec.custom_fields.items():
            cols.append(self._read(need(f"custom_fields.{cf_id}", column)).label(CF_PREFIX + cf_id))
        if isinstance(spec, OrdersStream):
            for fld, column in spec.matching.columns.items():
                cols.append(self._read(need(f"matching.columns.{fld}", column)).label(MATCH_PREFIX + fld))
        return Entity(name, path, spec, source, pk, ts, cols, parent)

    def _passes_through(self, query: sa.Select[Any]) -> bool:
        """Whether no selected column has a result processor (SQLite reads everything untyped; on
        PostgreSQL prices are read as text, so order and line pages have none; MySQL booleans do)."""
        dialect = self.engine.dialect
        return self.raw or all(_no_processor(c, dialect) for c in query.selected_columns)

    def _read_money(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Prices on PostgreSQL/MySQL as the database's own decimal text (``CAST(x AS VARCHAR)``): as exact as
        the driver's ``Decimal``, but a str is several times cheaper to read, to pickle to a map worker
        and to convert (a 200k-order PostgreSQL sync spent 3.7 s pickling Decimals alone)."""
        return self._read(column) if self.raw else sa.cast(column, sa.String())

    def _read(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """On SQLite read values exactly as stored (no per-value type processors: faster, and the raw
        text of a timestamp is what SQLite itself compares)."""
        return sa.type_coerce(column, sa.types.NullType()) if self.raw else column

    def _check_values(self, conn: sa.Connection, entity: str, fld: str, value_map: dict[str, str],
                      allowed: Iterable[str], path: str, since: Cursor | None = None) -> None:
        ent = self.entities[entity]
        column = ent.col(ent.spec.columns[fld])
        allowed = set(allowed)
        # rows marked deleted are deleted in Altcraft, never sent: their status (WooCommerce's 'trash')
        # needs no mapping
        group = [column, ent.col(ent.spec.deleted_flag)] if ent.spec.deleted_flag else [column]
        query = sa.select(*group, sa.func.count()).select_from(ent.source).group_by(*group)
        after = self._after(ent, since)
        if after is not None:
            query = query.where(after)
        rows = conn.execute(query).all()
        for row in rows:
            value, count, deleted = row[0], row[-1], row[1] if len(row) == 3 else None
            if value is None or _is_true(deleted):
                continue
            key = str(value)
            if key not in value_map and key not in allowed:
                raise ConfigError(
                    f"{path}: shop value {key!r} ({count} rows in {ent.spec.source_name()}.{ent.spec.columns[fld]}) "
                    "has no mapping to an Altcraft status"
                )

    # --- clock and bounds ------------------------------------------------------------------------
    def db_now(self) -> datetime:
        """The database's own clock, as aware UTC (never this machine's clock: writers use the DB's)."""
        def once() -> datetime:
            with self.engine.connect() as conn:
                value: Any
                if self.dialect == "sqlite":
                    value = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
                    return datetime.fromisoformat(value).replace(tzinfo=UTC)
                if self.dialect in ("mysql", "mariadb"):
                    value = conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar()
                    return value.replace(tzinfo=UTC)
                value = conn.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar()
                return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

        return self._retrying("clock read", once)

    def max_cursor_ts(self, entity: str) -> Any:
        """The newest ``updated_at`` (``ORDER BY ... DESC LIMIT 1``: index-backed even through a user's
        SELECT, where ``MAX()`` makes SQLite scan)."""
        ent = self.entities[entity]
        ts = self._read(ent.ts)
        _, rows = self._fetch(sa.select(ts).select_from(ent.source).where(ts.is_not(None)).order_by(ts.desc()).limit(1))
        return _plain(rows[0][0]) if rows else None

    def upper_bound(self, entity: str, margin_seconds: float, now: datetime | None = None) -> Any:
        """``db_now - margin`` in the representation of the entity's ``updated_at`` values."""
        bound = (now or self.db_now()) - timedelta(seconds=margin_seconds)
        return self.to_native(entity, bound)

    def to_native(self, entity: str, moment: datetime) -> Any:
        """An aware moment in the representation of the entity's cursor column."""
        sample = self.max_cursor_ts(entity) if entity not in self._ts_shape else None
        shape = self._ts_shape.get(entity) or self._shape(sample)
        self._ts_shape[entity] = shape
        kind, sep, digits = shape
        local = moment.astimezone(self.tz)
        if kind == "aware":
            return moment
        if kind == "naive":
            return local.replace(tzinfo=None)
        text = local.replace(tzinfo=None).isoformat(sep=sep, timespec="microseconds")
        if digits == 0:
            text = text[:19]
        elif digits < 6:
            text = text[: 20 + digits]
        return text

    def _shape(self, sample: Any) -> tuple[str, str, int]:
        if isinstance(sample, datetime):
            return ("aware" if sample.tzinfo else "naive", " ", 6)
        if isinstance(sample, str):
            sep = "T" if "T" in sample[:11] else " "
            frac = sample[20:].split("+")[0].rstrip("Z") if len(sample) > 19 and sample[19] == "." else ""
            return ("raw", sep, len(frac) if frac else 0)
        return ("raw", " ", 6) if self.raw else ("naive", " ", 6)

    def lookback_start(self, entity: str, cursor: Cursor, seconds: float) -> Cursor:
        """A start ``seconds`` behind ``cursor`` (rows strictly after that time are re-read)."""
        if seconds <= 0:
            return cursor
        moment = to_utc(cursor.ts, self.tz)
        if moment is None:
            return cursor
        return Cursor(self.to_native(entity, moment - timedelta(seconds=seconds)), None)

    # --- reads -------------------------------------------------------------------------------------
    def _after(self, ent: Entity, start: Cursor | None) -> sa.ColumnElement[bool] | None:
        if start is None:
            return None
        ts = self._read(ent.ts)
        if start.pk is None:
            return ts > sa.literal(start.ts, ts.type)
        pk = self._read(ent.pk)
        at, after_pk = sa.literal(start.ts, ts.type), sa.literal(start.pk, pk.type)
        if self.dialect == "postgresql":  # row-value comparison: one index range scan
            return sa.tuple_(ts, pk) > sa.tuple_(at, after_pk)
        # (ts, pk) > (t, p) written as ``ts >= t AND (ts > t OR pk > p)``: the leading range keeps one index
        # range scan in index order. The textbook ``ts > t OR (ts = t AND pk > p)`` makes SQLite use a
        # multi-index OR plus a sort of every remaining row, on every page: quadratic in the table size.
        return sa.and_(ts >= at, sa.or_(ts > at, pk > after_pk))

    def read_changes(
        self, entity: str, start: Cursor | None, upper: Any, limit: int, *, keys_only: bool = False,
        skip_parents_in: tuple[str, Cursor | None, Any] | None = None,
    ) -> Iterator[tuple[pd.DataFrame, Cursor]]:
        """Yield pages of rows in ``(start, upper]`` ordered by ``(updated_at, pk)``, each with the cursor of
        its last row. One short query per page: memory is bounded by ``limit`` whatever the table size.

        ``skip_parents_in=(parent_entity, parent_start, parent_upper)`` (children only) leaves out child
        rows whose parent lies in that range of the parent's cursor: the parent cursor already read those
        parents in this run. Filtering in SQL keeps a first sync from fetching every order twice."""
        ent = self.entities[entity]
        cols = ent.columns[:2] + ([self._read(ent.parent).label(PARENT)] if keys_only and ent.parent is not None else [])
        if not keys_only:
            cols = ent.columns
        ts = self._read(ent.ts)
        pk = self._read(ent.pk)
        source: sa.FromClause = ent.source
        covered = None
        if skip_parents_in is not None and ent.parent is not None:
            parent = self.entities[skip_parents_in[0]]
            source = ent.source.join(parent.source, parent.pk == ent.parent)
            p_ts = self._read(parent.ts)
            covered = p_ts <= sa.literal(skip_parents_in[2], p_ts.type)
            p_after = self._after(parent, skip_parents_in[1])
            if p_after is not None:
                covered = sa.and_(covered, p_after)
        cursor = start
        while True:
            query = sa.select(*cols).select_from(source).where(ts <= sa.literal(upper, ts.type))
            if covered is not None:
                query = query.where(sa.not_(covered))
            after = self._after(ent, cursor)
            if after is not None:
                query = query.where(after)
            query = query.order_by(ts, pk).limit(limit)
            keys, rows = self._fetch(query)
            if not rows:
                return
            last = rows[-1]
            cursor = Cursor(_plain(last[1]), _plain(last[0]))
            yield _frame(keys, rows), cursor
            if len(rows) < limit:
                return

    def last_cursor(self, entity: str, upper: Any) -> Cursor | None:
        """The keyset position of the newest row at or before ``upper`` (index-backed)."""
        ent = self.entities[entity]
        ts, pk = self._read(ent.ts), self._read(ent.pk)
        _, rows = self._fetch(sa.select(ts, pk).select_from(ent.source).where(ts <= sa.literal(upper, ts.type))
                              .order_by(ts.desc(), pk.desc()).limit(1))
        return Cursor(_plain(rows[0][0]), _plain(rows[0][1])) if rows else None

    def has_rows_between(self, entity: str, start: Cursor | None, upper: Any) -> bool:
        """Whether any row lies after ``start`` and at or before ``upper``: after a run has read up to
        ``upper``, a yes means the watermark is stuck (the stale check)."""
        ent = self.entities[entity]
        ts = self._read(ent.ts)
        query = sa.select(sa.literal(1)).select_from(ent.source).where(ts <= sa.literal(upper, ts.type))
        after = self._after(ent, start)
        if after is not None:
            query = query.where(after)
        _, rows = self._fetch(query.limit(1))
        return bool(rows)

    def fetch_by_keys(self, entity: str, keys: Sequence[Any], *, by_parent: bool = False) -> pd.DataFrame:
        """Rows whose primary key (or, for children, parent key) is in ``keys``; any order."""
        ent = self.entities[entity]
        column = ent.parent if by_parent else ent.pk
        assert column is not None
        frames = []
        out_keys: list[str] = [str(c.key) for c in ent.columns]
        batch = ANY_BATCH if self.dialect == "postgresql" else IN_BATCH
        for start in range(0, len(keys), batch):
            part = [_plain(k) for k in keys[start:start + batch]]
            out_keys, rows = self._fetch(sa.select(*ent.columns).where(self._key_in(column, part)))
            if rows:
                frames.append(_frame(out_keys, rows))
        if not frames:
            return _frame(out_keys, [])
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _key_in(self, column: sa.ColumnElement[Any], keys: list[Any]) -> sa.ColumnElement[bool]:
        """``column IN (keys)``; on PostgreSQL ``column = ANY(:array)``, one parameter instead of one per key:
        an IN list of 900 parameters cost more to render and for psycopg to parse than to run (2.2 s of a
        200k-order sync)."""
        if self.dialect != "postgresql":
            return column.in_(keys)
        item = column.type
        if isinstance(item, sa.types.NullType):  # a user query's column: type the array from the keys
            item = sa.BigInteger() if all(isinstance(k, int) for k in keys) else sa.Text()
        return column == sa.any_(sa.bindparam(None, keys, type_=postgresql.ARRAY(item)))

    def iter_keys(self, entity: str, limit: int = 50_000) -> Iterator[pd.DataFrame]:
        """All current rows' key columns (primary key, external_id, deleted flag), in pk pages: for
        reconciling hard deletes without loading the table."""
        ent = self.entities[entity]
        cols = [c for c in ent.columns if c.key in (PK, DELETED, "external_id")]
        pk = self._read(ent.pk)
        last = None
        while True:
            query = sa.select(*cols).order_by(pk).limit(limit)
            if last is not None:
                query = query.where(pk > sa.literal(last, pk.type))
            keys, rows = self._fetch(query)
            if not rows:
                return
            last = _plain(rows[-1][keys.index(PK)])
            yield _frame(keys, rows)

    def _fetch(self, query: sa.Select[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        def once() -> tuple[list[str], list[tuple[Any, ...]]]:
            with self.engine.connect() as conn:
                result = conn.execute(query)
                if self._passes_through(query):
                    # SQLAlchemy would hand the driver's values through unchanged: take the rows from the
                    # DBAPI cursor and skip building a Row per row and a tuple per Row (~2 us a row, a
                    # fifth of a full sync's reading).
                    return list(result.keys()), cast(list[tuple[Any, ...]], result.cursor.fetchall())
                return list(result.keys()), [tuple(r) for r in result.fetchall()]

        return self._retrying("read", once)

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn`` re-run on transient errors (a page is one query: re-reading it is exact); a permanent
        error, or a transient one past the retry caps, becomes a one-line ``SourceError`` with its cause."""
        try:
            return retrying(self.retry, f"shop database {what}", fn)
        except DBAPIError as err:
            kind = "unreachable" if is_transient(err) else "error"
            raise SourceError(f"shop database {self.display_url} {kind} during {what}: {first_line(err)}") from err


def _is_true(value: Any) -> bool:
    """A deleted flag's truth as the transforms read it (``transforms.values.booleans``: bool, 0/1, text)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on") if value is not None else False


def _no_processor(column: sa.ColumnElement[Any], dialect: sa.Dialect) -> bool:
    return column.type.dialect_impl(dialect).result_processor(dialect, None) is None


def _plain(value: Any) -> Any:
    """numpy/pandas scalars back to plain Python values for bound parameters and JSON."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _frame(keys: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows to a frame with inferred column types, except the key and cursor columns, which keep the
    driver's own values (object). ``from_records`` transposes in C: a third faster than ``zip(*rows)``."""
    if not rows:
        return pd.DataFrame({k: pd.Series([], dtype=object) for k in keys})
    frame = pd.DataFrame.from_records(rows, columns=keys, coerce_float=False)
    for k in (TS, PK):
        if k in frame:
            i = keys.index(k)
            frame[k] = pd.Series([r[i] for r in rows], dtype=object)
    return frame
