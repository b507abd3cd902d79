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
- **The columns' names and dtypes**, so the same values read under another column or type do not match.
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

Values are hashed by :func:`pandas.util.hash_pandas_object`: NULL and ``""`` differ, numbers are hashed by
their bits (``1.10`` and ``1.1`` read as floats are one value; read as text or ``Decimal`` they are two
texts, which only costs a needless re-map). A digest that cannot be computed (a column of a type pandas
cannot hash) is ``None`` for every record: nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from pandas.util import hash_pandas_object

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


def _frame_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row over every column, in column-name order (the read's column order is not
    part of a record)."""
    columns = sorted(frame.columns, key=str)
    return np.asarray(hash_pandas_object(frame[columns], index=False, categorize=False), dtype=np.uint64)


def _parent_positions(parent_keys: np.ndarray, child_parents: np.ndarray) -> np.ndarray:
    """Each child's parent position (-1 for none), as the mappers match them: integer keys as int64,
    any other key as a Python value (``7`` and ``7.0`` are one key)."""
    if parent_keys.dtype.kind in "iu" and child_parents.dtype.kind in "iu":
        return np.asarray(pd.Index(parent_keys).get_indexer(child_parents))
    return np.asarray(pd.Index(parent_keys.astype(object)).get_indexer(child_parents.astype(object)))


def _shape(frame: pd.DataFrame | None) -> list[tuple[str, str]]:
    return [] if frame is None else sorted((str(c), str(t)) for c, t in frame.dtypes.items())


def raw_digests(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> np.ndarray | None:
    """A signed 64-bit digest per row of ``parents`` over the row, its ``children`` (matched by
    ``_parent`` to the parents' ``_pk``; their order does not matter) and :func:`mapping_fingerprint`;
    ``None`` when the frames cannot be hashed (then no record may be skipped)."""
    n = len(parents)
    try:
        parent_hash = _frame_hashes(parents) if n else np.zeros(0, dtype=np.uint64)
        child_sum = np.zeros(n, dtype=np.uint64)
        child_count = np.zeros(n, dtype=np.uint64)
        if children is not None and len(children) and n:
            pos = _parent_positions(parents[PK].to_numpy(), children[PARENT].to_numpy())
            hashes = _frame_hashes(children)
            kept = pos >= 0
            np.add.at(child_sum, pos[kept], hashes[kept])  # uint64 addition wraps: a sum modulo 2**64
            np.add.at(child_count, pos[kept], np.uint64(1))
    except (TypeError, ValueError):
        return None
    salt = hashlib.blake2b(mapping_fingerprint(m) + orjson.dumps([_shape(parents), _shape(children)]),
                           digest_size=8).digest()
    combined = pd.DataFrame({"row": parent_hash, "children": child_sum, "count": child_count,
                             "salt": np.full(n, int.from_bytes(salt, "little"), dtype=np.uint64)})
    digests = np.asarray(hash_pandas_object(combined, index=False, categorize=False), dtype=np.uint64)
    return digests.view(np.int64)
