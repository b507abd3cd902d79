"""Pages read in columns (``source.reader: auto``), with the rows path as the fallback of every page.

The source asks :meth:`ColumnarPages.frame` for a page's frame first. None means "read it as rows":
the setting says so, this database has no columnar reader here (not installed, not supported), or the
reader refused the page (a driver error, a value or a column type it would not give as the rows path
does). Rows are what isolate an unreadable row and quarantine it with its reason, so a refused page
loses nothing. Each stream says once, in one line, why it is read as rows; the reason is masked."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.columnar import ColumnarReader, Refused, arrow_frame, declared_type, literal_sql
from connectors.dialect import Dialect

log = logging.getLogger("altcraft_sync.shop_db")


class ColumnarPages:
    """The columnar reader of one source, and which streams were told they are read as rows."""

    def __init__(self, setting: str, sql: Dialect, engine: sa.Engine) -> None:
        self.engine = engine
        self.raw = sql.raw_reads
        self.reader: ColumnarReader | None = None
        self.why_not = "source.reader is rows"
        if setting == "auto":
            self.reader, self.why_not = sql.columnar_reader(engine.url)
        self._told: set[str] = set()
        self._off: set[str] = set()
        """Entities whose query the reader cannot read the same way on any page (a column's type)."""

    def frame(self, path: str, query: sa.Select[Any], rows_hint: int) -> pd.DataFrame | None:
        """The page as the rows path would frame it, or None: read it as rows."""
        if self.reader is None:
            if self.why_not != "source.reader is rows":
                self._tell(path, logging.INFO, self.why_not)
            return None
        if path in self._off:
            return None
        columns = list(query.selected_columns)
        if not self.raw and any(processed(c, self.engine.dialect) for c in columns):
            self._off.add(path)  # SQLAlchemy turns this column's values into others (a Boolean, an Enum)
            self._tell(path, logging.INFO, "a column's values are converted by SQLAlchemy's type")
            return None
        try:
            sql = literal_sql(self.reader.prepared(query), self.engine.dialect)
        except (sa.exc.CompileError, NotImplementedError, TypeError, ValueError) as err:  # a value without a literal form
            self._off.add(path)
            self._tell(path, logging.WARNING, f"the page query has no literal form ({type(err).__name__})")
            return None
        declared = {str(c.key): declared_type(c) for c in query.selected_columns}
        try:
            return arrow_frame(self.reader.table(sql, rows_hint), self.reader, declared)
        except Refused as err:
            if err.sticky:
                self._off.add(path)
            # a column type holds for every page: expected and said once (INFO); a refused page is news (WARNING)
            self._tell(path, logging.INFO if err.sticky else logging.WARNING, str(err))
            return None

    def _tell(self, path: str, level: int, reason: str) -> None:
        if path.split(".")[1] in self._told:
            log.debug("%s: a page is read as rows: %s", path, reason)
            return
        self._told.add(path.split(".")[1])
        log.log(level, "%s: pages are read as rows where the columnar reader cannot read them: %s", path, reason)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def processed(column: sa.ColumnElement[Any], dialect: sa.Dialect) -> bool:
    """Whether SQLAlchemy converts this column's values after the driver (a result processor)."""
    return column.type.dialect_impl(dialect).result_processor(dialect, None) is not None
