"""The keyset cursor every layer shares, and the names of the columns a source frame carries besides the
mapped fields. Bottom of the layers: the source reads cursors, the state store keeps them, the engine plans
with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

PK, TS, DELETED, PARENT = "_pk", "_ts", "_deleted", "_parent"
"""A source frame's primary key, ``updated_at``, soft-delete flag and (children) parent key columns."""
CF_PREFIX = "cf."
"""A custom field's column: ``cf.<external_id>``."""
MATCH_PREFIX = "m."
"""A matching field's column (orders, profiles): ``m.<field>``."""
CONSENT_PREFIX = "consent."
"""A profile's consent column: ``consent.<channel>``."""
PROBLEM = "_problem"
"""Present only on a frame with rows the source could not take as they are (a key found in several rows,
a value it could not read or decode): ``(field, check, value)`` on those rows, None on the others. The
mapper quarantines such a row's record (a child's problem quarantines its parent) instead of sending it."""
PRODUCT_NAME = "_product_name"
"""An order line's product name (``lines.product_name``): what a stand-in for a product that will never
reach Altcraft is named after."""


CursorTs = datetime | date | int | float | str
"""An ``updated_at`` value as the source column holds it: a timestamp or date, a Unix time, or text."""
Key = int | str
"""A source primary key as the source binds it (the ledger keeps keys as text)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position ``(updated_at, pk)`` in the column's native representation.

    ``pk is None`` means "every row with ``updated_at`` strictly after ``ts``" (used for the lookback start).
    """

    ts: CursorTs
    pk: Key | None = None

    def after(self, other: Cursor | None) -> bool:
        """Whether this position is past ``other`` (None: the beginning) in keyset order."""
        if other is None:
            return True
        if self.ts != other.ts:
            return bool(self.ts > other.ts)  # type: ignore[operator]
        if self.pk is None or other.pk is None:  # no key: past every row of its time
            return self.pk is None and other.pk is not None
        return bool(self.pk > other.pk)  # type: ignore[operator]

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
        ts: CursorTs
        if kind in ("aware", "naive"):
            ts = datetime.fromisoformat(value)
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
    """A cursor time (datetime, date or ISO text; naive ones in ``tz``) as aware UTC, or None."""
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


def show_cursor(c: Cursor | None, shown_key: Callable[[Any], Any] = lambda key: key) -> str | None:
    """A cursor as the run's figures show it (the summary line, the stored run figures), its key as
    ``shown_key`` shows it (a stream's ``StreamSpec.shown_key``: a person's key is masked)."""
    if c is None:
        return None
    ts = c.ts.isoformat() if hasattr(c.ts, "isoformat") else str(c.ts)
    return f"{ts} / {shown_key(c.pk)}"


class ParentRange(NamedTuple):
    """The parent rows a run's parent cursor read (a child cursor leaves their child rows out): those after
    ``start`` and at or before ``upper`` of ``entity``'s cursor, or, ``by_key``, every one at or before
    ``upper`` whose key comes after ``start``'s (a key-ordered first sync)."""

    entity: str
    start: Cursor | None
    upper: Any
    by_key: bool = False

