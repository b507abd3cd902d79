"""Binding a mapping to the live shop database: each stream's table or SELECT reflected, every configured
column checked, the status values checked against their maps. Nothing is read or sent before this passes.
The base of :class:`connectors.shop_db.ShopSource`, which adds the reads."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from altcraft_sync import streams as registry
from altcraft_sync.catalogue import LINE_STATUSES, MONEY_FIELDS, ORDER_STATUSES
from altcraft_sync.config import Config
from altcraft_sync.cursor import CF_PREFIX, DELETED, PARENT, PK, TS, Cursor
from altcraft_sync.errors import ConfigError, SourceError
from altcraft_sync.sources import ChildSource, OrdersStream, TableSource
from connectors.dbretry import RetryPolicy, first_line
from connectors.dialect import dialect_of
from connectors.shop_columns import ColumnarPages, processed


@dataclass
class Entity:
    """One bound, validated source: a reflected table or the user's SELECT as a subquery."""

    name: str
    path: str
    spec: TableSource
    source: sa.FromClause
    pk: sa.ColumnElement[Any]
    ts: sa.ColumnElement[Any] | None
    """None: no ``updated_at``; the entity is read in full, by key (keyset on the key alone)."""
    columns: list[sa.ColumnElement[Any]] = field(default_factory=list)
    parent: sa.ColumnElement[Any] | None = None

    def col(self, name: str) -> sa.ColumnElement[Any]:
        return self.source.c[name]


class SourceBinding:
    """The connection and the bound entities (``entities``: stream and child names -> :class:`Entity`)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tz = ZoneInfo(config.source.timezone)
        url = config.source.url.get_secret_value()
        self.display_url = config.source.display_url()
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True, future=True)
        except (SQLAlchemyError, ValueError, ImportError) as err:
            raise ConfigError(f"source.url: cannot use {self.display_url}: {type(err).__name__}") from None
        self.sql = dialect_of(self.engine)
        self.dialect = self.sql.name
        missing = self.sql.missing_file(self.engine.url)
        if missing is not None:
            # SQLite would create an empty database and the run would find no tables: say what is wrong
            raise ConfigError(f"source.url: SQLite file {missing} does not exist (check the path; it is relative "
                              f"to {Path.cwd()})")
        self.raw = self.sql.raw_reads
        self.columns = ColumnarPages(config.source.reader, self.sql, self.engine)
        r = config.source.retry
        self.retry = RetryPolicy(r.max_attempts, r.max_retry_seconds, r.backoff_initial, r.backoff_max)
        self.entities: dict[str, Entity] = {}
        self._ts_shape: dict[str, tuple[str, str, int]] = {}
        self._latin1_warned: set[tuple[str, str]] = set()
        """(entity path, column) already warned about UTF-8 read through latin1: once each, not once a page."""

    def close(self) -> None:
        self.columns.close()
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
                    if ent.ts is None:
                        continue
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

    def status_checks(self) -> list[tuple[str, str, dict[str, str], Collection[str], str]]:
        """The status columns whose shop values must map to Altcraft statuses: (stream, entity, the map,
        the Altcraft values it may map to, the setting's path). What to check follows from the settings
        model (an orders-like section and its lines), not from a stream's name."""
        line_allowed = set(LINE_STATUSES) | {s.external_id for s in self.config.custom_line_statuses}
        out: list[tuple[str, str, dict[str, str], Collection[str], str]] = []
        for name in self.config.enabled_streams():
            spec = self.config.streams.section(name)
            if not isinstance(spec, OrdersStream) or name not in self.entities:
                continue
            out.append((name, name, spec.status_map, ORDER_STATUSES, f"streams.{name}.status_map"))
            if "status" in spec.lines.columns and f"{name}.lines" in self.entities:
                out.append((name, f"{name}.lines", spec.lines.status_map, line_allowed, f"streams.{name}.lines.status_map"))
        return out

    def check_values(self, since: dict[str, Cursor | None] | None = None) -> None:
        """Every shop status value must map to an Altcraft status; one-line ``ConfigError`` otherwise.

        ``since`` limits the check per entity to rows after a cursor (an index range): an incremental run
        checks exactly the rows it may read, instead of grouping millions of rows on every run. Without it
        (the first run, ``altcraft-sync check``) every row is checked."""
        checks = self.status_checks()
        if not checks:
            return
        try:
            with self.engine.connect() as conn:
                for _, entity, value_map, allowed, path in checks:
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
        ts = need("updated_at", spec.updated_at) if spec.updated_at else None
        ts_col = self._read(ts).label(TS) if ts is not None else sa.null().label(TS)
        cols: list[sa.ColumnElement[Any]] = [self._read(pk).label(PK), ts_col]
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
        for setting, column, label in spec.extra_columns():  # matching, consent, profile fields, a line's product name
            cols.append(self._read(need(setting, column)).label(label))
        return Entity(name, path, spec, source, pk, ts, cols, parent)

    def _passes_through(self, query: sa.Select[Any]) -> bool:
        """Whether no selected column has a result processor (SQLite reads everything untyped; on
        PostgreSQL prices are read as text, so order and line pages have none; MySQL booleans do)."""
        dialect = self.engine.dialect
        return self.raw or not any(processed(c, dialect) for c in query.selected_columns)

    def _read_money(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.sql.read_money(column)

    def _read(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.sql.read(column)

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

    def _after(self, ent: Entity, start: Cursor | None) -> sa.ColumnElement[bool] | None:
        if start is None:
            return None
        if ent.ts is None:  # read by key alone
            return self._key_after(ent, start)
        ts = self._read(ent.ts)
        if start.pk is None:
            return ts > sa.literal(start.ts, ts.type)
        pk = self._read(ent.pk)
        return self.sql.after(ts, pk, sa.literal(start.ts, ts.type), sa.literal(start.pk, pk.type))

    def _key_after(self, ent: Entity, start: Cursor | None) -> sa.ColumnElement[bool] | None:
        """The keyset condition of a read by key alone: keys after ``start``'s (None: from the first)."""
        if start is None or start.pk is None:
            return None
        pk = self._read(ent.pk)
        return pk > sa.literal(start.pk, pk.type)


def _is_true(value: Any) -> bool:
    """A deleted flag's truth as the transforms read it (``transforms.values.booleans``: bool, 0/1, text)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on") if value is not None else False
