"""The checks the contract is built from: the wire text dtype, the patterns (prices, currency, e-mail, RFC
3339 times) and the vectorised row checks. Each returns one bool a row (Arrow where the column is text),
and carries the label a quarantine row shows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera import dtypes
from pandera.engines import pandas_engine

from altcraft_sync.catalogue import CUSTOM_LINE_STATUS_TYPES
from transforms.patterns import RFC3339 as RFC3339  # re-exported: the contract's patterns live here
from transforms.values import arrow_strings


@pandas_engine.Engine.register_dtype
@dtypes.immutable(init=True)
class Text(pandas_engine.STRING):
    """String columns: pandas' own string dtype, checked once per column.

    ``contract_frame`` builds them with that dtype. Annotated ``Series[str]``, pandera tests every value with
    ``isinstance`` (0.23 us a value); annotated ``pd.StringDtype``, pandera 0.35 answers a matching column
    with a per-row array and then formats a failure report of no rows (a DataFrame ``repr``) for every
    column of every chunk: ~2 us an order. This answers with one bool, as pandera's own numpy dtypes do."""

    def check(self, pandera_dtype: dtypes.DataType, data_container: object = None) -> bool:
        try:
            return pandas_engine.Engine.dtype(pandera_dtype).type == self.type
        except TypeError:
            return False


CURRENCY = r"^[A-Z]{3}$"
"""ISO 4217 alphabetic code: Altcraft takes only currencies enabled in the account, named by their code."""
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
PRICE_DIGITS = 15
"""Digits a price may have before the point. Altcraft documents no bound (prices are strings, api.md §0);
15 is what a double holds exactly, so a REAL of 1e300 is quarantined instead of sent as 301 digits."""
DESCRIPTION_MAX = 1000
_ = CUSTOM_LINE_STATUS_TYPES  # documented enum, enforced in config.CustomLineStatus


def price_pattern(scale: int) -> str:
    """Non-negative decimal string with at most ``scale`` places (str_matches is a prefix match: anchor it)."""
    whole = f"[0-9]{{1,{PRICE_DIGITS}}}"
    return rf"^{whole}$" if scale == 0 else rf"^{whole}(\.[0-9]{{1,{scale}}})?$"


def _bools(values: pyarrow.Array, index: pd.Index) -> pd.Series:
    return pd.Series(values.to_numpy(zero_copy_only=False), index=index)


def str_matches(pattern: str, label: str | None = None) -> pa.Check:
    """``Check.str_matches`` (same pattern, same ``str_matches('...')`` label unless ``label`` is given), run
    by Arrow's RE2 directly on ``Text`` columns.

    pandas 3's ``str.match`` re-parses the pattern with Python's ``re`` parser on every call, to decide
    whether RE2 can run it: ~0.3 ms a column a chunk for a price, over 1 ms for the e-mail pattern. Every
    pattern here is RE2-compatible with the same meaning (see ``EMAIL``); other dtypes (``object`` custom
    fields) take pandas' path, as the built-in check does."""
    name = label or f"str_matches('{pattern}')"
    return pa.Check(matches(pattern), name=name, error=name)


def matches(pattern: str) -> Callable[[pd.Series], pd.Series]:
    """The vectorised test behind :func:`str_matches` (a null is not this check's business: it passes)."""

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
    return _bools(pc.invert(pc.fill_null(pc.match_substring_regex(arr, CONTROL), False)), s.index)


def non_empty(s: pd.Series) -> pd.Series:
    """Present and not the empty string."""
    arr = arrow_strings(s)
    if arr is None:
        return s.notna() & (s.astype("str") != "")
    return _bools(pc.fill_null(pc.greater(pc.binary_length(arr), 0), False), s.index)


def unique_within(df: pd.DataFrame, parent: str, key: str) -> pd.Series:
    """No two rows of one parent share ``key`` (a line's ``external_id`` within its order).

    Keys unique across the whole frame (line ids usually are) are answered by one Arrow distinct count;
    otherwise the pairs are compared, ~1.5 ms per 15,000 rows."""
    arr = arrow_strings(df[key])
    if arr is not None and not arr.null_count and pc.count_distinct(arr).as_py() == len(arr):
        return pd.Series(True, index=df.index)
    return ~df.duplicated([parent, key], keep=False)


def _all(s: pd.Series, kinds: tuple[str, ...]) -> bool:
    """Every present value is of one of pandas' inferred ``kinds`` (one pass in C, not a call per value)."""
    return pd.api.types.infer_dtype(s, skipna=True) in kinds + ("empty",)


def is_int(s: pd.Series, minimum: int) -> pd.Series:
    """Python/numpy integers >= minimum (vectorised: type test, then a numeric comparison)."""
    if _all(s, ("integer",)):  # the usual case: compare as int64 (bools infer as "boolean", never here)
        try:
            return pd.Series(s.to_numpy().astype(np.int64) >= minimum, index=s.index)
        except TypeError:  # a null among them (pandera drops them first; called directly, it may not)
            pass
        except OverflowError:  # past int64: the general path below
            pass
        present = s.notna().to_numpy()
        try:
            values = s.to_numpy()[present].astype(np.int64)
        except OverflowError:
            pass
        else:
            ok = ~present
            ok[present] = values >= minimum
            return pd.Series(ok, index=s.index)
    types = s.map(type)
    is_int = types.isin([int, np.int64, np.int32]).to_numpy()
    num = pd.to_numeric(s.where(is_int), errors="coerce")
    return pd.Series(is_int & (num >= minimum).to_numpy(), index=s.index) | s.isna()


def positive_int(s: pd.Series) -> pd.Series:
    return is_int(s, 1)


def any_int(s: pd.Series) -> pd.Series:
    return is_int(s, -(2**63))


def boolean(s: pd.Series) -> pd.Series:
    if _all(s, ("boolean",)):
        return pd.Series(True, index=s.index)
    return s.map(type).isin([bool, np.bool_]) | s.isna()


def text(s: pd.Series) -> pd.Series:
    if _all(s, ("string",)):
        return pd.Series(True, index=s.index)
    return s.map(lambda v: isinstance(v, str)).astype(bool) | s.isna()


def number(s: pd.Series) -> pd.Series:
    if _all(s, ("integer", "floating", "mixed-integer-float")):
        return pd.Series(True, index=s.index)
    return s.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).astype(bool) | s.isna()


# Model checks carry their label as ``error``, not ``name``: pandera 0.35 pops ``name`` off the shared check
# info the first time a model is turned into a schema (``BaseCheckInfo.to_check``), so the second schema
# built from it (or from a subclass: ``SkuContract``) would report the method's name (``_count``) instead.
