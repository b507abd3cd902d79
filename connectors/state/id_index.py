"""A large set of external ids kept as a sorted array of 64-bit hashes: what the dependency checks ask
"does Altcraft hold this?" of.

A Python ``set`` of a catalogue's or a customer base's ids costs ~80-100 bytes an id (the str objects and
the hash table): 1M delivered profiles would hold ~100 MB for the whole run, and an index per stream grows
with the shop. Eight bytes an id in one numpy array keep it ~12x smaller, and a chunk's references are
looked up together (hashed in one vectorised pass, found by binary search).

The hash is pandas' ``hash_array`` (SipHash-2-4 with a fixed key): the same in every process and run. Two
ids sharing a 64-bit hash would make one look held when only the other is; with ``n`` ids held the chance
that a given absent id collides is ~n / 2^64 (5e-14 for 1M ids), and the cost of one would be a record sent
before its dependency, which Altcraft refuses and the next run re-sends: no row is lost either way."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

import numpy as np
import pandas as pd


def hash_ids(ids: Sequence[str]) -> np.ndarray:
    """The 64-bit hashes of ``ids`` (uint64, in order)."""
    if not len(ids):
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)


class IdIndex(Container[str]):
    """Sorted hashes of a set of ids (a repeated id costs 8 bytes and changes no answer). Built once (from
    batches, so the ids themselves are never all in memory at once); :meth:`contains` answers a batch,
    ``in`` a single id."""

    __slots__ = ("_hashes",)

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self._hashes = np.sort(hashes) if hashes is not None and len(hashes) else np.empty(0, dtype=np.uint64)

    @classmethod
    def of(cls, ids: Iterable[str]) -> IdIndex:
        return cls.from_batches([list(ids)])

    @classmethod
    def from_batches(cls, batches: Iterable[Sequence[str]]) -> IdIndex:
        parts = [hash_ids(batch) for batch in batches]
        return cls(np.concatenate(parts) if parts else None)

    def __len__(self) -> int:
        """The hashes held: the number of ids, counting an id given twice twice."""
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        return int(self._hashes.nbytes)

    @staticmethod
    def union(parts: Sequence[IdIndex]) -> IdIndex:
        return IdIndex(np.concatenate([p._hashes for p in parts])) if parts else IdIndex()

    def with_ids(self, ids: Iterable[str]) -> IdIndex:
        """This index and ``ids`` (a dry run's would-be-sent records, stand-ins)."""
        more = hash_ids(list(ids))
        return self if not len(more) else IdIndex(np.concatenate([self._hashes, more]))

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """Per id, whether the index holds it (bool array, in order)."""
        wanted = hash_ids(ids)
        if not len(self._hashes) or not len(wanted):
            return np.zeros(len(wanted), dtype=bool)
        at = np.minimum(np.searchsorted(self._hashes, wanted), len(self._hashes) - 1)
        return np.asarray(self._hashes[at] == wanted)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and bool(self.contains([item])[0])


def held_among(held: Container[str], ids: Sequence[str]) -> np.ndarray:
    """Per id, whether ``held`` holds it: one vectorised lookup for an :class:`IdIndex` (or a union of
    them), one membership test an id otherwise."""
    many = getattr(held, "contains", None)
    if many is not None:
        return np.asarray(many(ids), dtype=bool)
    return np.fromiter((i in held for i in ids), dtype=bool, count=len(ids))
