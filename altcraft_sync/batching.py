"""Splitting a sequence into batches: every lookup by keys, every upsert and every delete goes in batches
(a database's parameter limit, Altcraft's batch size, a chunk)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (``itertools.batched`` arrives in Python 3.12)."""
    it = iter(items)
    while part := list(islice(it, size)):
        yield part
