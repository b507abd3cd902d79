"""What a run does so that memory it freed is given back to the machine, not kept by an allocator.

A full sync reads, maps and sends one chunk after another; each chunk's frames, Arrow buffers and JSON
are freed once it is committed. Two allocators keep such memory for reuse instead of returning it, and
both showed in the peak RSS of a full sync (``docs/performance.md``, "Memory"):

- pyarrow's default pool (mimalloc) keeps freed buffers mapped: a run gives Arrow's buffers to the C
  library's allocator instead (:func:`return_freed_buffers`);
- glibc's malloc returns only the top of its heaps by itself; freed blocks below live ones stay resident
  until ``malloc_trim``. :class:`HeapTrimmer` calls it, every 50 ms while a run is open, whenever the
  process's resident set is above ``sync.heap_trim_above_mb``.

A third part is CPU, not memory: :class:`CollectorTuning` keeps CPython's cyclic garbage collector from
rescanning the imported libraries over and over while a run is open.

None of them changes what a run computes; all are process-wide. Trimming is not free: every page it gives back
that the next chunk needs again is faulted in and zeroed anew (a 200k-order full sync trimmed every 50 ms
took ~410k page faults instead of ~85k untrimmed), hence the threshold."""

from __future__ import annotations

import ctypes
import gc
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
    """glibc's ``malloc_trim(0)`` (returns the free pages of every heap), or None on another C library.

    Looked up among the symbols the interpreter already has loaded (``dlopen(NULL)``), not with
    ``ctypes.util.find_library``, which runs ``/sbin/ldconfig -p`` in a child process: a fork of the whole
    process at every start (and, to a benchmark summing a process tree's RSS, a moment of twice the
    memory)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # musl, macOS: no malloc_trim; their allocators return memory
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def resident_bytes() -> int | None:
    """This process's resident set size, from ``/proc/self/statm`` (one small read: cheap enough for every
    tick of the trimmer), or None where there is no ``/proc``."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class HeapTrimmer:
    """Calls ``trim`` every ``every`` seconds on one daemon thread while any run holds it, when the resident
    set (``rss``) is above the lowest threshold its holders asked for (0: always; unknown: always). A run
    takes it with :meth:`hold` when it opens and gives it back with :meth:`release` when it closes, so runs
    open side by side (or left open by a caller) share one thread. Without a ``trim`` it does nothing.

    Why a threshold: below it, giving pages back only makes the next chunk fault them in again; the peak a
    memory budget is about is only ever reached above it."""

    def __init__(self, trim: Callable[[], object] | None, every: float = 0.05,
                 rss: Callable[[], int | None] = resident_bytes) -> None:
        self._trim, self._every, self._rss = trim, every, rss
        self._lock = threading.Lock()
        self._thresholds: list[int] = []  # one per holder, in bytes
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, above: int = 0) -> None:
        """Trim while this holder is open, whenever the resident set is above ``above`` bytes (0: always)."""
        if self._trim is None:
            return
        with self._lock:
            self._thresholds.append(above)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._loop, name="heap-trim", daemon=True)
                self._thread.start()

    def release(self, above: int = 0) -> None:
        """Give back a hold taken with the same ``above``."""
        with self._lock:
            if above in self._thresholds:
                self._thresholds.remove(above)
            elif self._thresholds:  # a hold taken with another threshold: give back one all the same
                self._thresholds.pop()
            else:
                return
            thread = self._thread if not self._thresholds else None
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
            limit = min(self._thresholds, default=0)
            if limit == 0 or (rss := self._rss()) is None or rss > limit:
                self._trim()


TRIMMER = HeapTrimmer(glibc_trim())
"""The process's one trimmer (held by every open :class:`runner.runtime.Runtime`)."""


class CollectorTuning:
    """While any run holds it, the objects alive when the first holder opened it (the imported libraries,
    the settings, the bound source: ~10^6 objects after pandas, pyarrow, SQLAlchemy and pandera) are moved
    out of the cyclic GC's reach with :func:`gc.freeze`, and its youngest generation is collected after
    ``young`` new container objects instead of CPython's 700. Released by the last holder: the frozen
    objects go back to the collector and the thresholds are restored.

    Why: a full sync creates and frees millions of small containers (rows, dicts, tuples). Each time enough
    of them survive a young collection, CPython eventually runs a full collection, which walks every tracked
    object, the libraries' included. Counted with ``gc.callbacks`` over a 200k-order full sync: 14 full
    collections took ~0.85 CPU-s of the run's ~1.1 in the collector (of ~10 CPU-s in all); frozen and with
    ``young=10_000``, 2 full collections and ~0.25 CPU-s (``docs/performance.md``, "The garbage collector").

    Nothing is leaked: frozen objects are still freed when their last reference goes (reference counting
    does not care), only a cycle among them waits for the release; and the run's own objects, created
    after the freeze, are collected as before. Transforms pause the collector altogether while they build
    a chunk's payloads (``transforms.payload.gc_paused``)."""

    def __init__(self, young: int = 10_000) -> None:
        self._young = young
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: tuple[int, int, int] | None = None

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders > 1:
                return
            saved = gc.get_threshold()
            self._saved = (saved[0], saved[1], saved[2])
            gc.freeze()
            gc.set_threshold(max(self._young, saved[0]), *saved[1:])

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:  # a run closed twice does not break the count
                return
            self._holders -= 1
            if self._holders or self._saved is None:
                return
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None

    @property
    def held(self) -> bool:
        return self._holders > 0


COLLECTOR = CollectorTuning()
"""The process's one collector tuning (held by every open :class:`runner.runtime.Runtime`)."""
