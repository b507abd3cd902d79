"""Exact money in a reader's frame: what a money column holds (Decimal, decimal text, integers or binary
floats) and its sum in minor units, against the database's own sum (``bench/readers.py``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

ORDER_MONEY = ("total_price", "delivery_cost")
LINE_MONEY = ("final_price_per_item", "base_price_per_item", "min_price_per_item")
SCALE = 2


def money_kind(values: Any) -> str:
    """What a reader gives for a money column: ``decimal`` (Arrow decimal or ``Decimal`` objects), ``text``,
    ``int`` or ``float`` (a binary float: exact only if the database stores one), ``null`` (no value)."""
    import pandas as pd
    import pyarrow as pa

    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.ArrowDtype):
        t = dtype.pyarrow_dtype
        if pa.types.is_decimal(t):
            return "decimal"
        if pa.types.is_floating(t):
            return "float"
        if pa.types.is_integer(t):
            return "int"
        if pa.types.is_null(t):
            return "null"
        return "text" if pa.types.is_string(t) or pa.types.is_large_string(t) else str(t)
    if dtype is not None and pd.api.types.is_float_dtype(dtype):
        return "float"
    if dtype is not None and pd.api.types.is_integer_dtype(dtype):
        return "int"
    kinds = {type(v) for v in values if v is not None and not (isinstance(v, float) and v != v)}
    if not kinds:
        return "null"
    if kinds <= {Decimal}:
        return "decimal"
    if kinds <= {str}:
        return "text"
    if kinds <= {int}:
        return "int"
    return "float" if float in kinds else "+".join(sorted(k.__name__ for k in kinds))


def minor_units(values: Any, scale: int = SCALE) -> int:
    """The sum of a money column in minor units, exactly: Decimal, decimal text and integers through
    ``Decimal``; a binary float through its shortest repr (what SQLite stores is that float). A value that
    is not a whole number of minor units raises: it is not money at this scale."""
    import pandas as pd

    total = 0
    factor = Decimal(10) ** scale
    for v in (values.tolist() if hasattr(values, "tolist") else values):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            continue
        try:
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))
        except InvalidOperation:
            raise ValueError(f"not a decimal: {v!r}") from None
        scaled = d * factor
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{v!r} has more than {scale} places")
        total += int(scaled)
    return total


def money_check(frames: dict[str, Any], reference: dict[str, int], stored_float: bool) -> dict[str, Any]:
    """Whether a reader's money is exact: each money column's kind is never a binary float (unless the
    database stores binary floats: SQLite's REAL) and its minor-unit sum equals the database's own."""
    kinds: dict[str, str] = {}
    sums: dict[str, int] = {}
    for table, cols in (("orders", ORDER_MONEY), ("lines", LINE_MONEY)):
        frame = frames[table]
        for col in cols:
            if col in frame:
                kinds[col] = money_kind(frame[col])
                sums[col] = minor_units(frame[col])
    wrong = {c: (sums.get(c), ref) for c, ref in reference.items() if sums.get(c) != ref}
    floats = sorted(c for c, k in kinds.items() if k == "float")
    exact = not wrong and (stored_float or not floats)
    return {"exact": exact, "kinds": kinds, "wrong_sums": wrong, "floats": floats}
