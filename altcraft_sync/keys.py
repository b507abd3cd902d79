"""A source key as the state database holds it: one canonical text per key, written once and read back
whatever an older version or a bad run left there.

pandas turns an integer column with a NULL into floats, so the key 1443 can reach us as ``1443.0``; a
``Decimal`` key as ``Decimal('1443')``; numpy scalars as ``np.int64``. All of them are ``"1443"``. A key
read back from the state (``"1443.0"`` written by an older version, ``"None"``/``"nan"`` by a bad run) is
turned into the key's own type, or into ``None`` (not a key: the caller skips it) when it cannot be one,
never an exception that stops every later run."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

NOT_A_KEY = frozenset({"", "none", "nan", "null", "nat", "<na>"})
"""What a missing key looked like once written as text."""


def canonical_key(value: Any) -> str | None:
    """The key's canonical text, or ``None`` for a missing key (NULL, NaN, pandas' NA)."""
    kind = type(value)
    if kind is int:  # the common keys first: this runs twice for every record a run sends
        return str(value)
    if kind is str:
        return value
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def integer_key(text: Any) -> int | None:
    """An integer key from its stored text (``"17"``, ``"17.0"``, ``" 17 "``), or ``None``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    raw = str(text).strip()
    if raw.lower() in NOT_A_KEY:
        return None
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def key_reader(kind: type | None) -> Callable[[Any], Any]:
    """How stored key texts are read back for a key column of Python type ``kind`` (``int``, ``str``,
    or ``None`` when unknown: integers where the text is one). Missing keys come back as ``None``."""
    if kind is int:
        return integer_key

    def as_text(text: Any) -> Any:
        if text is None or str(text).strip().lower() in NOT_A_KEY:
            return None
        return str(text)

    if kind is str:
        return as_text

    def guess(text: Any) -> Any:
        number = integer_key(text)
        return number if number is not None else as_text(text)

    return guess
