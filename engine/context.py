"""What one run of the engine works with: its connections, its options and its memory, as one typed object.

Every part of the engine (:mod:`engine.planner`, :mod:`engine.pipeline`, :mod:`engine.decide`,
:mod:`engine.dependencies`, :mod:`engine.carriers`, :mod:`engine.dispatch`, :mod:`engine.repair`) receives
this context and the parts it calls; none inherits from another. The coordinator (:mod:`engine.coordinator`)
builds one context per run and the parts around it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.cursor import Cursor, Key
from altcraft_sync.keys import key_reader
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore, lock_owner
from engine.seen import SeenIds
from engine.stats import ProgressHook, SampleItem, StreamStats, add_sample
from transforms.spec import MappingSpec, mapping_spec

Log = logging.Logger | logging.LoggerAdapter[Any]
__all__ = ["Key", "Log", "RunContext", "RunMemory", "RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """How this run behaves; fixed for the run."""

    run_id: str
    dry_run: bool = False
    skip_triggers: bool = False
    resend: bool = False
    """Send even what the ledger holds as delivered unchanged (backfills)."""
    lock_wait_seconds: float = 0

    @property
    def owner(self) -> str:
        """The lock owner of this run (``run_id`` and this process)."""
        return lock_owner(self.run_id)


@dataclass
class RunMemory:
    """What the run remembers across chunks and streams. Each cache is loaded at most once per run and kept
    current by the part named in its note."""

    attempted: set[tuple[str, str]] = field(default_factory=set)
    """(entity, id) sent without delivery or deferred in this run: the retry pass skips them (dispatch,
    decide, carriers)."""
    carried: set[tuple[str, str]] = field(default_factory=set)
    """New records delivered as carriers: their stream counts them delivered when it reads them (carriers,
    decide)."""
    positions: dict[str, Cursor | None] = field(default_factory=dict)
    """Each cursor's last committed position (the pipeline writes watermarks only when they move)."""
    quarantine_ids: dict[str, set[str]] = field(default_factory=dict)
    """Per entity, its quarantined ids, kept current (the ledger view)."""
    quarantined_now: dict[str, set[str]] = field(default_factory=dict)
    """Per entity, ids this run quarantined (the quarantine re-read skips them)."""
    in_flight_ids: dict[str, set[str]] = field(default_factory=dict)
    """Per entity, ids named by in-flight notes of dead runs (the ledger view)."""
    ledger_has: dict[str, bool] = field(default_factory=dict)
    """Per entity, whether the ledger holds any record of it (the ledger view)."""
    holds_digests: dict[str, bool] = field(default_factory=dict)
    """Per entity, whether the state held any record of it (ledger or quarantine) when the run first asked:
    a first sync looks up no raw digests (the ledger view's ``skippable``)."""
    delivered_refs: dict[str, Container[str]] = field(default_factory=dict)
    """Per stream, the ids its records may refer to that Altcraft holds (dependencies)."""
    would_send: dict[str, set[str]] = field(default_factory=dict)
    """Dry runs: ids of catalogue entities the run would have sent (dependents count them delivered)."""
    mappings: dict[str, MappingSpec] = field(default_factory=dict)
    standing_in: set[str] = field(default_factory=set)
    """Ids of stand-in products sent, or being sent, in this run (decide): each goes out once."""
    trigger_cutoff: float | None = None
    """Unix time before which a record's change is history: it goes with ``skip_triggers`` (set by the
    coordinator per stream from the database clock and ``sync.trigger_window``; None: no window)."""
    seen: dict[str, SeenIds] = field(default_factory=dict)
    """Per entity of a stream read in full (no ``updated_at``): the external ids the source has now (on disk:
    the pass stays O(chunk) in memory)."""


def _no_progress(stats: StreamStats) -> None:
    pass


@dataclass
class RunContext:
    """The run's connections, options and memory. ``client`` is ``None`` only for dry runs."""

    config: Config
    source: ShopSource
    state: StateStore
    client: AltcraftClient | None
    options: RunOptions
    memory: RunMemory = field(default_factory=RunMemory)
    log: Log = field(default_factory=lambda: logging.getLogger("altcraft_sync.engine"))
    on_progress: ProgressHook = _no_progress
    count_totals: bool = False
    """Whether a stream with more than one page asks the source how many rows are left: only a progress
    display that shows an ETA uses that total, and the count is a range query over the whole source
    (joins included: ~0.4 s of a 200k-order full sync on SQLite), so nobody else pays for it."""

    def __post_init__(self) -> None:
        if self.client is None and not self.options.dry_run:
            raise ValueError("a client is needed unless dry_run")

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    @property
    def owner(self) -> str:
        return self.options.owner

    @property
    def run_id(self) -> str:
        return self.options.run_id

    def need_client(self) -> AltcraftClient:
        """The client, for a step that sends (never reached in a dry run)."""
        assert self.client is not None, "a dry run sends nothing"
        return self.client

    def child_entity(self, stream: str) -> str | None:
        """The entity whose rows belong inside this stream's records (all of a parent's children are fetched
        with it: a parent is always mapped whole), or None."""
        child = registry.get(stream).child_entity
        return child if child in self.source.entities else None

    def mapping_spec(self, stream: str) -> MappingSpec:
        """What the mapper of ``stream`` is given (cut out of the config once per run; no secrets)."""
        if stream not in self.memory.mappings:
            self.memory.mappings[stream] = mapping_spec(self.config, stream)
        return self.memory.mappings[stream]

    def pk_cast(self, stream: str) -> Callable[[str], Key | None]:
        """Ledger keys are stored as text; bind them back in the primary key's own type. Read defensively
        (:func:`altcraft_sync.keys.key_reader`): a key an older version wrote as ``"7.0"`` is 7, and a text
        that is no key of this type (``"None"``, ``"nan"``) is ``None``, for the caller to skip."""
        try:
            py: type | None = self.source.entities[stream].pk.type.python_type
        except NotImplementedError:  # a user query's column has no declared type: ask the watermark
            py = None
        if py not in (int, str):
            wm = self.state.get_watermark(stream, stream)
            py = None if wm is None else int if isinstance(wm.pk, int) else str
        return key_reader(py)

    def source_keys(self, stream: str, texts: Iterable[str | None]) -> list[Key]:
        """Ledger key texts as source keys, the unusable ones left out (and counted in the log)."""
        cast = self.pk_cast(stream)
        texts = list(texts)
        keys = [k for k in (cast(t) for t in texts if t is not None) if k is not None]
        if len(keys) < len(texts):
            self.log.warning("%s: %d keys in the state database are no key of this source (e.g. left by an older "
                             "version); their records are skipped", stream, len(texts) - len(keys))
        return keys

    def sample(self, stats: StreamStats, kind: str, items: Sequence[SampleItem]) -> None:
        add_sample(stats, kind, items)
