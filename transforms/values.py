"""Vectorised value conversions from shop columns to Altcraft's wire formats. Pure functions, no I/O.

Shop columns arrive as whatever the driver returns: SQLite gives raw text/int/float, PostgreSQL and MySQL
give ``Decimal``/``datetime``/``bool``. Each converter accepts all of them. Repeated values (prices,
statuses, tags) are converted once per distinct value through ``pd.factorize``, which is what makes
millions of rows cheap.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}
STRING = pa.string()

Column: TypeAlias = list[Any] | pa.Array
"""A column of wire values: a list, or an Arrow string array (null = no value) for text built in Arrow.

Text columns stay in Arrow from the source frame to the JSON join: the contract frame wraps such an array
without copying, where a list of 15,000 Python strings costs ~0.8 ms to convert, and the join reads it
directly."""


def pylist(values: Column) -> list[Any]:
    """The values as a Python list (for the few places that pick single values: quarantine rows, ids)."""
    return values.to_pylist() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values


def arrow_strings(series: pd.Series) -> pa.Array | None:
    """A column of pandas' ``str`` dtype as one Arrow array (zero-copy); ``None`` for any other dtype."""
    if not isinstance(series.dtype, pd.StringDtype):
        return None
    arr = pa.array(series.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _text_arrow(series: pd.Series) -> pa.Array | None:
    """A text column as Arrow or an integer one as its decimal text; ``None`` for any other dtype (those
    are converted value by value)."""
    if pd.api.types.is_integer_dtype(series.dtype):
        return pa.array(series, from_pandas=True).cast(STRING)
    return arrow_strings(series)


def _by_unique(series: pd.Series, convert: Any) -> list[Any]:
    """Apply ``convert`` once per distinct non-null value; nulls become ``None``."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    converted = np.empty(len(uniques) + 1, dtype=object)
    converted[:-1] = [convert(u) for u in uniques.tolist()] if len(uniques) else []
    converted[-1] = None
    return converted[codes].tolist()


def by_unique_text(series: pd.Series, convert: Any) -> Column:
    """:func:`_by_unique` for a ``convert`` that gives text: an Arrow string array (a list if some
    converted value is not a ``str``, e.g. passed through for the contract to reject)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    converted = [convert(u) for u in uniques.tolist()] + [None]  # code -1 (null) takes the last
    if all(type(c) is str for c in converted[:-1]):
        return pa.array(converted, STRING).take(pa.array(np.where(codes < 0, len(converted) - 1, codes)))
    table = np.empty(len(converted), dtype=object)
    table[:] = converted
    return table[codes].tolist()


def ids(series: pd.Series) -> Column:
    """External IDs as strings: ``17`` and ``17.0`` (an int column with NULLs) both give ``"17"``.

    Integer and ``str`` columns are converted in Arrow (text as it is, integers in decimal); objects and
    floats one value at a time, with surrounding whitespace stripped."""
    arrow = _text_arrow(series)
    if arrow is not None:
        return arrow

    def one(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, Decimal) and v == v.to_integral_value():
            return str(int(v))
        return str(v).strip()

    if series.dtype == object or pd.api.types.is_float_dtype(series.dtype):
        return [None if _na(v) else one(v) for v in series.tolist()]
    return [None if _na(v) else str(v) for v in series.tolist()]  # bools, dates, categoricals...


def _na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def rfc3339(series: pd.Series, tz: ZoneInfo) -> Column:
    """Times as RFC 3339 UTC with milliseconds (``2022-01-02T15:04:05.141Z``, the seed examples' form).

    Naive values (and text without an offset) are wall time in the source timezone ``tz``; aware values
    keep their instant. Unparsable text is passed through unchanged, for the contract to reject.
    """
    if len(series) == 0:
        return []
    if not isinstance(series.dtype, pd.DatetimeTZDtype) and not pd.api.types.is_datetime64_dtype(series.dtype):
        parsed_text = _parse_naive_text(series)
        if parsed_text is None:  # mixed offsets, objects, odd formats: one value at a time
            return _by_unique(series, lambda v: _one_rfc3339(v, tz))
        series = parsed_text
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif getattr(tz, "key", None) in ("UTC", "Etc/UTC"):  # naive UTC already: localizing and converting back is ~0.2 us a value
        utc = series
    else:
        utc = _localize(series, tz).dt.tz_convert("UTC").dt.tz_localize(None)
    # Arrow prints a millisecond timestamp as "YYYY-MM-DD HH:MM:SS.fff" (NaT is null): 3x faster than numpy
    text = pa.array(utc.to_numpy(dtype="datetime64[ms]"), from_pandas=True).cast(STRING)
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T", max_replacements=1), "Z", "")


def _localize(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Wall times in ``tz`` as instants. A wall time the autumn clock change repeats is taken at its first
    occurrence (as ``fold=0`` does); one the spring change skips moves forward to the change. Never NaT:
    a time that became NaT would leave its field out of the record without a word."""
    return series.dt.tz_localize(tz, ambiguous=np.ones(len(series), dtype=bool), nonexistent="shift_forward")


def _parse_naive_text(series: pd.Series) -> pd.Series | None:
    """Vectorised parse of ISO text without offsets (SQLite's stored form); None if any value differs.

    Arrow's cast parses a subset of ISO 8601 (``YYYY-MM-DD[[T ]hh[:mm[:ss[.f]]]]``, no offset) ten times
    faster than pandas; text it refuses (offsets, spaces, short forms, nanoseconds) gets pandas' parser."""
    stamps = _arrow_iso(series)
    if stamps is not None:
        return stamps
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return None
    try:
        parsed = pd.to_datetime(series, format="ISO8601")
    except (ValueError, TypeError):
        return None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype) or parsed.isna().sum() != series.isna().sum():
        return None
    return parsed


def _arrow_iso(series: pd.Series) -> pd.Series | None:
    """Arrow's parse of a ``str`` column, or ``None`` when some value is outside its ISO 8601 subset."""
    text = arrow_strings(series)
    if text is None:
        return None
    try:
        stamps = text.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # refused: the caller asks pandas
        return None
    return pd.Series(stamps.to_numpy(zero_copy_only=False), index=series.index)


def _one_rfc3339(value: Any, tz: ZoneInfo) -> str:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, pd.Timestamp):
        moment = value.to_pydatetime()
    else:
        return str(value)
    if moment.tzinfo is None:
        moment = _localize(pd.Series([moment]), tz).iloc[0].to_pydatetime()
    utc = moment.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def booleans(series: pd.Series) -> list[Any]:
    """Booleans from bool/0/1/'true'/'f'...; anything else passes through for the contract to reject."""

    def one(v: Any) -> Any:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer)) and v in (0, 1):
            return bool(v)
        if isinstance(v, float) and v in (0.0, 1.0):
            return bool(v)
        text = str(v).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return v

    return _by_unique(series, one)


def integers(series: pd.Series) -> list[Any]:
    """Integers from int/float/Decimal/text; a non-integral value passes through for the contract."""

    def one(v: Any) -> Any:
        try:
            d = Decimal(str(v).strip())
        except InvalidOperation:
            return v
        return int(d) if d.is_finite() and d == d.to_integral_value() else v

    if pd.api.types.is_integer_dtype(series.dtype):
        return series.tolist()
    return _by_unique(series, one)


def lists(series: pd.Series, item: str = "str") -> list[list[Any] | None]:
    """Arrays from a JSON array text, a comma-separated text, or a single scalar (a category id).

    ``item`` is ``str`` (tags, pictures, categories) or ``raw`` (barcodes keep JSON numbers as numbers,
    as in the SKU seed example)."""

    def one(v: Any) -> list[Any]:
        if isinstance(v, (list, tuple)):
            values = list(v)
        elif isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                try:
                    values = orjson.loads(text)
                except orjson.JSONDecodeError:
                    values = [text]
            else:
                values = [p.strip() for p in text.split(",") if p.strip()]
        else:
            values = [v]
        if item == "str":
            return [str(int(x)) if isinstance(x, float) and x.is_integer() else str(x) for x in values]
        return values

    return _by_unique(series, one)


def strings(series: pd.Series) -> Column:
    arrow = _text_arrow(series)
    if arrow is not None:
        return arrow
    return by_unique_text(series, lambda v: v if isinstance(v, str) else str(v))


def html_unescaped(series: pd.Series) -> pd.Series:
    """Text the shop stores HTML-escaped (``Laptops &amp; Notebooks``, ``&quot;``, ``&#039;``) decoded as a
    browser shows it (``html.unescape``), once per distinct value; values without ``&`` and non-text values
    are left as they are. Decoding is idempotent only for text without literal ``&...;`` after decoding,
    so it is applied once, to the columns the mapping names."""
    import html

    def one(v: Any) -> Any:
        return html.unescape(v) if isinstance(v, str) and "&" in v else v

    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return series
    out = _by_unique(series, one)
    return pd.Series(out, index=series.index, dtype=series.dtype if isinstance(series.dtype, pd.StringDtype)
                     else object)


def custom_value(series: pd.Series, value_type: str, tz: ZoneInfo) -> Column:
    """A custom field's values in the JSON type its ``value_type`` asks for (docs/altcraft-api.md §2.5)."""
    if value_type == "int":
        return integers(series)
    if value_type == "float":
        return _by_unique(series, lambda v: float(v) if isinstance(v, (int, float, Decimal)) else v)
    if value_type == "bool":
        return booleans(series)
    if value_type == "date":
        return rfc3339(series, tz)
    return strings(series)
