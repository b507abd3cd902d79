"""A 64-bit digest of each record's raw source rows, so the engine can skip mapping a record that has not
changed since it was delivered or quarantined (``docs/sync-correctness.md``, "unchanged re-reads").

Pure: frames and a :class:`~transforms.spec.MappingSpec` in, one signed 64-bit integer per parent row out.
It imports neither pandera nor the contract: computing it must stay cheap on a run with nothing to map.

What goes into a record's digest, and why that is everything its payload and its validity depend on:

- **The parent row as read**, every column, including the columns a source query joins from other tables
  (a customer's e-mail on an order, consent flags on a person): a fix in a joined table changes the row
  the engine reads, so it changes the digest although no ``updated_at`` moved.
- **Its children** (order lines, regional rows) as a multiset: each child row is hashed and the hashes are
  summed per parent (modulo 2**64) together with their count, so the order in which the database returns
  the children does not matter, and a repeated child line is not cancelled out (as with XOR).
- **Each value by what it is, not by the dtype pandas inferred for its chunk** (a page whose prices are all
  whole is ``int64``, another ``float64``; a column with no value is ``object``): integers and integral
  floats by their integer, other floats by their bits, text by its hash, date-times by their
  microseconds (and zone offset), anything else by its type and text; each value salted with its
  column's name, so a value moved to another column does not match.
- **Everything else the mapper is given** (:func:`mapping_fingerprint`): the whole ``MappingSpec`` (the
  stream's section of the settings or preset, time zone, money scale, custom fields and line statuses,
  default currency, endpoint, ``total_mismatch``, ``max_name_length``, whether a profile stream owns the
  records), :data:`MAPPING_VERSION`, and the versions of pandas, pyarrow and pandera (their hashing,
  conversions and checks can change between releases). A change to any of them re-maps every record.

What is deliberately not in it, because it never changes a payload or a quarantine verdict of a record the
engine may skip: the mapping reads no clock (no check depends on "now"); the trigger window
(``skip_triggers``), stand-ins and deferral are decided when a record is sent, and a skipped record is one
the ledger holds as delivered with this very digest (nothing to send) or as quarantined. Records whose
outcome needs a fresh decision (deferred, failed, rejected) are never skipped, whatever their digest: the
engine decides that, not this module.

Text is hashed by :func:`pandas.util.hash_array` (SipHash), the rest combined with SplitMix64's finaliser:
NULL and ``""`` differ; ``1.10`` and ``1.1`` read as numbers are one value, read as text or ``Decimal`` (as
PostgreSQL and MySQL money is read) two, which costs at most a needless re-map. A digest that cannot be
computed is ``None`` for every record of the chunk: nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from pandas.util import hash_array

from altcraft_sync.cursor import PARENT, PK

if TYPE_CHECKING:
    from transforms.spec import MappingSpec

MAPPING_VERSION = 1
"""Bump this whenever a change to ``transforms/`` (or to what the engine hands the mapper) can change a
payload or a quarantine verdict for the same rows and settings: every record's stored digest then stops
matching and the next run maps everything once. Forgetting it leaves records delivered under the old
mapping in Altcraft until their rows change."""


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # pydantic settings models
        return value.model_dump(mode="json")
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    out = {}
    for package in ("pandas", "pyarrow", "pandera"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "-"
    return out


def mapping_fingerprint(m: MappingSpec) -> bytes:
    """Eight bytes that change with anything besides the rows that shapes ``m.stream``'s payloads."""
    spec = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
    text = orjson.dumps({"spec": spec, "version": MAPPING_VERSION, "libraries": _versions()},
                        default=_plain, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(text, digest_size=8).digest()


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_FLOAT = np.uint64(0x5BD1E9955BD1E995)
"""Set on the bits of a fractional float, so its key is not that of an integer with the same bits."""
_INTEGRAL = 2.0**63
_NAIVE, _AWARE = np.uint64(0x2545F4914F6CDD1D), np.uint64(0x9FB21C651E98DF25)
"""Set on a date-time's microseconds, so its key is not that of the same integer (and naive is not aware)."""
_EPOCH, _MICRO = datetime(1970, 1, 1), timedelta(microseconds=1)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, vectorised (uint64 arithmetic wraps): a bijection that spreads every bit."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _salt(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def _float_keys(v: np.ndarray) -> np.ndarray:
    """A number's key whatever column type pandas inferred for it: an integral value is its integer (5.0
    in a float column is 5 in an integer one), a fractional one its bits."""
    integral = np.isfinite(v) & (v == np.floor(v)) & (np.abs(v) < _INTEGRAL)
    out = v.view(np.uint64) ^ _FLOAT
    out[integral] = v[integral].astype(np.int64).view(np.uint64)
    return out


def _object_keys(values: np.ndarray) -> np.ndarray:
    """Keys of a column of Python objects, value by value, equal to those the typed paths give: integers
    and integral floats as integers, other floats by their bits, text by its hash, date-times by
    :func:`_time_key`, and anything else by the hash of its type and text (a ``Decimal`` keeps its scale:
    ``1.10`` and ``1.1`` differ)."""
    keys = np.zeros(len(values), dtype=np.uint64)
    texts: list[str] = []
    text_at: list[int] = []
    floats: list[float] = []
    float_at: list[int] = []
    for i, v in enumerate(values.tolist()):
        if isinstance(v, float):
            floats.append(v)
            float_at.append(i)
        elif isinstance(v, int) and -(2**63) <= v < 2**63:  # bool too: True is 1, as in a bool column
            keys[i] = v & 0xFFFFFFFFFFFFFFFF
        elif isinstance(v, str):
            texts.append(v)
            text_at.append(i)
        elif isinstance(v, datetime) and v is not pd.NaT and not getattr(v, "nanosecond", 0):
            keys[i] = _time_key(v)  # (a Timestamp with nanoseconds goes as text)
        elif v is not None:
            texts.append("\x00" + (f"t:{v.isoformat()}" if hasattr(v, "isoformat") else f"{type(v).__name__}:{v}"))
            text_at.append(i)
    if floats:
        keys[float_at] = _float_keys(np.array(floats, dtype=np.float64))
    if texts:
        keys[text_at] = hash_array(np.array(texts, dtype=object), categorize=False)
    return keys


def _stamp_keys(values: Any) -> np.ndarray | None:
    """:func:`_time_key` for a whole column at once (PostgreSQL's and MySQL's drivers give every cursor and
    time value as a Python ``datetime``; one by one they cost more than the rest of the digest). None (go
    value by value) unless the column converts as a whole: times of one zone or none, none finer than a
    microsecond."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stamps = pd.DatetimeIndex(values)
    except (TypeError, ValueError, OverflowError, Warning):  # mixed zones, dates, text: one by one
        return None
    if stamps.unit == "ns" and bool((stamps.asi8[~stamps.isna()] % 1000).any()):
        return None  # nanoseconds: value by value, as text
    stamps = stamps.as_unit("us")
    if stamps.tz is None:
        return stamps.asi8.view(np.uint64) ^ _NAIVE
    local = stamps.tz_localize(None)
    offset = (local.asi8 - stamps.tz_convert("UTC").tz_localize(None).asi8) // 1_000_000
    return local.asi8.view(np.uint64) ^ _AWARE ^ _mix(offset.view(np.uint64))


def _time_key(v: datetime) -> int:
    """A date-time's key: its wall-clock microseconds since 1970, and for an aware one its UTC offset too
    (a re-read that shows the same instant in another zone is a changed row: its payload may differ)."""
    offset = v.utcoffset()
    local = (v.replace(tzinfo=None) - _EPOCH) // _MICRO
    if offset is None:
        return (local & 0xFFFFFFFFFFFFFFFF) ^ int(_NAIVE)
    seconds = np.array([int(offset.total_seconds())], dtype=np.int64).view(np.uint64)
    return (local & 0xFFFFFFFFFFFFFFFF) ^ int(_AWARE) ^ int(_mix(seconds)[0])


def _column_keys(column: pd.Series) -> np.ndarray:
    """One uint64 key per value that depends on the value alone, not on the dtype pandas inferred for the
    chunk it came in (a page whose prices happen to be whole is ``int64``, another ``float64``; a column
    with no value is ``object``)."""
    kind = column.dtype.kind
    nulls = bool(column.hasnans)  # a nullable or Arrow integer column with a NULL goes value by value
    if kind == "b" and not nulls:
        return column.to_numpy(dtype=np.uint64)
    if (kind == "i" or (kind == "u" and (not len(column) or int(column.max()) < 2**63))) and not nulls:
        return column.to_numpy(dtype=np.int64).view(np.uint64)
    if kind == "f":
        return _float_keys(column.to_numpy(dtype=np.float64, na_value=np.nan))
    if kind == "M":
        keys = _stamp_keys(column.array)
        if keys is not None:
            return keys
    values = column.to_numpy(dtype=object)
    if isinstance(column.dtype, pd.StringDtype):
        return hash_array(values, categorize=False)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "empty":  # every value NULL (a column no row of the chunk fills): NULL adds nothing
        return np.zeros(len(values), dtype=np.uint64)
    if inferred == "string":
        return hash_array(values, categorize=False)
    if inferred == "datetime":
        keys = _stamp_keys(values)
        if keys is not None:
            return keys
    if inferred == "integer":  # the common object column: a key read as Python ints
        try:
            return values.astype(np.int64).view(np.uint64)
        except (OverflowError, TypeError, ValueError):  # a NULL, or past 64 bits
            pass
    return _object_keys(values)


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row over its values, each salted with its column's name and summed: the order of
    the columns does not matter, and a NULL adds nothing (a column the read leaves out when it has no value,
    such as the problem marker, is the same as NULL)."""
    total = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in frame.columns:
            column = frame[name]
            keys = _mix(_column_keys(column) ^ _salt(str(name)))
            keys[column.isna().to_numpy()] = 0
            total += keys
    return _mix(total)


def parent_positions(parent_keys: np.ndarray, child_parents: np.ndarray) -> np.ndarray:
    """Each child's parent position (-1 for none), as the mappers match them: integer keys as int64,
    any other key as a Python value (``7`` and ``7.0`` are one key)."""
    if parent_keys.dtype.kind in "iu" and child_parents.dtype.kind in "iu":
        return np.asarray(pd.Index(parent_keys).get_indexer(child_parents))
    return np.asarray(pd.Index(parent_keys.astype(object)).get_indexer(child_parents.astype(object)))


def raw_digests(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> np.ndarray | None:
    """A signed 64-bit digest per row of ``parents`` over the row, its ``children`` (matched by
    ``_parent`` to the parents' ``_pk``; their order does not matter) and :func:`mapping_fingerprint`;
    ``None`` when the frames cannot be hashed or a parent key repeats (a join that repeats a key: whose
    children are whose is the mapper's to report), and then no record of the chunk may be skipped."""
    n = len(parents)
    try:
        parent_hash = _row_hashes(parents)
        child_sum = np.zeros(n, dtype=np.uint64)
        child_count = np.zeros(n, dtype=np.uint64)
        if children is not None and len(children) and n:
            pos = parent_positions(parents[PK].to_numpy(), children[PARENT].to_numpy())
            hashes = _row_hashes(children)
            kept = pos >= 0
            np.add.at(child_sum, pos[kept], hashes[kept])  # uint64 addition wraps: a sum modulo 2**64
            np.add.at(child_count, pos[kept], np.uint64(1))
    except (TypeError, ValueError, OverflowError, pd.errors.InvalidIndexError):  # a repeated parent key, too
        return None
    salt = int.from_bytes(mapping_fingerprint(m), "little")
    with np.errstate(over="ignore"):
        combined = _mix(parent_hash ^ _salt("parent")) + _mix(child_sum ^ _salt("children")) + _mix(child_count)
        return _mix(combined ^ np.uint64(salt)).view(np.int64)
