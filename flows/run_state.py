"""What one run of the engine holds and remembers, shared by the engine's parts.

The engine is a stack of small layers, each a module named after its concern and each seeing only the
layers below it: this run state, then dependencies (:mod:`flows.dependencies`), decisions
(:mod:`flows.decide`), carriers (:mod:`flows.carriers`), dispatch (:mod:`flows.dispatch`), repair
(:mod:`flows.repair`), and on top the coordinator (:mod:`flows.engine`), which owns the read -> map ->
push -> commit pipeline. Repair feeds that pipeline, so the three pipeline operations it calls are declared
here and implemented by the coordinator."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.cursor import Cursor
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore, lock_owner
from flows.seen import SeenIds
from flows.stats import Progress, StreamStats, add_sample
from transforms.spec import MappingSpec, mapping_spec

Log = logging.Logger | logging.LoggerAdapter[Any]


class RunState(ABC):
    """The run's connections, options and memory. ``client`` may be ``None`` only for dry runs."""

    def __init__(self, config: Config, source: ShopSource, state: StateStore, client: AltcraftClient | None, *,
                 run_id: str, dry_run: bool = False, skip_triggers: bool = False, on_progress: Progress | None = None,
                 log: Log | None = None, resend: bool = False, lock_wait_seconds: float = 0) -> None:
        if client is None and not dry_run:
            raise ValueError("a client is needed unless dry_run")
        self.config, self.source, self.state, self.client = config, source, state, client
        self.run_id, self.dry_run, self.skip_triggers = run_id, dry_run, skip_triggers
        self.owner = lock_owner(run_id)
        self.resend = resend
        self.lock_wait_seconds = lock_wait_seconds
        self.on_progress: Progress = on_progress or (lambda s: None)
        self.log: Log = log or logging.getLogger("altcraft_sync.engine")
        # what this run remembers (the parts read and keep these; each is loaded at most once per run)
        self._attempted: set[tuple[str, str]] = set()
        """(entity, id) sent without delivery or deferred in this run: the retry pass skips them."""
        self._carried: set[tuple[str, str]] = set()
        """New records delivered as carriers: their stream counts them delivered when it reads them."""
        self._positions: dict[str, Cursor | None] = {}
        """Each cursor's last committed position in this run (watermarks are written only when they move)."""
        self._quarantine_ids: dict[str, set[str]] = {}
        self._quarantined_now: dict[str, set[str]] = {}
        """Per entity, ids this run quarantined (the quarantine re-read skips them)."""
        self._in_flight_ids: dict[str, set[str]] = {}
        self._ledger_has: dict[str, bool] = {}
        self._delivered_refs: dict[str, set[str]] = {}
        """Per stream, the ids its records may refer to that Altcraft holds (``_dependency_index``)."""
        self._would_send: dict[str, set[str]] = {}
        """Dry runs: ids of catalogue entities the run would have sent (dependents count them delivered)."""
        self._mappings: dict[str, MappingSpec] = {}
        self._seen: dict[str, SeenIds] = {}
        """Per entity of a stream read in full (no ``updated_at``): the external ids the source has now
        (on disk: the pass stays O(chunk) in memory)."""

    # --- the pipeline the parts feed (implemented by the coordinator) ------------------------------------
    @abstractmethod
    def _process_commit(self, stream: str, parents: pd.DataFrame, stats: StreamStats, cursor: Cursor | None,
                        cursor_name: str) -> None:
        """Map, decide, push and commit one chunk of parent rows, in chunk order."""

    @abstractmethod
    def drain(self) -> None:
        """Finish every chunk handed over so far."""

    @abstractmethod
    def _release(self, stream: str) -> None:
        """Release the stream's lock."""

    # --- small helpers every part uses ---------------------------------------------------------------------
    def _child_entity(self, stream: str) -> str | None:
        """The entity whose rows belong inside this stream's records (all of a parent's children are
        fetched with it: a parent is always mapped whole), or None."""
        child = registry.get(stream).child_entity
        return child if child in self.source.entities else None

    def _mapping_spec(self, stream: str) -> MappingSpec:
        """What the mapper of ``stream`` is given (cut out of the config once per run; no secrets)."""
        if stream not in self._mappings:
            self._mappings[stream] = mapping_spec(self.config, stream)
        return self._mappings[stream]

    def _pk_cast(self, stream: str) -> Callable[[str], Any]:
        """Ledger keys are stored as text; bind them back in the primary key's own type."""
        try:
            py: type | None = self.source.entities[stream].pk.type.python_type
        except NotImplementedError:  # a user query's column has no declared type: ask the watermark
            py = None
        if py in (int, str):
            assert py is not None
            return py
        wm = self.state.get_watermark(stream, stream)
        if wm is not None:
            return int if isinstance(wm.pk, int) else str
        return lambda pk: int(pk) if str(pk).lstrip("-").isdigit() else pk

    def _sample(self, stats: StreamStats, kind: str, items: list[Any]) -> None:
        add_sample(stats, kind, items)
