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

import pandas as pd
from pydantic import SecretStr

from altcraft_sync.config import Config
from connectors.shop_db import ShopSource
from transforms.payload import Mapped
from transforms.spec import MappingSpec

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


class MapResult(NamedTuple):
    mapped: Mapped
    map_seconds: float
    """Mapping alone (transforms)."""
    read_seconds: float
    """Fetching the chunk's children."""
    pid: int
    """The process that did both: a worker's differs from the run's."""


def fetch_and_map(m: MappingSpec, parents: pd.DataFrame, child: str | None,
                  source: ShopSource | None = None) -> MapResult:
    """Fetch the children of ``parents`` (entity ``child``, if the stream has one) and map the chunk by
    ``m``. In a worker ``source`` is the worker's own; in the run's process the caller passes its own."""
    # imported here: the contract imports pandera (~0.5 s), which a run with nothing to map never needs
    from transforms.chunk import map_chunk

    started = time.perf_counter()
    children = None
    if child is not None:
        children = (source or _own_source()).fetch_by_keys(child, parents["_pk"].tolist(), by_parent=True)
    fetched = time.perf_counter()
    mapped = map_chunk(parents, children, m)
    return MapResult(mapped, time.perf_counter() - fetched, fetched - started, os.getpid())


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

    def submit(self, m: MappingSpec, parents: pd.DataFrame, child: str | None) -> Future[MapResult]:
        """Fetch the children (entity ``child``, or none) of ``parents`` and map the chunk by ``m``."""
        if self._pool is not None and self._ready is not None and self._ready.done():
            if self._ready.exception() is None:
                return self._pool.submit(fetch_and_map, m, parents, child)
            log.warning("map workers failed to start (%s); mapping in this process", self._ready.exception())
            self._failed = True
            self.shutdown()
        done: Future[MapResult] = Future()
        try:
            done.set_result(fetch_and_map(m, parents, child, self.source))
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
