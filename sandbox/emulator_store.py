"""What the emulated account holds and the faults it is told to show: plain data, shared by the emulator's
methods (:mod:`sandbox.emulator`, :mod:`sandbox.emulator_profiles`), its checks and its HTTP layer, so none
of those modules has to import another to know the account's shape."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Faults:
    """Fault injection; every field can be changed while the server runs (``POST /__emulator/faults``)."""

    rate_limit_every: int = 0
    """Answer every Nth API request with HTTP 429 and ``Retry-After`` (0 = never)."""
    retry_after: float = 0.05
    error_rate: float = 0.0
    """Fraction of API requests answered with a random 500/502/503/504."""
    drop_rate: float = 0.0
    """Fraction of API requests whose connection is closed without an answer."""
    latency_ms: float = 0.0
    tariff_exceeded: bool = False
    """Answer every import with body error 402 (tariff limit)."""
    reject: dict[str, list[Any]] = field(default_factory=dict)
    """external_id (or a profile's e-mail / phone) -> [code, text]: a per-item error forced on that record
    until removed."""
    short_profile_results: bool = False
    """``profiles/import_batch`` answers with one result fewer than the items it got (the result has no
    echo of the input key, so a client that zips by position must notice and fall back)."""
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, value)


@dataclass
class Store:
    """What the emulated account holds, keyed by external_id; ``seq`` gives stable paging order. Profiles
    are keyed by their profile id (a hex string, as Altcraft's)."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    skus: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_line_statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile_index: dict[str, set[str]] = field(default_factory=dict)
    """Every e-mail (lower-cased) and phone a profile holds, in its fields or subscriptions -> profile ids."""
    ids: dict[tuple[str, str], int] = field(default_factory=dict)
    seq: int = 0
    in_order: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """Per kind, every (internal id, external id) ever given, in id order (ids only grow): a list page
    starts where its ``from_id`` falls instead of sorting the whole collection, as a database's index
    would (sorting 1M orders for a one-record page took the emulator ~2 s)."""

    def internal_id(self, kind: str, external_id: str) -> int:
        key = (kind, external_id)
        if key not in self.ids:
            self.seq += 1
            self.ids[key] = self.seq
            self.in_order.setdefault(kind, []).append((self.seq, external_id))
        return self.ids[key]

    def after(self, kind: str, from_id: int) -> Iterator[tuple[int, str]]:
        """(internal id, external id) of ``kind`` with an id above ``from_id``, in id order; records
        deleted since are still among them (the caller checks what is stored)."""
        given = self.in_order.get(kind, [])
        start = bisect.bisect_right(given, from_id, key=lambda pair: pair[0])
        return itertools.islice(given, start, None)


KINDS = ("orders", "products", "skus", "categories", "profiles")
"""The stored collections the control routes (stats, digest, store, reset) name."""


class Account(Protocol):
    """What the checks and the HTTP layer see of the emulator (it is one; they never import it)."""

    store: Store
    faults: Faults
    currencies: set[str]
    require_known_products: bool
    lock: Any
    stats: Any
    in_flight: int

    def handle(self, method: str, body: dict[str, Any], bearer: str | None) -> dict[str, Any]: ...

    def injected_fault(self) -> tuple[str, Any] | None: ...

    def reset(self, kinds: list[str] | None = None) -> None: ...
