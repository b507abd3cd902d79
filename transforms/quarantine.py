"""Quarantine rows: what an invalid record is kept as (entity, external id, source key, check, field,
value), built from the contract's failure rows or the source's marks. Pure, no I/O."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from altcraft_sync.keys import canonical_key
from transforms import values as V

QUARANTINE_COLUMNS = ["entity", "external_id", "source_pk", "check", "field", "value"]


_EMPTY_QUARANTINE = pd.DataFrame({c: pd.Series([], dtype=object) for c in QUARANTINE_COLUMNS})


def empty_quarantine() -> pd.DataFrame:
    """A quarantine of no rows (a copy of one built once: building a frame costs ~0.3 ms, every chunk
    needs a few)."""
    return _EMPTY_QUARANTINE.copy()


def quarantine_rows(entity: str, fails: pd.DataFrame, external_ids: V.Column, source_pks: list[Any]) -> pd.DataFrame:
    """Failure rows (``pos, check, field, value``) as quarantine rows naming the record."""
    if fails.empty:
        return empty_quarantine()
    external_ids = V.pylist(external_ids)
    pos = fails["pos"].to_numpy()
    return pd.DataFrame({
        "entity": entity,
        "external_id": [external_ids[p] for p in pos.tolist()],
        "source_pk": pd.Series([canonical_key(source_pks[p]) for p in pos.tolist()], dtype=object),
        "check": fails["check"].to_numpy(),
        "field": _objects(fails["field"]),
        "value": _objects(fails["value"]),
    }, columns=QUARANTINE_COLUMNS)


def _objects(column: pd.Series) -> pd.Series:
    """A failure column as plain objects, a missing value as None: pandas 3 would read a mix of text and
    None as its string dtype, whose missing value is NaN (a reason's field would read ``nan``)."""
    return pd.Series([None if v is None or (isinstance(v, float) and v != v) else v for v in column.tolist()],
                     dtype=object)


def null_key_id(frame: pd.DataFrame, i: int) -> str:
    """A row without key or external_id, named by a digest of its values: two such rows stay two
    quarantine rows, and the same row keeps its name from run to run."""
    values = "\x1f".join(str(v) for v in frame.iloc[i].tolist())
    return f"(NULL key) row {hashlib.sha1(values.encode(), usedforsecurity=False).hexdigest()[:12]}"


def with_quarantine(*parts: pd.DataFrame) -> pd.DataFrame:
    """Quarantine parts as one frame (empty parts left out)."""
    non_empty = [p for p in parts if not p.empty]
    if not non_empty:
        return empty_quarantine()
    return non_empty[0] if len(non_empty) == 1 else pd.concat(non_empty, ignore_index=True)
