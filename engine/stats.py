"""What a stream run did: the figures of the run table in the Prefect UI, ``status`` and the CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from transforms.payload import Payload

_COUNTING = threading.Lock()
"""Guards every figure a stream run updates: the run thread (decisions), the push thread (Altcraft's
answers) and the commit thread all count into one :class:`StreamStats`, and ``x += 1`` is not atomic.
One module-level lock (not a field) keeps the stats picklable; it is taken once per chunk and counter."""

SAMPLE_SIZE = 5
"""Records kept per kind of sample (invalid, rejected, deferred, ...) for artifacts and dry runs."""


@dataclass
class StreamStats:
    """What a stream run did; the figures of the run table in the Prefect UI and ``status``."""

    stream: str
    extracted: int = 0
    unchanged: int = 0
    invalid: int = 0
    still_invalid: int = 0
    """Records quarantined before this run, re-read (by key, or by a lookback) and still invalid: the
    backlog, not this run's news (``runner.outcome``), not in ``invalid``."""
    unmapped: int = 0
    """Records not mapped nor validated: their source rows (and the mapping) are those their ledger outcome
    came from (``transforms.digest``); counted in ``unchanged`` or ``still_invalid`` as well."""
    still_rejected: int = 0
    """Records rejected for good before this run, re-read unchanged: the backlog, not in ``rejected``."""
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    deferred: int = 0
    """Records waiting for what they depend on (a SKU not delivered yet, a carrier): not rejections. Why
    each waits is in ``deferred_reasons`` and the ledger."""
    deferred_reasons: dict[str, int] = field(default_factory=dict)
    """Why records wait, by reason (the reference left out: ``in the shop, not sent yet ...``)."""
    stand_ins: int = 0
    """Unavailable stand-in products sent for references that will never arrive (deleted in the shop,
    refused for good), so the orders naming them go out."""
    without_triggers: int = 0
    """Records sent with ``skip_triggers: true`` because their change is older than ``sync.trigger_window``
    (history: it must not fire the trigger campaigns set on orders)."""
    deleted: int = 0
    retried: int = 0
    new: int = 0
    changed: int = 0
    chunks: int = 0
    mapped_in_workers: int = 0
    """Chunks mapped in a map worker process rather than the run's own."""
    requests: int = 0
    total: int | None = None
    """Rows the stream's change set holds (its main cursor's range), counted once its first page was full:
    what a progress bar's ETA is worked out from. None: not counted (one page or less)."""
    watermark_before: dict[str, str | None] = field(default_factory=dict)
    watermark_after: dict[str, str | None] = field(default_factory=dict)
    lag_seconds: float | None = None
    source_has_newer: bool = False
    stale: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the run did that a reader should know and that is not a problem (``2,221 sent without triggers
    (older than 1 d)``)."""
    samples: dict[str, list[Any]] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Time by phase (read, read_children, map, ledger, push, commit): where a run spends its time.
    ``read_children`` and ``map`` are the mappers' own time, in a worker process they overlap reading;
    ``map_wait`` is how long the run waited for a worker's result, ``send_wait`` for the previous chunk's
    push, ``commit_wait`` how long a push waited for the previous chunk's commit."""

    def add(self, **counts: int) -> None:
        """Add to counters, safely from any of the run's threads (``stats.add(delivered=3, rejected=1)``)."""
        with _COUNTING:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def timed(self, phase: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        with _COUNTING:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed

    def figures(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("samples")
        return out


ProgressHook = Callable[[StreamStats], None]
"""Called with a stream's figures after each committed chunk (the hosts draw progress with it)."""


SampleItem = Payload | str | dict[str, object]
"""What a sample keeps: a record (kept as its JSON object), an external id, or a small description."""


def add_sample(stats: StreamStats, kind: str, items: Sequence[SampleItem]) -> None:
    """Keep up to ``SAMPLE_SIZE`` items of ``kind`` (a payload as its JSON record)."""
    bucket = stats.samples.setdefault(kind, [])
    for item in items[: max(0, SAMPLE_SIZE - len(bucket))]:
        bucket.append(orjson.loads(item.data) if isinstance(item, Payload) else item)
