"""The text checks the mappers need as well as the contract (an e-mail's form, presence, the wire's
regular expressions run in Arrow), in a module without pandera: mapping a chunk imports the contract, but
a run that maps nothing (every record unchanged, ``transforms.digest``) must not pay pandera's import.
:mod:`transforms.checks` re-exports them with the checks built on pandera."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from transforms.values import arrow_strings

_SPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
          "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""Python's ``\\s``, spelled out: with ``\\s`` pandas runs the match in Python's ``re`` (RE2's ``\\s`` is
ASCII only), one value at a time; spelled out, it runs in Arrow with the same meaning. Written out rather
than computed (every code point's ``isspace()``: 0.3 s of every start); a test checks it is the same set."""
_INVISIBLE = "\\x00-\\x1f\\x7f\u200b\u200c\u200d\u2060\ufeff"
"""Control characters (NUL included, as the regex escape both engines read) and the zero-width ones: an
address holding one is sent as it is and never matches the profile it means."""
EMAIL = f"^[^@{_SPACE}{_INVISIBLE}]+@[^@{_SPACE}{_INVISIBLE}]+\\.[^@{_SPACE}{_INVISIBLE}]+$"
CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"
"""NUL and the control characters no text field carries (tab, line feed and carriage return are text)."""


def _bools(values: pyarrow.Array, index: pd.Index) -> pd.Series:
    return pd.Series(values.to_numpy(zero_copy_only=False), index=index)


def matches(pattern: str) -> Callable[[pd.Series], pd.Series]:
    """The vectorised test behind ``transforms.checks.str_matches`` (a null is not this check's business: it passes)."""

    def check(s: pd.Series) -> pd.Series:
        arr = arrow_strings(s)
        if arr is None:
            return s.isna() | s.astype("str").str.match(pattern).fillna(False).astype(bool)
        return _bools(pc.fill_null(pc.match_substring_regex(arr, pattern), True), s.index)

    return check


def no_controls(s: pd.Series) -> pd.Series:
    """No NUL or other control character (a null passes: not this check's business)."""
    arr = arrow_strings(s)
    if arr is None:
        return s.isna() | ~s.astype("str").str.contains(CONTROL, regex=True).fillna(False).astype(bool)
    if not _may_hold_controls(arr):
        return pd.Series(True, index=s.index)
    return _bools(pc.invert(pc.fill_null(pc.match_substring_regex(arr, CONTROL), False)), s.index)


def _may_hold_controls(arr: pyarrow.Array) -> bool:
    """Whether the bytes of ``arr``'s values hold one below 0x20 or 0x7F. UTF-8 writes every code point
    below 0x80 as that one byte and never uses such a byte inside a longer sequence, so text without one
    holds no control character, and the regular expression need not run. Two comparisons over the bytes
    cost a fraction of the match (most text has none; a tab or a line break sends the column to the match).
    """
    large = pyarrow.types.is_large_string(arr.type)
    if not (large or pyarrow.types.is_string(arr.type)):  # another layout (string views): ask the match
        return True
    offsets, data = arr.buffers()[1:3]
    if data is None or offsets is None or not len(arr):
        return False
    width = np.int64 if large else np.int32
    bounds = np.frombuffer(offsets, dtype=width)[[arr.offset, arr.offset + len(arr)]]
    values = np.frombuffer(data, dtype=np.uint8)[int(bounds[0]):int(bounds[1])]
    return bool((values < 0x20).any() or (values == 0x7F).any())


def non_empty(s: pd.Series) -> pd.Series:
    """Present and not the empty string."""
    arr = arrow_strings(s)
    if arr is None:
        return s.notna() & (s.astype("str") != "")
    return _bools(pc.fill_null(pc.greater(pc.binary_length(arr), 0), False), s.index)
