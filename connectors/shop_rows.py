"""Reading rows safely: the fetch every read goes through (retried on transient errors, wrapped when the
driver raises past SQLAlchemy), and the rows the source cannot take as they are. A key a join repeats,
a value the driver cannot read (the page is re-read by key, halving to the row), a bytes value that does
not decode, UTF-8 stored in a latin1 column: each is marked on its row (``altcraft_sync.cursor.PROBLEM``)
for the mapper to quarantine, and the read goes on. The base of :class:`connectors.shop_db.ShopSource`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from altcraft_sync.cursor import PARENT, PK, PROBLEM, TS
from altcraft_sync.errors import SourceError
from altcraft_sync.wording import plural
from connectors import latin1
from connectors.dbretry import first_line, is_transient, retrying
from connectors.shop_binding import Entity, SourceBinding

log = logging.getLogger("altcraft_sync.shop_db")

T = TypeVar("T")


class RowGuards(SourceBinding):
    """The fetch, and the guards every page and key lookup goes through."""

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
        log.warning("%s: %s cannot be read as they are (%s); their records are quarantined", ent.path,
                    plural(len(poisoned), "row"), next(iter(poisoned.values()))[2] if poisoned else "")
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
            if name not in (PK, TS, PARENT):
                frame[name] = series = self._latin1_checked(series, ent, name)
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

    def _latin1_checked(self, series: pd.Series, ent: Entity, name: str) -> pd.Series:
        """UTF-8 read through a MySQL latin1 column (``CafÃ©``): turned back with ``source.utf8_in_latin1``;
        without it, one warning per column names the setting (the value is sent as it is)."""
        if self.config.source.utf8_in_latin1:
            return latin1.undo_series(series)
        if not self.sql.has_latin1_columns() or (ent.path, name) in self._latin1_warned:
            return series
        found = latin1.first_double_encoded(series)
        if found is not None:
            self._latin1_warned.add((ent.path, name))
            log.warning("%s: column %s holds UTF-8 read as latin1 (%r would be %r): set source.utf8_in_latin1: "
                        "true to turn it back", ent.path, name, found[0][:40], found[1][:40])
        return series

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
        if not self.sql.previews_stored_bytes():
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

    def key_batch(self) -> int:
        """How many keys one lookup takes: thousands where the keys travel as one parameter."""
        return self.sql.key_batch

    def _key_in(self, column: sa.ColumnElement[Any], keys: list[Any]) -> sa.ColumnElement[bool]:
        return self.sql.key_in(column, keys)

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
    and the count. A row whose key is NULL is marked on its own (it has no key to be sent or found by).
    A frame with unique, present keys is returned as it is (one hashing pass)."""
    keys = frame[PK]
    missing = keys.isna()
    repeated = keys.duplicated(keep=False) & ~missing
    if not repeated.any() and not missing.any():
        return frame
    problems = frame[PROBLEM].copy() if PROBLEM in frame else pd.Series([None] * len(frame), index=frame.index,
                                                                          dtype=object)
    free = problems.isna()
    if missing.any():
        problems[missing & free] = [(f"{path}.primary_key", "the key is not NULL", "NULL")] * int((missing & free).sum())
        log.warning("%s: %s with a NULL key; their records are quarantined, not sent", path,
                    plural(int(missing.sum()), "row"))
    if repeated.any():
        counts = keys[repeated].map(keys[repeated].value_counts())
        problems[repeated & free] = [(f"{path}.primary_key", "the key is unique in the source", f"{int(n)} rows with key {k}")
                                     for k, n, f in zip(keys[repeated].tolist(), counts.tolist(),
                                                        free[repeated].tolist()) if f]
        log.warning("%s: %s in more than one row (e.g. %s); their records are quarantined, not sent",
                    path, plural(int(keys[repeated].nunique()), "key"), keys[repeated].iloc[0])
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

