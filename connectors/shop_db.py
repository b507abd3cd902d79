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
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from altcraft_sync.cursor import DELETED, PARENT, PK, PROBLEM, TS, Cursor, to_utc
from altcraft_sync.errors import ConfigError, SourceError
from connectors.dbretry import first_line, is_transient, retrying
from connectors.shop_binding import Entity, SourceBinding

__all__ = ["Cursor", "Entity", "ShopSource", "to_utc"]

log = logging.getLogger("altcraft_sync.shop_db")

IN_BATCH = 900
ANY_BATCH = 20_000
T = TypeVar("T")


class ShopSource(SourceBinding):
    """Read access to the shop database for every configured stream."""

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
        if ent.ts is None:
            return None
        ts = self._read(ent.ts)
        _, rows = self._fetch(sa.select(ts).select_from(ent.source).where(ts.is_not(None)).order_by(ts.desc()).limit(1))
        return _plain(rows[0][0]) if rows else None

    def upper_bound(self, entity: str, margin_seconds: float, now: datetime | None = None) -> Any:
        """``db_now - margin`` in the representation of the entity's ``updated_at`` values (None: the entity
        has none and is read in full)."""
        if self.entities[entity].ts is None:
            return None
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
        ts = self._read(ent.ts) if ent.ts is not None else None
        pk = self._read(ent.pk)
        source: sa.FromClause = ent.source
        covered = None
        parent_has_ts = skip_parents_in is not None and self.entities[skip_parents_in[0]].ts is not None
        if skip_parents_in is not None and ent.parent is not None and parent_has_ts:
            parent = self.entities[skip_parents_in[0]]
            assert parent.ts is not None
            source = ent.source.join(parent.source, parent.pk == ent.parent)
            p_ts = self._read(parent.ts)
            covered = p_ts <= sa.literal(skip_parents_in[2], p_ts.type)
            p_after = self._after(parent, skip_parents_in[1])
            if p_after is not None:
                covered = sa.and_(covered, p_after)
        cursor = start
        while True:
            query = sa.select(*cols).select_from(source)
            if ts is not None:
                query = query.where(ts <= sa.literal(upper, ts.type))
            if covered is not None:
                query = query.where(sa.not_(covered))
            after = self._after(ent, cursor)
            if after is not None:
                query = query.where(after)
            query = query.order_by(*([ts, pk] if ts is not None else [pk])).limit(limit)
            keys, rows, poisoned = self._page(ent, query, cols, keys_only)
            if not rows:
                return
            last = rows[-1]
            cursor = Cursor(_plain(last[1]), _plain(last[0]))
            if len(rows) == limit and not keys_only:
                rows = self._whole_last_key(ent, cols, source, covered, rows, ts, pk)
            frame = with_problems(self._decoded(_frame(keys, rows), ent), poisoned)
            yield (frame if keys_only else mark_duplicates(frame, ent.path)), cursor
            if len(rows) < limit:
                return

    def _page(self, ent: Entity, query: sa.Select[Any], cols: list[Any],
              keys_only: bool) -> tuple[list[str], list[tuple[Any, ...]], dict[int, tuple[str, str, str]]]:
        """One page; if a row of it cannot be read at all (a value the driver cannot decode), the page is
        read again by key, halving until the rows that fail are found. Those come back with the unreadable
        values left empty and their problem, by position; every other row is read as usual."""
        names = [str(c.key) for c in cols]
        try:
            keys, rows = self._fetch(query)
            return keys, rows, {}
        except (SourceError, UnicodeError) as err:
            if keys_only or not _may_be_a_value(err):
                raise
            failure = err
        _, key_rows = self._fetch(query.with_only_columns(*cols[:2]))  # keys and cursors read: only a value fails
        good, poisoned = self._rows_by_key(ent, ent.pk, [_plain(r[0]) for r in key_rows])
        if poisoned and len(poisoned) == len(key_rows):
            raise failure  # every row fails alone: not a value, the query itself
        by_key: dict[Any, list[tuple[Any, ...]]] = {}
        for r in good:
            by_key.setdefault(_plain(r[0]), []).append(r)
        rows, problems = [], {}
        for pk_value, _ in key_rows:  # the page's own order, so the cursor stays where it was
            for r in by_key.pop(_plain(pk_value), []):
                if _plain(pk_value) in poisoned:
                    problems[len(rows)] = poisoned[_plain(pk_value)]
                rows.append(r)
        log.warning("%s: %d rows cannot be read as they are (%s); their records are quarantined", ent.path,
                    len(poisoned), next(iter(poisoned.values()))[2] if poisoned else "")
        return names, rows, problems

    def _decoded(self, frame: pd.DataFrame, ent: Entity) -> pd.DataFrame:
        """Bytes values (``VARBINARY``, ``BLOB``, ``bytea`` holding text) decoded by ``source.encoding``,
        never sent as Python's ``b'...'``. A value that does not decode is left empty and its row marked
        (the column and an escaped preview): its record is quarantined, the read goes on. Only object
        columns whose values are bytes are touched (one type scan a column)."""
        encoding = self.config.source.encoding
        problems: dict[int, tuple[str, str, str]] = {}
        for name in frame.columns:
            series = frame[name]
            if self.config.source.utf8_in_latin1 and name not in (PK, TS, PARENT):
                frame[name] = series = _undo_double_encoding(series)
            if series.dtype != object or name in (PK, TS, PARENT):
                continue
            kind = pd.api.types.infer_dtype(series, skipna=True)
            if kind not in ("bytes", "mixed"):
                continue
            values = series.tolist()
            for i, v in enumerate(values):
                if isinstance(v, (bytes, bytearray, memoryview)):
                    try:
                        values[i] = bytes(v).decode(encoding)
                    except UnicodeDecodeError:
                        values[i] = None
                        preview = bytes(v)[:60].decode(encoding, errors="backslashreplace")
                        problems.setdefault(i, (f"{ent.path}.columns.{name}", f"the value decodes as {encoding}",
                                                f"not {encoding}: {preview!r}"))
            frame[name] = pd.Series(values, index=frame.index, dtype=object)
        return with_problems(frame, problems)

    def _rows_by_key(self, ent: Entity, column: Any, keys: list[Any]
                     ) -> tuple[list[tuple[Any, ...]], dict[Any, tuple[str, str, str]]]:
        """Rows whose ``column`` is in ``keys``, and the keys whose rows cannot be read as they are, each
        with its problem; their rows are returned with the unreadable values left empty. Found by halving:
        O(bad rows x log(keys)) extra queries, none when every row reads."""
        try:
            return self._fetch(sa.select(*ent.columns).where(self._key_in(column, keys)))[1], {}
        except (SourceError, UnicodeError) as err:
            if not _may_be_a_value(err):
                raise
            if len(keys) == 1:
                return self._salvage(ent, column, keys[0], err)
        half = len(keys) // 2
        rows_a, bad_a = self._rows_by_key(ent, column, keys[:half])
        rows_b, bad_b = self._rows_by_key(ent, column, keys[half:])
        return rows_a + rows_b, {**bad_a, **bad_b}

    def _salvage(self, ent: Entity, column: Any, key: Any, err: Exception
                 ) -> tuple[list[tuple[Any, ...]], dict[Any, tuple[str, str, str]]]:
        """The rows of one key with each column that cannot be read left empty, and the problem: the first
        such column with a safe preview of its stored bytes (SQLite) or the driver's one line."""
        unreadable: list[Any] = []
        for col in ent.columns[2:]:
            try:
                self._fetch(sa.select(col).where(column == sa.literal(key)))
            except (SourceError, UnicodeError) as col_err:
                if not _may_be_a_value(col_err):
                    raise
                unreadable.append((col, col_err))
        if not unreadable:
            return [], {key: (ent.path, "the row can be read", first_line(err.__cause__ or err))}
        empty = {id(c) for c, _ in unreadable}
        cols = [sa.null().label(str(c.key)) if id(c) in empty else c for c in ent.columns]
        _, rows = self._fetch(sa.select(*cols).where(column == sa.literal(key)))
        first_col, first_err = unreadable[0]
        preview = self._preview(first_col, column, key) or first_line(first_err.__cause__ or first_err)
        return rows, {key: (f"{ent.path}.columns.{first_col.key}", "the value can be read as text", preview)}

    def _preview(self, col: Any, column: Any, key: Any) -> str | None:
        """The stored bytes of an unreadable SQLite text value, escaped (never raw: logs and artifacts)."""
        if self.dialect != "sqlite":
            return None
        target = getattr(col, "element", col)  # the source column under its field label
        try:
            _, rows = self._fetch(sa.select(sa.cast(target, sa.LargeBinary)).where(column == sa.literal(key)))
        except (SourceError, UnicodeError):
            return None
        value = rows[0][0] if rows else None
        if not isinstance(value, (bytes, bytearray, memoryview)):
            return None
        return f"not UTF-8: {bytes(value)[:60].decode('utf-8', errors='backslashreplace')!r}"

    def _whole_last_key(self, ent: Entity, cols: list[Any], source: sa.FromClause, covered: Any,
                        rows: list[tuple[Any, ...]], ts: Any, pk: Any) -> list[tuple[Any, ...]]:
        """A full page with every row of its last ``(updated_at, key)``: a key a join repeats must not be
        cut at the page boundary (the next page starts after it, so the rest would be skipped unseen). One
        point lookup a full page."""
        last_ts, last_pk = rows[-1][1], rows[-1][0]
        query = sa.select(*cols).select_from(source).where(pk == sa.literal(_plain(last_pk), pk.type))
        if ts is not None:
            query = query.where(ts == sa.literal(_plain(last_ts), ts.type))
        if covered is not None:
            query = query.where(sa.not_(covered))
        _, group = self._fetch(query)
        in_page = sum(1 for r in rows if r[0] == last_pk and r[1] == last_ts)
        if len(group) <= in_page:
            return rows
        return [r for r in rows if not (r[0] == last_pk and r[1] == last_ts)] + list(group)

    def last_cursor(self, entity: str, upper: Any) -> Cursor | None:
        """The keyset position of the newest row at or before ``upper`` (index-backed)."""
        ent = self.entities[entity]
        if ent.ts is None:
            return None
        ts, pk = self._read(ent.ts), self._read(ent.pk)
        _, rows = self._fetch(sa.select(ts, pk).select_from(ent.source).where(ts <= sa.literal(upper, ts.type))
                              .order_by(ts.desc(), pk.desc()).limit(1))
        return Cursor(_plain(rows[0][0]), _plain(rows[0][1])) if rows else None

    def has_rows_between(self, entity: str, start: Cursor | None, upper: Any) -> bool:
        """Whether any row lies after ``start`` and at or before ``upper``: after a run has read up to
        ``upper``, a yes means the watermark is stuck (the stale check)."""
        ent = self.entities[entity]
        if ent.ts is None:
            return False
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
            rows, poisoned = self._rows_by_key(ent, column, part)
            if rows:
                key_at = out_keys.index(PARENT) if by_parent else 0
                frames.append(with_problems(self._decoded(_frame(out_keys, rows), ent), {
                    i: poisoned[_plain(r[key_at])] for i, r in enumerate(rows) if _plain(r[key_at]) in poisoned}))
        if not frames:
            return _frame(out_keys, [])
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return frame if by_parent else mark_duplicates(frame, ent.path)

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
                    dbapi = self.engine.dialect.loaded_dbapi
                    try:
                        return list(result.keys()), cast(list[tuple[Any, ...]], result.cursor.fetchall())
                    except dbapi.Error as err:  # raised past SQLAlchemy: wrap it as SQLAlchemy would
                        raise DBAPIError.instance(None, None, err, dbapi.Error) from err
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


def _undo_double_encoding(series: pd.Series) -> pd.Series:
    """Text that is UTF-8 bytes read as latin1 (``CafÃ©``) turned back (``Café``); anything else, real
    latin1 text included, unchanged. Only text with characters in U+0080..U+00FF can be such a value."""
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return series

    def fix(v: Any) -> Any:
        if not isinstance(v, str) or v.isascii():
            return v
        try:
            return v.encode("latin1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return v

    return series.map(fix)


def _may_be_a_value(err: BaseException) -> bool:
    """An error a single value can cause (the driver cannot decode or convert it), not a lost connection or
    bad SQL: worth isolating the row. Bad SQL fails the key query too, and is raised from there."""
    cause = err.__cause__ if isinstance(err, SourceError) else err
    if isinstance(cause, UnicodeError):
        return True
    if isinstance(cause, DBAPIError) and not is_transient(cause):
        text = str(cause.orig).lower()
        return isinstance(cause, sa.exc.DataError) or "decode" in text or "utf-8" in text or "out of range" in text
    return False


def with_problems(frame: pd.DataFrame, problems: dict[int, tuple[str, str, str]]) -> pd.DataFrame:
    """The frame with :data:`PROBLEM` set on the rows at these positions (unchanged when there are none)."""
    if not problems:
        return frame
    column = (frame[PROBLEM].copy() if PROBLEM in frame
              else pd.Series([None] * len(frame), index=frame.index, dtype=object))
    for pos, problem in problems.items():
        if not isinstance(column.iloc[pos], tuple):
            column.iloc[pos] = problem
    return frame.assign(**{PROBLEM: column})


def mark_duplicates(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Mark every row of a key found in several rows (a join that multiplies a parent, a view without a
    unique key): none of them is sent with an arbitrary row's values; each is quarantined, naming the key
    and the count. A frame with unique keys is returned as it is (one hashing pass)."""
    keys = frame[PK]
    repeated = keys.duplicated(keep=False)
    if not repeated.any():
        return frame
    counts = keys[repeated].map(keys[repeated].value_counts())
    problems = frame[PROBLEM].copy() if PROBLEM in frame else pd.Series([None] * len(frame), index=frame.index,
                                                                          dtype=object)
    problems[repeated & problems.isna()] = [(f"{path}.primary_key", "the key is unique in the source", f"{n} rows with key {k}")
                          for k, n, free in zip(keys[repeated].tolist(), counts.tolist(),
                                                problems[repeated].isna().tolist()) if free]
    log.warning("%s: %d keys appear in more than one row (e.g. %s); their records are quarantined, not sent",
                path, keys[repeated].nunique(), keys[repeated].iloc[0])
    return frame.assign(**{PROBLEM: problems})


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
