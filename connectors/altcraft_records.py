"""What goes to Altcraft and what comes back: a record as JSON bytes, and each record's outcome
(delivered, rejected with Altcraft's code and text, or failed transiently) gathered in a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

TRANSIENT_ITEM_CODES = frozenset({429, 500, 502, 503, 504})
"""Per-item codes treated as 'failed transiently' (INFERRED: Altcraft documents no per-item codes)."""

Status = Literal["delivered", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one record: delivered, rejected by Altcraft (code + text), or failed transiently."""

    external_id: str
    status: Status
    code: int = 0
    text: str = ""
    permanent: bool = False
    """A rejection that will repeat until the record's data changes (e.g. unknown currency)."""
    altcraft_id: str | None = None
    """Altcraft's own id of the record, when its answer gives one (a profile's ``profile_id``)."""


@dataclass
class ImportReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    requests: int = 0
    carrier: Outcome | None = None
    """The outcome of the record that carried categories (:meth:`AltcraftClient.import_categories`)."""

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)

    def merge(self, other: ImportReport) -> None:
        self.outcomes.update(other.outcomes)
        self.requests += other.requests
        if other.carrier is not None and (self.carrier is None or other.carrier.status == "delivered"):
            self.carrier = other.carrier


class Record(Protocol):
    """What the client sends: an id and the record's JSON bytes. The engine's ``transforms.payload.Payload``
    is one; :class:`Encoded` builds one from a dict (tools and tests)."""

    @property
    def external_id(self) -> str: ...

    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record already serialized to JSON bytes (the transforms serialize once, for the fingerprint)."""

    external_id: str
    data: bytes

    @classmethod
    def of(cls, record: dict[str, Any], key: str = "external_id") -> Encoded:
        return cls(str(record[key]), orjson.dumps(record))
