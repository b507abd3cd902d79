"""What the emulated account holds, in a form that compares across senders (``GET /__emulator/digest/<kind>``).

The benchmark runs altcraft-sync, drt and dlt into the same emulator and must tell whether they delivered
the same records. Each sender spells the same value its own way: ``"10.50"``, ``"10.5"`` or ``10.5``; an
absent field or an explicit null; lines in any order. Altcraft treats those spellings alike (api.md: prices
are strings or numbers, an omitted optional field is unset), so the digest does too: it drops nulls,
writes numbers as normalized decimals, sorts keys and orders lists of records by ``external_id``. Anything
else that differs (a status, a line, a custom field, a time format) changes the record's digest.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson


def _number(value: str | int | float) -> str | None:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def canonical(value: Any) -> Any:
    """The value with Altcraft-equivalent spellings made equal (see the module docstring)."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if items and all(isinstance(v, dict) and "external_id" in v for v in items):
            items.sort(key=lambda v: str(v["external_id"]))
        return items
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        number = _number(value) if value[:1].isdigit() or value[:1] in "-." else None
        return number if number is not None and "e" not in value.lower() else value
    return value


def digest(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    """external_id -> a short hash of the record's canonical form."""
    return {ext: hashlib.blake2b(orjson.dumps(canonical(rec)), digest_size=8).hexdigest() for ext, rec in records.items()}
