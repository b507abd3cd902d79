"""Mapping chunks in worker processes while the engine reads and sends.

A sync is CPU-bound in one process: reading, mapping and sending share one GIL, so a 2-core machine ran
a full sync on one core. Mapping (pandas + pandera + JSON) is pure (``transforms.chunk.map_chunk``), so it
can run in other processes while this one reads the next chunk and pushes the last: the engine keeps the
order of commits, the workers only turn frames into payloads.

Workers are started only when a stream has full pages to read (an incremental run of a few changes never
pays their start-up), and chunks are mapped in this process until the first worker is ready, so starting
them never makes a run slower. ``spawn``, not ``fork``: the flow process runs Prefect's threads, and a
forked copy of a locked lock would hang. Workers get the config without its secrets (they need none).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor

import pandas as pd
from pydantic import SecretStr

from altcraft_sync.config import Config
from transforms.chunk import map_chunk
from transforms.payload import Mapped

log = logging.getLogger("altcraft_sync.mapping")
_worker_config: Config | None = None


def without_secrets(config: Config) -> Config:
    """The config a map worker needs: everything but the database URLs and the API token."""
    blank = SecretStr("")
    return config.model_copy(update={
        "source": config.source.model_copy(update={"url": blank}),
        "state": config.state.model_copy(update={"url": blank}),
        "altcraft": config.altcraft.model_copy(update={"token": blank}),
    })


def _init_worker(config: Config) -> None:
    global _worker_config
    _worker_config = config


def _ready() -> bool:
    return True


MapResult = tuple[Mapped, float, int]
"""The mapped chunk, the seconds its mapping took, and the id of the process that mapped it."""


def _map_timed(stream: str, parents: pd.DataFrame, children: pd.DataFrame | None, config: Config | None = None) -> MapResult:
    started = time.perf_counter()
    cfg = config if config is not None else _worker_config
    assert cfg is not None, "map worker started without a config"
    return map_chunk(stream, parents, children, cfg), time.perf_counter() - started, os.getpid()


class ChunkMapper:
    """Maps chunks in ``workers`` processes (0: always in this process); results come back as futures, in
    the order the engine asks for them. ``depth`` is how many chunks may be mapping while the engine reads."""

    def __init__(self, config: Config, workers: int) -> None:
        self.config, self.workers = config, workers
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
                                         initializer=_init_worker, initargs=(without_secrets(self.config),))
        self._ready = self._pool.submit(_ready)

    def submit(self, stream: str, parents: pd.DataFrame, children: pd.DataFrame | None) -> Future[MapResult]:
        if self._pool is not None and self._ready is not None and self._ready.done():
            if self._ready.exception() is None:
                return self._pool.submit(_map_timed, stream, parents, children)
            log.warning("map workers failed to start (%s); mapping in this process", self._ready.exception())
            self._failed = True
            self.shutdown()
        done: Future[MapResult] = Future()
        try:
            done.set_result(_map_timed(stream, parents, children, self.config))
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
