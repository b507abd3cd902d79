"""What a run does so that memory it freed is given back to the machine, not kept by an allocator.

A full sync reads, maps and sends one chunk after another; each chunk's frames, Arrow buffers and JSON
are freed once it is committed. Two allocators keep such memory for reuse instead of returning it, and
both showed in the peak RSS of a full sync (``docs/performance.md``, "Memory"):

- pyarrow's default pool (mimalloc) keeps freed buffers mapped: a run gives Arrow's buffers to the C
  library's allocator instead (:func:`return_freed_buffers`);
- glibc's malloc returns only the top of its heaps by itself; freed blocks below live ones stay resident
  until ``malloc_trim``. :class:`HeapTrimmer` calls it every 50 ms while a run is open.

Neither changes what a run computes; both are process-wide and cost no measurable CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable


def return_freed_buffers() -> None:
    """Give Arrow's buffers (the columnar reader's pages, pandas' text columns and their string functions)
    to the C library's allocator instead of pyarrow's default mimalloc pool, which keeps the freed buffers
    of earlier pages mapped. Arrow's own ``ARROW_DEFAULT_MEMORY_POOL``, when set, is the user's choice and
    is kept."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def glibc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (returns the free pages of every heap), or None on another C library."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl, macOS: no malloc_trim; their allocators return memory themselves
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    """Calls ``trim`` every ``every`` seconds on one daemon thread while any run holds it: a run takes it
    with :meth:`hold` when it opens and gives it back with :meth:`release` when it closes, so runs open
    side by side (or left open by a caller) share one thread. Without a ``trim`` it does nothing."""

    def __init__(self, trim: Callable[[], object] | None, every: float = 0.05) -> None:
        self._trim, self._every = trim, every
        self._lock = threading.Lock()
        self._holders = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            self._holders += 1
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._loop, name="heap-trim", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            thread = self._thread if self._holders == 0 else None
            if thread is not None:
                self._thread = None
                self._wake.set()
        if thread is not None:
            thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _loop(self) -> None:
        assert self._trim is not None
        while not self._wake.wait(self._every):
            self._trim()


TRIMMER = HeapTrimmer(glibc_trim())
"""The process's one trimmer (held by every open :class:`runner.runtime.Runtime`)."""
