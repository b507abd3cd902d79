"""The shop database source: any schema, through the validated mapping in the config.

Reads follow ``docs/sync-correctness.md``:

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

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from altcraft_sync.batching import batched
from altcraft_sync.cursor import DELETED, PARENT, PK, TS, Cursor, ParentRange, to_utc
from altcraft_sync.errors import ConfigError, SourceError
from connectors.dialect import IN_BATCH
from connectors.shop_binding import Entity, _is_true
from connectors.shop_rows import RowGuards, _frame, _plain, mark_duplicates, with_problems

__all__ = ["IN_BATCH", "Cursor", "Entity", "ShopSource", "mark_duplicates", "to_utc"]


class ShopSource(RowGuards):
    """Read access to the shop database for every configured stream."""

    def probe_reads(self) -> None:
        """Run each entity's page query once, limited to one row, exactly as a sync builds it (a child's
        joined to its parent's source): what ``check`` passes, ``sync`` runs."""
        for name, ent in self.entities.items():
            stream = name.split(".")[0]
            skip = ParentRange(stream, None, self.upper_bound(stream, 0)) if name != stream else None
            # a parent's first sync reads in key order, every later run in cursor order: probe both
            orders = [False, True] if name == stream and ent.ts is not None and self.config.source.first_sync_by_key else [False]
            try:
                for by_key in orders:
                    next(self.read_changes(name, None, self.upper_bound(name, 0), 1, keys_only=name != stream,
                                           skip_parents_in=skip, by_key=by_key), None)
            except SourceError as err:
                raise ConfigError(f"{ent.path}: the page query a sync runs fails: {err}") from None

    # --- clock and bounds ------------------------------------------------------------------------
    def db_now(self) -> datetime:
        """The database's own clock, as aware UTC (never this machine's clock: writers use the DB's)."""
        def once() -> datetime:
            with self.engine.connect() as conn:
                return self.sql.clock(conn)

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
        skip_parents_in: ParentRange | None = None, by_key: bool = False,
    ) -> Iterator[tuple[pd.DataFrame, Cursor]]:
        """Yield pages of rows in ``(start, upper]`` ordered by ``(updated_at, pk)``, each with the cursor of
        its last row. One short query per page: memory is bounded by ``limit`` whatever the table size.

        ``skip_parents_in`` (children only) leaves out child rows whose parent lies in that range of the
        parent's cursor: the parent cursor already read those parents in this run. Filtering in SQL keeps a
        first sync from fetching every order twice.

        ``by_key`` (a first sync): every row at or before ``upper`` in key order instead, keyset pages on
        the key alone, after ``start``'s key (None: from the first). A table stored in key order (SQLite's
        rowid, InnoDB's clustered key, a heap filled in key order) is then read page after page instead of
        one random page a row through the ``updated_at`` index. Each page's cursor is its last row's, a key
        position and no watermark (the planner sets the watermark once the read is done)."""
        ent = self.entities[entity]
        cols = ent.columns[:2] + ([self._read(ent.parent).label(PARENT)] if keys_only and ent.parent is not None else [])
        if not keys_only:
            cols = ent.columns
        ts = self._read(ent.ts) if ent.ts is not None else None
        pk = self._read(ent.pk)
        if by_key and keys_only:
            raise ValueError("a key-ordered read is a parent's: no keys-only child page")
        source, covered = self._without_parents_in(ent, skip_parents_in)
        keep = ([] if ts is None else [ts <= sa.literal(upper, ts.type)]) + ([] if covered is None else [sa.not_(covered)])
        """What every query of this read keeps: rows at or before the bound, not left to the parent cursor."""
        keyed = by_key or ts is None  # the keyset is on the key alone
        key_order = self.sql.key_order(pk, getattr(ent.pk, "nullable", True))  # a query's column: may be NULL
        cursor = start
        while True:
            query = sa.select(*cols).select_from(source).where(*keep)
            if keyed:  # read by key, a NULL key has no place in the key order: it is read after the rest
                query = query.where(pk.is_not(None))
            after = self._key_after(ent, cursor) if keyed else self._after(ent, cursor)
            if after is not None:
                query = query.where(after)
            query = query.order_by(*([pk] if keyed else [ts, key_order])).limit(limit)
            page = self._columnar_page(ent, query, source, keep, limit, keys_only, keyed)
            if page is not None:
                frame, last, n = page
                if not n or last is None:
                    break
                cursor, full = last, n == limit
            else:
                keys, rows, poisoned = self._page(ent, query, cols, keys_only)
                if not rows:
                    break
                full = len(rows) == limit
                cursor = Cursor(_plain(rows[-1][1]), _plain(rows[-1][0]))
                if not keyed and rows[-1][0] is None:
                    rows, poisoned = self._whole_last_time(ent, cols, source, keep, rows, poisoned, ts, keys_only)
                    cursor = Cursor(_plain(rows[-1][1]), None)  # every row of that time read: resume after it
                elif full and not keys_only:
                    rows = self._whole_last_key(ent, cols, source, keep, rows, None if keyed else ts, pk)
                frame = with_problems(self._decoded(_frame(keys, rows), ent), poisoned)
            yield (frame if keys_only else mark_duplicates(frame, ent.path)), cursor
            if not full:
                break
        if keyed:
            yield from self._null_keys(ent, cols, source, keep, cursor, keys_only)

    def _whole_last_time(self, ent: Entity, cols: list[Any], source: sa.FromClause, keep: list[Any],
                         rows: list[tuple[Any, ...]], poisoned: dict[int, tuple[str, str, str]], ts: Any,
                         keys_only: bool) -> tuple[list[tuple[Any, ...]], dict[int, tuple[str, str, str]]]:
        """A page that ends on a NULL key, with every row of its last ``updated_at``: the keyset cannot
        resume after a NULL (NULLs sort first on SQLite and MySQL, last on PostgreSQL), so the next page
        starts after that time, and the rows of the time the page had not reached yet are read here
        instead of skipped. Rows of one time sit together at the page's end; the rows before keep their
        positions (and their problems)."""
        last_ts = rows[-1][1]
        query = sa.select(*cols).select_from(source).where(ts == sa.literal(_plain(last_ts), ts.type), *keep)
        pk = self._read(ent.pk)
        _, group, problems = self._page(ent, query.order_by(self.sql.key_order(pk, True)), cols, keys_only)
        before = [r for r in rows if r[1] != last_ts]
        kept = {pos: p for pos, p in poisoned.items() if pos < len(before)}
        return before + list(group), kept | {len(before) + pos: p for pos, p in problems.items()}

    def _null_keys(self, ent: Entity, cols: list[Any], source: sa.FromClause, keep: list[Any], cursor: Cursor | None,
                   keys_only: bool) -> Iterator[tuple[pd.DataFrame, Cursor]]:
        """A stream read by key alone: its NULL-key rows, as one last page (they are quarantined, never
        sent; a view with many would be a config error the warning names). Its cursor is the last key's."""
        query = sa.select(*cols).select_from(source).where(self._read(ent.pk).is_(None), *keep)
        keys, rows, poisoned = self._page(ent, query, cols, keys_only)
        if rows:
            frame = with_problems(self._decoded(_frame(keys, rows), ent), poisoned)
            yield (frame if keys_only else mark_duplicates(frame, ent.path)), cursor or Cursor(None, None)  # type: ignore[arg-type]

    def _columnar_page(self, ent: Entity, query: sa.Select[Any], source: sa.FromClause, keep: list[Any], limit: int,
                       keys_only: bool, keyed: bool) -> tuple[pd.DataFrame, Cursor | None, int] | None:
        """The page read in columns, its last row's cursor and its row count; None: read it as rows (no
        columnar reader, a refused page, or a full page whose last key goes on past it, which the rows
        path completes)."""
        frame = self.columns.frame(ent.path, query, limit)
        if frame is None:
            return None
        if frame.empty:
            return frame, None, 0
        last_pk, last_ts = _plain(frame[PK].iloc[-1]), _plain(frame[TS].iloc[-1])
        if last_pk is None:  # the keyset cannot resume after a NULL key: the rows path completes such a page
            return None
        if len(frame) == limit and not keys_only and self._last_key_goes_on(ent, source, keep, frame, last_pk,
                                                                            None if keyed else last_ts):
            return None
        return self._decoded(frame, ent), Cursor(last_ts, last_pk), len(frame)

    def _last_key_goes_on(self, ent: Entity, source: sa.FromClause, keep: list[Any], frame: pd.DataFrame,
                          last_pk: Any, last_ts: Any) -> bool:
        """Whether the page's last key (with its ``updated_at`` unless ``last_ts`` is None: a keyset on the
        key alone) has more rows than the page holds (a key a join repeats, cut at the boundary): one
        count, as :meth:`_whole_last_key` looks it up."""
        pk = self._read(ent.pk)
        same = [pk == sa.literal(last_pk, pk.type)]
        in_page = frame[PK] == last_pk
        if last_ts is not None and ent.ts is not None:
            ts = self._read(ent.ts)
            same.append(ts == sa.literal(last_ts, ts.type))
            in_page &= frame[TS] == last_ts
        query = sa.select(sa.func.count()).select_from(source).where(*same, *keep)
        return int(self._fetch(query)[1][0][0]) > int(in_page.sum())

    def _without_parents_in(self, ent: Entity, skip: ParentRange | None) -> tuple[sa.FromClause, Any]:
        """The child's source joined to its parent's, and the condition of the child rows whose parent lies
        in the parent cursor's range ``skip`` (None: nothing to leave out)."""
        if skip is None or ent.parent is None:
            return ent.source, None
        parent = self.entities[skip.entity]
        if parent.ts is None:  # a parent read in full has no range to leave out
            return ent.source, None
        p_ts = self._read(parent.ts)
        covered = p_ts <= sa.literal(skip.upper, p_ts.type)
        p_after = self._key_after(parent, skip.start) if skip.by_key else self._after(parent, skip.start)
        if p_after is not None:
            covered = sa.and_(covered, p_after)
        return ent.source.join(parent.source, parent.pk == ent.parent), covered

    def _whole_last_key(self, ent: Entity, cols: list[Any], source: sa.FromClause, keep: list[Any],
                        rows: list[tuple[Any, ...]], ts: Any, pk: Any) -> list[tuple[Any, ...]]:
        """A full page with every row of its last key (and ``updated_at``, unless ``ts`` is None: a keyset
        on the key alone): a key a join repeats must not be cut at the page boundary (the next page starts
        after it, so the rest would be skipped unseen). One point lookup a full page."""
        last_ts, last_pk = rows[-1][1], rows[-1][0]
        query = sa.select(*cols).select_from(source).where(pk == sa.literal(_plain(last_pk), pk.type), *keep)
        if ts is not None:
            query = query.where(ts == sa.literal(_plain(last_ts), ts.type))

        def same(r: tuple[Any, ...]) -> bool:
            return r[0] == last_pk and (ts is None or r[1] == last_ts)

        _, group = self._fetch(query)
        if len(group) <= sum(1 for r in rows if same(r)):
            return rows
        return [r for r in rows if not same(r)] + list(group)

    def last_cursor(self, entity: str, upper: Any) -> Cursor | None:
        """The keyset position of the newest row at or before ``upper`` (index-backed)."""
        ent = self.entities[entity]
        if ent.ts is None:
            return None
        ts, pk = self._read(ent.ts), self._read(ent.pk)
        _, rows = self._fetch(sa.select(ts, pk).select_from(ent.source).where(ts <= sa.literal(upper, ts.type))
                              .order_by(ts.desc(), pk.desc()).limit(1))
        return Cursor(_plain(rows[0][0]), _plain(rows[0][1])) if rows else None

    def count_between(self, entity: str, start: Cursor | None, upper: Any) -> int:
        """How many rows lie after ``start`` and at or before ``upper`` (every row of an entity read by key
        alone): a progress bar's total. One index range count; asked only when a run has pages to read."""
        _, rows = self._fetch(self._in_range(sa.select(sa.func.count()), entity, start, upper))
        return int(rows[0][0]) if rows else 0

    def has_rows_between(self, entity: str, start: Cursor | None, upper: Any) -> bool:
        """Whether any row lies after ``start`` and at or before ``upper``: after a run has read up to
        ``upper``, a yes means the watermark is stuck (the stale check)."""
        if self.entities[entity].ts is None:
            return False
        _, rows = self._fetch(self._in_range(sa.select(sa.literal(1)), entity, start, upper).limit(1))
        return bool(rows)

    def _in_range(self, query: sa.Select[Any], entity: str, start: Cursor | None, upper: Any) -> sa.Select[Any]:
        """``query`` over the entity's rows after ``start`` and at or before ``upper`` (all of them for an
        entity read by key alone)."""
        ent = self.entities[entity]
        query = query.select_from(ent.source)
        if ent.ts is None:
            return query
        ts = self._read(ent.ts)
        query = query.where(ts <= sa.literal(upper, ts.type))
        after = self._after(ent, start)
        return query if after is None else query.where(after)

    def fetch_by_keys(self, entity: str, keys: Sequence[Any], *, by_parent: bool = False) -> pd.DataFrame:
        """Rows whose primary key (or, for children, parent key) is in ``keys``; any order."""
        ent = self.entities[entity]
        column = ent.parent if by_parent else ent.pk
        assert column is not None
        frames = []
        out_keys: list[str] = [str(c.key) for c in ent.columns]
        for batch in batched(keys, self.key_batch()):
            part = [_plain(k) for k in batch]
            columns = self.columns.frame(ent.path, sa.select(*ent.columns).where(self._key_in(column, part)),
                                         len(part) * 16)
            if columns is not None:
                if len(columns):
                    frames.append(self._decoded(columns, ent))
                continue
            rows, poisoned = self._rows_by_key(ent, column, part)
            if rows:
                key_at = out_keys.index(PARENT) if by_parent else 0
                problems = {i: poisoned[_plain(r[key_at])] for i, r in enumerate(rows)
                            if _plain(r[key_at]) in poisoned} if poisoned else {}
                frames.append(with_problems(self._decoded(_frame(out_keys, rows), ent), problems))
        if not frames:
            return _frame(out_keys, [])
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return frame if by_parent else mark_duplicates(frame, ent.path)

    def iter_keys(self, entity: str, limit: int = 50_000) -> Iterator[pd.DataFrame]:
        """All current rows' key columns (primary key, external_id, deleted flag), in pk pages: for
        reconciling hard deletes without loading the table."""
        ent = self.entities[entity]
        cols = [c for c in ent.columns if c.key in (PK, DELETED, "external_id")]
        pk = self._read(ent.pk)
        last = None
        while True:
            query = sa.select(*cols).where(pk.is_not(None)).order_by(pk).limit(limit)  # a NULL key names nothing
            if last is not None:
                query = query.where(pk > sa.literal(last, pk.type))
            keys, rows = self._fetch(query)
            if not rows:
                return
            last = _plain(rows[-1][keys.index(PK)])
            yield _frame(keys, rows)

    def find_external_ids(self, entity: str, external_ids: Sequence[str]) -> dict[str, bool]:
        """Which of ``external_ids`` the entity's source holds now, each with its soft-delete flag (True:
        marked deleted). An id absent from the answer is not in the source: hard-deleted, or filtered
        out by the mapping's query. Looked up on the ``external_id`` column (an expression of a query
        too); an integer column is compared with the ids that are integers, so its index is used."""
        ent = self.entities[entity]
        column = ent.col(ent.spec.columns["external_id"])
        try:
            py: type | None = column.type.python_type
        except NotImplementedError:
            py = None
        wanted = [str(e) for e in external_ids]
        if py is int:
            keys: list[Any] = [int(e) for e in wanted if e.lstrip("-").isdigit()]
            target: sa.ColumnElement[Any] = self._read(column)
        elif py is str:
            keys, target = wanted, self._read(column)
        else:  # untyped (a query's expression): compare as text
            keys, target = wanted, sa.cast(column, sa.String())
        flag = next((c for c in ent.columns if c.key == DELETED), None)
        out: dict[str, bool] = {}
        batch = self.key_batch()
        for start in range(0, len(keys), batch):
            part = keys[start:start + batch]
            query = sa.select(target, *([flag] if flag is not None else [])).select_from(ent.source) \
                .where(self._key_in(target, part))
            _, rows = self._fetch(query)
            for row in rows:
                ext = str(_plain(row[0])).strip()
                deleted = flag is not None and _is_true(row[1])
                out[ext] = out.get(ext, True) and deleted  # marked deleted only if every row with it is
        return out
