"""Prices: exact decimal strings for the wire and integer minor units for exact totals.

Every path gives the same answer for the same amount, whatever the column holds: integers, binary floats
(SQLite stores NUMERIC as REAL), ``Decimal`` objects, or decimal text (PostgreSQL/MySQL prices are read
as their own text). A value with more places than the money scale is never rounded: it is passed on in
full and the contract rejects it."""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transforms.values import STRING, Column, arrow_strings


def money(series: pd.Series, scale: int) -> tuple[Column, np.ndarray]:
    """Prices as exact decimal strings (``19.99`` -> ``"19.99"``, ``900.00`` -> ``"900"``) and as integer
    minor units (for exact totals; ``0`` where missing or not representable).

    Decimal and text values go through ``Decimal``. Binary floats (SQLite stores NUMERIC as REAL) are
    scaled and rounded to the nearest minor unit: a float read from a decimal with at most ``scale``
    places and under 2**53 / 10**scale round-trips exactly. A value with more places than ``scale`` is
    never rounded: it is passed on in full (``"19.999"``) and the contract rejects it.
    """
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        return _money_from_numbers(series, scale)
    one = partial(_money_one, factor=10**scale, scale=scale)
    plain = _plain_decimal_text(series, scale)
    if plain is None:  # Decimal objects or unusual text
        strings, minor = _by_decimal(series, one, scale)
        return strings.tolist(), minor
    # decimal text (PostgreSQL/MySQL prices are read as their own text): what the vectorised parse did not
    # take (nulls, other text) goes the Decimal way
    minor, exact = plain
    rest = np.flatnonzero(~exact)
    if not len(rest):
        return _minor_text_by_unique(minor, scale), minor
    codes, uniques = pd.factorize(minor)
    strings_arr = minor_strings(uniques, scale)[codes]
    strings_arr[rest], minor[rest] = _by_decimal(series.iloc[rest], one, scale)
    return strings_arr.tolist(), minor


def _money_from_numbers(series: pd.Series, scale: int) -> tuple[Column, np.ndarray]:
    """Integer and binary-float prices, vectorised: each scaled and rounded to a whole number of minor
    units when it is one within a few ULPs (a decimal with <= ``scale`` places); past 2**53 a float no
    longer holds every whole number, so such a value is never taken as exact."""
    factor = 10**scale
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    scaled = values * factor
    rounded = np.round(scaled)
    tolerance = np.maximum(1e-6, np.abs(scaled) * 4 * np.finfo(np.float64).eps)
    with np.errstate(invalid="ignore"):
        exact = (np.abs(scaled - rounded) <= tolerance) & (np.abs(rounded) < 2.0**53)
    minor = np.where(exact, rounded, 0).astype(np.int64)
    text = _minor_text_by_unique(minor, scale)
    if not exact.all():
        text = pc.if_else(pa.array(exact), text, pa.scalar(None, STRING))
    inexact = ~exact & ~np.isnan(values)
    if inexact.any():  # more places than ``scale``: passed on in full, for the contract to reject
        strings = text.to_pylist()
        for i in np.flatnonzero(inexact).tolist():
            strings[i] = _decimal_str(Decimal(repr(float(values[i]))))
        return strings, minor
    return text, minor


_EPS4 = 4 * float(np.finfo(np.float64).eps)


def _money_one(v: Any, factor: int, scale: int) -> int | str:
    """Minor units when ``v`` is a whole number of them (and fits int64), else the text to pass on."""
    if isinstance(v, float):  # a binary float among objects: the same rule as the vectorised path
        scaled = v * factor
        whole = round(scaled) if abs(scaled) < 2.0**53 else None
        if whole is not None and abs(scaled - whole) <= max(1e-6, abs(scaled) * _EPS4):
            return int(whole)
        return _decimal_str(Decimal(repr(v)))
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v).strip())
    except InvalidOperation:
        return str(v)
    if not d.is_finite():
        return str(v)
    q = d.scaleb(scale)
    if q != q.to_integral_value() or abs(q) >= 2**63:
        return _decimal_str(d)
    return int(q)


def _minor_text_by_unique(minor: np.ndarray, scale: int) -> pa.Array:
    """:func:`minor_text` of each value, rendered once per distinct value (prices repeat a lot)."""
    codes, uniques = pd.factorize(minor)
    return minor_text(uniques, scale).take(pa.array(codes))


def _by_decimal(series: pd.Series, one: Any, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``one`` (minor units or the text to pass on) once per distinct value; formatted vectorised like
    the float path. Nulls give ``None`` and 0."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    results = [one(u) for u in uniques.tolist()]
    whole_units = np.array([type(r) is int for r in results] + [False], dtype=bool)
    minor_u = np.array([r if type(r) is int else 0 for r in results] + [0], dtype=np.int64)
    strings_u = np.array([None if type(r) is int else r for r in results] + [None], dtype=object)
    if whole_units.any():
        strings_u[whole_units] = minor_strings(minor_u[whole_units], scale)
    return strings_u[codes], minor_u[codes]


def _plain_decimal_text(series: pd.Series, scale: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Minor units of a text column's plain decimals (``-?digits[.digits]``, how databases print NUMERIC),
    parsed vectorised with Arrow, and where that worked (not for nulls, other text, or more significant
    places than ``scale``: those are left to ``Decimal``). ``None`` when the column is not text.

    One regex picks the plain decimals with at most ``scale`` places besides trailing zeros, and Arrow's
    cast to ``decimal128(18, scale)`` parses them: its unscaled value is the minor units. The decimal text
    path parsed each distinct price with ``Decimal`` instead: 11.7 us an order on PostgreSQL, where nearly
    every total and line price is distinct."""
    digits = 18 - scale  # at most 18 digits in all: the unscaled value fits int64
    arr = arrow_strings(series)
    if arr is None or not len(arr) or digits < 1:
        return None
    fraction = rf"(\.[0-9]{{0,{scale}}}0*)?" if scale else r"(\.0*)?"
    plain = pc.fill_null(pc.match_substring_regex(arr, rf"^-?[0-9]{{1,{digits}}}{fraction}$"), False)
    parsed = pc.if_else(plain, arr, "0").cast(pa.decimal128(18, scale))
    # little-endian 128-bit integers whose values fit 64 bits: the low halves are the int64 values
    minor = np.frombuffer(parsed.buffers()[1], dtype=np.int64)[2 * parsed.offset::2][:len(parsed)].copy()
    exact = plain.to_numpy(zero_copy_only=False)
    minor[~exact] = 0
    return minor, exact


def minor_strings(minor: np.ndarray, scale: int) -> np.ndarray:
    """:func:`minor_text` as an object array of ``str``."""
    return minor_text(minor, scale).to_numpy(zero_copy_only=False)


def minor_text(minor: np.ndarray, scale: int) -> pa.Array:
    """``minor_to_str`` over an int64 array, vectorised: whole units as text plus the fraction's decimal
    tail from a table (``".5"``, ``".05"``, ``""``), joined in Arrow. Several times faster than one call
    per value, which matters for columns of mostly distinct prices (order totals)."""
    whole, frac = np.divmod(np.abs(minor), 10**scale)
    text = pa.array(whole).cast(pa.string())
    if scale:
        tails = (_fraction_tails(scale).take(pa.array(frac)) if scale <= 4
                 else pa.array([_tail(f, scale) for f in frac.tolist()], pa.string()))
        text = pc.binary_join_element_wise(text, tails, "")
    negative = minor < 0
    if negative.any():
        text = pc.if_else(pa.array(negative), pc.binary_join_element_wise("-", text, ""), text)
    return text


@functools.lru_cache(maxsize=4)
def _fraction_tails(scale: int) -> pa.Array:
    """Every tail of a scale up to 4 (10**scale of them), as a table to take from."""
    return pa.array([_tail(f, scale) for f in range(10**scale)], pa.string())


def _tail(frac: int, scale: int) -> str:
    return f".{frac:0{scale}d}".rstrip("0") if frac else ""


def minor_to_str(minor: int, scale: int) -> str:
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**scale)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{scale}d}".rstrip("0")


def _decimal_str(d: Decimal) -> str:
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
