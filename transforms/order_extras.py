"""What an order carries besides its fields: the matching mode each order can use (``matching.fallback``),
line quantities that are not whole numbers, what its lines say about the products they name (for a
stand-in when a product will never reach Altcraft), and when the order last changed (the trigger window).
Pure functions over a chunk's columns, used by :mod:`transforms.orders`."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from altcraft_sync.catalogue import MATCHING_FIELDS, MONEY_FIELDS
from altcraft_sync.cursor import PRODUCT_NAME, TS
from transforms import values as V
from transforms.textchecks import EMAIL, matches, non_empty

MATCHED = "_matched"
"""A contract-frame column: the order has the fields of one of its matching modes."""
WHOLE_COUNT = "whole number (Altcraft's line count is an integer)"
"""The quarantine check of a line whose quantity is fractional (``lines.fractional_count: quarantine``)."""


def choose_matching(matching: dict[str, V.Column], modes: list[str]) -> dict[str, V.Column]:
    """Each order's ``matching``: the first of ``modes`` whose fields it has (an e-mail counts only when it
    is an address). Values that cannot be used (an empty or malformed e-mail) are left out of the record;
    :data:`MATCHED` says whether any mode could be used (the contract quarantines the order otherwise)."""
    n = len(matching["matching"])
    fields = [f for f in matching if f != "matching"]
    index = pd.RangeIndex(n)
    text = {f: pd.Series(pd.array(V.pylist(matching[f]), dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
                         index=index) for f in fields}
    usable = {f: np.array(non_empty(s), dtype=bool) for f, s in text.items()}
    if "email" in usable:
        usable["email"] = usable["email"] & np.array(matches(EMAIL)(text["email"]), dtype=bool)
    chosen = np.full(n, -1, dtype=np.int64)
    for i, mode in reversed(list(enumerate(modes))):  # the earliest usable mode wins
        ok = np.ones(n, dtype=bool)
        for group in MATCHING_FIELDS[mode]:
            ok &= np.logical_or.reduce([usable.get(f, np.zeros(n, dtype=bool)) for f in group])
        chosen[ok] = i
    matched = chosen >= 0
    out: dict[str, V.Column] = {"matching": np.array(modes, dtype=object)[np.where(matched, chosen, 0)].tolist()}
    for f in fields:
        # an order no mode can use keeps its values: the quarantine shows what it had
        keep = usable[f] | ~matched
        out[f] = [v if k else None for v, k in zip(V.pylist(matching[f]), keep.tolist())]
    out[MATCHED] = matched
    return out


def fractional_counts(lines: pd.DataFrame, rule: str, scale: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Lines whose quantity is a number but not a whole one (goods sold by weight). ``quarantine``: their
    positions are returned for :func:`with_fractional`. ``whole_line``: each is rewritten as one item of
    its whole amount (``count`` 1, every per-item price times the quantity, rounded half-up to ``scale``
    places), and none is returned."""
    none = np.zeros(0, dtype=np.int64)
    if lines.empty or "count" not in lines or pd.api.types.is_integer_dtype(lines["count"].dtype):
        return lines, none
    quantities = [_fraction(v) for v in lines["count"].tolist()]
    where = np.array([q is not None for q in quantities], dtype=bool)
    if not where.any():
        return lines, none
    if rule != "whole_line":
        return lines, np.flatnonzero(where)
    lines = lines.copy()
    step = Decimal(1).scaleb(-scale)
    rows = np.flatnonzero(where).tolist()
    for column in [c for c in lines.columns if c in MONEY_FIELDS]:
        values = lines[column].astype(object).tolist()
        for i in rows:
            price = _decimal(values[i])
            if price is not None:
                qty = quantities[i]
                assert qty is not None
                values[i] = str((price * qty).quantize(step, rounding=ROUND_HALF_UP))
        lines[column] = pd.Series(values, index=lines.index, dtype=object)
    counts = lines["count"].astype(object).tolist()
    for i in rows:
        counts[i] = 1
    lines["count"] = pd.Series(counts, index=lines.index, dtype=object)
    return lines, none


def with_fractional(fails: pd.DataFrame, fractional: np.ndarray, lines: pd.DataFrame) -> pd.DataFrame:
    """The line contract's failures with each fractional quantity named for what it is (its generic
    "positive integer" failure replaced)."""
    if not len(fractional):
        return fails
    own = fails["pos"].isin(fractional) & (fails["field"] == "count")
    counts = lines["count"].tolist()
    named = pd.DataFrame({"pos": fractional, "check": WHOLE_COUNT, "field": "count",
                          "value": [str(counts[i]) for i in fractional.tolist()]})
    return pd.concat([fails[~own], named], ignore_index=True)


def _fraction(v: Any) -> Decimal | None:
    """A quantity that is a positive finite number but not a whole one, else None."""
    d = _decimal(v)
    return d if d is not None and d > 0 and d != d.to_integral_value() else None


def _decimal(v: Any) -> Decimal | None:
    if v is None or isinstance(v, bool) or (isinstance(v, float) and v != v):
        return None
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class LineDetails(NamedTuple):
    """Per reference (parallel to ``Refs.values``): what the order line naming it says about the product:
    its name as the line keeps it (None if not mapped), its final price per item and the order's currency.
    An unavailable stand-in is built from these when the product will never reach Altcraft."""

    names: pa.Array
    prices: pa.Array
    currencies: pa.Array


def line_details(lines: pd.DataFrame, L: dict[str, V.Column], currency: V.Column, line_rows: np.ndarray,
                 offsets: np.ndarray, good: np.ndarray) -> LineDetails:
    take = pa.array(line_rows, pa.int64())

    def column(values: V.Column | None) -> pa.Array:
        if values is None:
            return pa.nulls(len(line_rows), pa.string())
        arr = values if isinstance(values, pa.Array) else pa.array(
            [None if v is None else str(v) for v in values], pa.string())
        return arr.take(take).cast(pa.string())

    names = column(V.strings(lines[PRODUCT_NAME])) if PRODUCT_NAME in lines else column(None)
    per_order = np.repeat(good, np.diff(offsets))
    currencies = (currency if isinstance(currency, pa.Array) else pa.array(
        [None if c is None else str(c) for c in currency], pa.string())).take(pa.array(per_order, pa.int64()))
    return LineDetails(names, column(L.get("final_price_per_item")), currencies.cast(pa.string()))


def change_times(orders: pd.DataFrame, O: dict[str, V.Column], good: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """When each sent order last changed, as Unix seconds (NaN when unknown): its ``updated_at`` (the
    cursor column), else its ``update_time`` or ``create_time`` field. The engine sends an order whose
    change is older than ``sync.trigger_window`` with ``skip_triggers: true``."""
    out = np.full(len(good), np.nan)
    sources: list[V.Column] = []
    if TS in orders and orders[TS].notna().any():
        sources.append(V.rfc3339(orders[TS], tz))
    sources += [O[f] for f in ("update_time", "create_time") if f in O]
    take = pa.array(good, pa.int64())
    for texts in sources:
        seconds = _epoch_seconds((texts if isinstance(texts, pa.Array) else pa.array(
            [v if isinstance(v, str) else None for v in texts], pa.string())).take(take))
        fill = np.isnan(out)
        out[fill] = seconds[fill]
    return out


def _epoch_seconds(texts: pa.Array) -> np.ndarray:
    """RFC 3339 UTC texts (as :func:`transforms.values.rfc3339` writes them) as Unix seconds, NaN where
    missing or unreadable. Arrow parses them in one cast; a column it refuses goes through pandas."""
    try:
        ms = texts.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        valid = ms.is_valid().to_numpy(zero_copy_only=False)
        values = ms.fill_null(0).to_numpy(zero_copy_only=False).astype(float) / 1000.0
        return np.where(valid, values, np.nan)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        stamps = pd.to_datetime(pd.Series(texts.to_pylist(), dtype=object), format="ISO8601", utc=True,
                                errors="coerce")
        seconds = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
        return np.where(stamps.notna().to_numpy(), seconds, np.nan)
