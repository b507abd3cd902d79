"""UTF-8 bytes stored in MySQL/MariaDB ``latin1`` columns, as the server hands them out.

MySQL's ``latin1`` is not ISO-8859-1: it is Windows-1252 (cp1252), with the five bytes cp1252 leaves
undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) passed through as the C1 controls of the same number (MySQL
manual, "West European Character Sets"; ``strings/ctype-latin1.cc`` in the server source). A shop installed
with the wrong charset stores UTF-8 bytes in such columns; the server converts each byte by that table,
so ``Café`` arrives as ``CafÃ©`` and each Cyrillic letter or ``€`` as two or three characters. Mapping every character
back to its byte through the same table and decoding the bytes as UTF-8 gives the text back. Real latin1
text does not survive that (an accented letter followed by a plain one is not valid UTF-8), so it is left
alone."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _table() -> dict[str, int]:
    out: dict[str, int] = {}
    for b in range(256):
        try:
            ch = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined: MySQL passes them through
            ch = chr(b)
        out[ch] = b
    return out


_BYTE_OF = _table()


def undo(value: str) -> str | None:
    """``value`` turned back into the UTF-8 text it was double-encoded from, or None when it is not such
    a value (ASCII, a character outside MySQL's latin1, bytes that are not UTF-8)."""
    if value.isascii():
        return None
    try:
        raw = bytes(_BYTE_OF[c] for c in value)
    except KeyError:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text != value else None


def undo_series(series: pd.Series) -> pd.Series:
    """Every double-encoded value of a text column turned back; anything else unchanged."""
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return series

    def fix(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        fixed = undo(v)
        return v if fixed is None else fixed

    values = series.tolist()
    fixed = [fix(v) for v in values]
    if fixed == values:
        return series
    return pd.Series(fixed, index=series.index, dtype=series.dtype)


def first_double_encoded(series: pd.Series) -> tuple[str, str] | None:
    """The first value of a text column that looks double-encoded, with what it would be turned back
    into; None when there is none (for the warning given while ``source.utf8_in_latin1`` is off)."""
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return None
    for v in series.dropna().unique().tolist():
        if isinstance(v, str):
            fixed = undo(v)
            if fixed is not None:
                return v, fixed
    return None
