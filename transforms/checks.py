"""The checks the contract is built from: the wire text dtype, the patterns (prices, currency, e-mail, RFC
3339 times) and the vectorised row checks. Each returns one bool a row (Arrow where the column is text),
and carries the label a quarantine row shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.compute as pc
from pandera import dtypes
from pandera.engines import pandas_engine

from altcraft_sync.catalogue import CUSTOM_LINE_STATUS_TYPES
from transforms.patterns import RFC3339 as RFC3339  # re-exported: the contract's patterns live here
from transforms.textchecks import _SPACE as _SPACE  # re-exported with the checks the contract is built from
from transforms.textchecks import CONTROL as CONTROL
from transforms.textchecks import EMAIL as EMAIL
from transforms.textchecks import matches as matches
from transforms.textchecks import no_controls as no_controls
from transforms.textchecks import non_empty as non_empty
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
PRICE_DIGITS = 15
"""Digits a price may have before the point. Altcraft documents no bound (prices are strings, api.md §0);
15 is what a double holds exactly, so a REAL of 1e300 is quarantined instead of sent as 301 digits."""
DESCRIPTION_MAX = 1000
_ = CUSTOM_LINE_STATUS_TYPES  # documented enum, enforced in config.CustomLineStatus


def price_pattern(scale: int) -> str:
    """Non-negative decimal string with at most ``scale`` places (str_matches is a prefix match: anchor it)."""
    whole = f"[0-9]{{1,{PRICE_DIGITS}}}"
    return rf"^{whole}$" if scale == 0 else rf"^{whole}(\.[0-9]{{1,{scale}}})?$"


def str_matches(pattern: str, label: str | None = None) -> pa.Check:
    """``Check.str_matches`` (same pattern, same ``str_matches('...')`` label unless ``label`` is given), run
    by Arrow's RE2 directly on ``Text`` columns.

    pandas 3's ``str.match`` re-parses the pattern with Python's ``re`` parser on every call, to decide
    whether RE2 can run it: ~0.3 ms a column a chunk for a price, over 1 ms for the e-mail pattern. Every
    pattern here is RE2-compatible with the same meaning (see ``EMAIL``); other dtypes (``object`` custom
    fields) take pandas' path, as the built-in check does."""
    name = label or f"str_matches('{pattern}')"
    return pa.Check(matches(pattern), name=name, error=name)


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
