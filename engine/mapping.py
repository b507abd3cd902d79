"""Fetching each chunk's children and mapping it in worker processes while the engine reads and sends.

A sync is CPU-bound in one process: reading, mapping and sending share one GIL, so a 2-core machine ran
a full sync on one core. Mapping (pandas + pandera + JSON) is pure (``transforms.chunk.map_chunk``), so it
can run in other processes while this one reads the next chunk and pushes the last: the engine keeps the
order of commits, the workers only turn frames into payloads.

A worker also fetches the chunk's children (order lines, regional rows) itself, with its own connection:
the children are most of the rows (several lines an order), and building their frame in the run's
process would hold its GIL while the push thread waits for it. The parent page is still read
by the engine, which needs its keyset cursor before it can ask for the next page. Reading the children
in another connection changes nothing about consistency: the engine never read parents and children in
one transaction either (``connectors.shop_db``), and a child changed after its parent was read moves the
child cursor, so the next run sends it.

Workers are started only when a stream has full pages to read (an incremental run of a few changes never
pays their start-up), and chunks are mapped in this process until the first worker is ready, so starting
them never makes a run slower. ``spawn``, not ``fork``: the flow process runs Prefect's threads, and a
forked copy of a locked lock would hang. Workers get the shop database URL (they read) and nothing else
secret: the API token and the state database URL are blanked.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
from pydantic import SecretStr

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.cursor import PARENT, PK
from connectors.shop_db import ShopSource
from transforms.digest import parent_positions, raw_digests
from transforms.payload import Mapped
from transforms.spec import MappingSpec
from transforms.values import ids, pylist

log = logging.getLogger("altcraft_sync.mapping")
_worker_config: Config | None = None
_worker_source: ShopSource | None = None


def worker_config(config: Config) -> Config:
    """The config a map worker needs: the mapping and the shop database URL, without the API token and
    the state database URL (a worker never sends or commits)."""
    blank = SecretStr("")
    return config.model_copy(update={
        "state": config.state.model_copy(update={"url": blank}),
        "altcraft": config.altcraft.model_copy(update={"token": blank}),
    })


def _init_worker(config: Config) -> None:
    global _worker_config, _worker_source
    _worker_config, _worker_source = config, None


def _own_source() -> ShopSource:
    """The worker's own connection to the shop, bound to the mapping on first use (the run's process
    validated the mapping already; binding here only reflects the tables again)."""
    global _worker_source
    if _worker_source is None:
        assert _worker_config is not None, "map worker started without a config"
        source = ShopSource(_worker_config)
        source.bind()
        _worker_source = source
    return _worker_source


def _ready() -> bool:
    return True


Known = dict[str, tuple[str, int]]
"""What the ledger holds for the records of a chunk that may skip mapping: external_id -> (``"delivered"``
or ``"invalid"``, the digest of the raw rows that outcome came from); ``LedgerStore.raw_digests``."""


class MapResult(NamedTuple):
    mapped: Mapped
    map_seconds: float
    """Mapping alone (transforms)."""
    read_seconds: float
    """Fetching the chunk's children."""
    pid: int
    """The process that did both: a worker's differs from the run's."""
    digests: dict[str, int]
    """external_id -> raw digest of each record that was mapped (to keep with its outcome)."""
    skipped: dict[str, str]
    """external_id -> ``"delivered"`` or ``"invalid"``: records not mapped, their rows unchanged since."""


def fetch_and_map(m: MappingSpec, parents: pd.DataFrame, child: str | None,
                  source: ShopSource | None = None, known: Known | None = None) -> MapResult:
    """Fetch the children of ``parents`` (entity ``child``, if the stream has one) and map the chunk by
    ``m``. In a worker ``source`` is the worker's own; in the run's process the caller passes its own.

    With ``known`` (the ledger's digests of the chunk's records, possibly none), each record's raw digest
    is computed; a record whose digest equals the one its ledger outcome came from is not mapped (it is
    returned in ``skipped``), the others are mapped and their digests returned. Without it, every record
    is mapped and no digest is computed (a stream whose records do not stand alone)."""
    started = time.perf_counter()
    children = None
    if child is not None:
        children = (source or _own_source()).fetch_by_keys(child, parents["_pk"].tolist(), by_parent=True)
    fetched = time.perf_counter()
    digests: dict[str, int] = {}
    skipped: dict[str, str] = {}
    if known is not None:
        parents, children, digests, skipped = unchanged(m, parents, children, known)
    if parents.empty:
        mapped = Mapped(m.entity)
    else:
        # imported here: the contract imports pandera (~0.2-0.5 s), which a run with nothing to map never needs
        from transforms.chunk import map_chunk

        mapped = map_chunk(parents, children, m)
    return MapResult(mapped, time.perf_counter() - fetched, fetched - started, os.getpid(), digests, skipped)


def unchanged(m: MappingSpec, parents: pd.DataFrame, children: pd.DataFrame | None, known: Known
              ) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, int], dict[str, str]]:
    """Split off the records whose raw digest equals the ledger's: the parents and children left to map,
    the digests of those, and the skipped ids with what the ledger holds for them. An id that occurs twice
    in the chunk is always mapped (the mapper decides about repeated keys) and keeps no digest. A stream
    whose records do not stand alone (``StreamSpec.stands_alone``: categories, whose tree is checked
    across the chunk) skips a chunk whole or not at all."""
    digest = raw_digests(parents, children, m)
    if digest is None or "external_id" not in parents:
        return parents, children, {}, {}
    ext = [None if e is None else str(e) for e in pylist(ids(parents["external_id"]))]
    count: dict[str | None, int] = {}
    for e in ext:
        count[e] = count.get(e, 0) + 1
    digests = {e: d for e, d in zip(ext, digest.tolist()) if e is not None and count[e] == 1}
    skip = np.array([e in digests and e in known and known[e][1] == digests[e] for e in ext], dtype=bool)
    if not skip.any() or (not skip.all() and not registry.get(m.stream).stands_alone):
        return parents, children, digests, {}
    skipped = {e: known[e][0] for e, s in zip(ext, skip.tolist()) if s and e is not None}
    for e in skipped:
        del digests[e]
    if children is not None and len(children):
        pos = parent_positions(parents[PK].to_numpy(), children[PARENT].to_numpy())
        children = children[~((pos >= 0) & skip[np.maximum(pos, 0)])]
    return parents[~skip], children, digests, skipped


class ChunkMapper:
    """Fetches children and maps chunks in ``workers`` processes (0: always in this process, through
    ``source``); results come back as futures, in the order the engine asks for them. ``depth`` is how many
    chunks may be mapping while the engine reads."""

    def __init__(self, config: Config, workers: int, source: ShopSource) -> None:
        self.config, self.workers, self.source = config, workers, source
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[bool] | None = None
        self._failed = False

    @property
    def depth(self) -> int:
        return self.workers if self._pool is not None else 0

    def start(self) -> None:
        """Start the workers in the background (idempotent; a no-op without workers)."""
        if self.workers <= 0 or self._pool is not None or self._failed:
            return
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(worker_config(self.config),))
        self._ready = self._pool.submit(_ready)

    def submit(self, m: MappingSpec, parents: pd.DataFrame, child: str | None,
               known: Known | None = None) -> Future[MapResult]:
        """Fetch the children (entity ``child``, or none) of ``parents`` and map the chunk by ``m``, but for
        the records ``known`` says are unchanged (:func:`fetch_and_map`)."""
        if self._pool is not None and self._ready is not None and self._ready.done():
            if self._ready.exception() is None:
                return self._pool.submit(fetch_and_map, m, parents, child, None, known)
            log.warning("map workers failed to start (%s); mapping in this process", self._ready.exception())
            self._failed = True
            self.shutdown()
        done: Future[MapResult] = Future()
        try:
            done.set_result(fetch_and_map(m, parents, child, self.source, known))
        except Exception as err:  # surfaces from result(), in chunk order, like a worker's error
            done.set_exception(err)
        return done

    def wait_ready(self, timeout: float) -> bool:
        """Block until the workers can take chunks (tests and callers that know a big run is coming)."""
        if self._ready is None:
            return False
        return bool(self._ready.result(timeout=timeout))

    def shutdown(self) -> None:
        pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
