"""A run gives freed memory back (``runner.memory``): Arrow's buffers go to the system allocator (a user's
own ``ARROW_DEFAULT_MEMORY_POOL`` wins; checked in a fresh interpreter, the pool is process-wide), and
glibc's heaps are trimmed while a run is open and its resident set is above its threshold, by one thread
however many runs are open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.memory import CollectorTuning, HeapTrimmer, glibc_trim

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
         "from runner.memory import return_freed_buffers; return_freed_buffers(); "
         "print(before, pa.default_memory_pool().backend_name)")


def _pools(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.split()


def test_a_run_uses_the_system_allocator_for_arrow_buffers() -> None:
    before, after = _pools()
    if before == "system":
        pytest.skip("this pyarrow build has no other pool")
    assert after == "system"


def test_the_users_own_arrow_pool_setting_is_kept() -> None:
    import pyarrow as pa

    if "mimalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow build has no mimalloc pool")
    assert _pools(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == ["mimalloc", "mimalloc"]


def test_the_trimmer_runs_while_a_run_holds_it_on_one_thread() -> None:
    import threading
    import time

    calls: list[float] = []
    trimmer = HeapTrimmer(lambda: calls.append(time.monotonic()), every=0.01)
    trimmer.hold()
    trimmer.hold()  # a second run open beside the first
    time.sleep(0.15)
    assert len([t for t in threading.enumerate() if t.name == "heap-trim"]) == 1
    trimmer.release()
    assert trimmer.running  # the other run still holds it
    trimmer.release()
    assert not trimmer.running
    done = len(calls)
    time.sleep(0.05)
    assert done >= 3 and len(calls) == done
    trimmer.release()  # a run closed twice does not break the count
    quiet = HeapTrimmer(None)
    quiet.hold()
    assert not quiet.running


def test_the_trimmer_trims_only_above_the_lowest_threshold_its_holders_asked_for() -> None:
    """Below ``sync.heap_trim_above_mb`` a trim would only make the next chunk fault its pages in again."""
    import time

    rss = {"now": 100}
    calls: list[int] = []
    trimmer = HeapTrimmer(lambda: calls.append(rss["now"]), every=0.005, rss=lambda: rss["now"])

    def ticks() -> int:
        calls.clear()
        time.sleep(0.08)
        return len(calls)

    trimmer.hold(above=200)
    assert ticks() == 0  # 100 is below 200
    rss["now"] = 250
    assert ticks() >= 3 and set(calls) == {250}
    trimmer.hold(above=300)  # a second run asks for more room: the lower threshold still holds
    assert ticks() >= 3
    trimmer.release(200)
    assert ticks() == 0  # 250 is below the remaining holder's 300
    trimmer.hold(above=0)  # 0: every tick, whatever the resident set
    assert ticks() >= 3
    trimmer.release(0)
    trimmer.release(300)
    assert not trimmer.running
    unknown = HeapTrimmer(lambda: calls.append(-1), every=0.005, rss=lambda: None)  # no /proc: always
    unknown.hold(above=200)
    assert ticks() >= 3
    unknown.release(200)


def test_the_resident_set_is_read_from_the_kernel() -> None:
    from runner.memory import resident_bytes

    if not Path("/proc/self/statm").exists():
        pytest.skip("no /proc")
    before = resident_bytes()
    block = bytearray(64 << 20)  # touched: zero-filled pages are resident once written
    block[::4096] = b"x" * len(block[::4096])
    after = resident_bytes()
    assert before is not None and after is not None and after - before > 48 << 20


def test_an_open_run_holds_the_trimmer_with_its_configured_threshold(tmp_path) -> None:
    from types import SimpleNamespace

    from altcraft_sync.config import load_config
    from runner.memory import TRIMMER
    from runner.runtime import open_runtime
    from tests.conftest import TOKEN
    from tests.helpers import build_shop, shop_config

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=20).dispose()
    cfg = load_config(shop_config(tmp_path, url, SimpleNamespace(url="http://127.0.0.1:9/api/v1.1/"), TOKEN))
    cfg.sync.heap_trim_above_mb = 123
    rt = open_runtime(cfg, need_client=False)
    try:
        assert (123 << 20) in TRIMMER._thresholds or glibc_trim() is None
    finally:
        rt.close()
    assert (123 << 20) not in TRIMMER._thresholds


def test_the_collector_leaves_what_was_alive_at_the_start_alone_while_a_run_holds_it() -> None:
    """The libraries' objects are frozen out of the cyclic GC and young collections are rarer while any run
    is open; the last run to close gives both back, and a cycle among the frozen objects is then collected."""
    import gc

    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the cyclic GC frees it

    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    cycle = Node()
    collector = CollectorTuning(young=12_345)
    collector.hold()
    try:
        assert gc.get_freeze_count() > 1000  # this interpreter's modules, at least
        assert gc.get_threshold() == (12_345, *before[1:])
        collector.hold()  # a second run open beside the first
        collector.release()
        assert collector.held and gc.get_freeze_count() > 1000 and gc.get_threshold()[0] == 12_345
        import weakref

        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is not None  # frozen: a full collection does not look at it
    finally:
        collector.release()
    assert not collector.held
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    gc.collect()
    assert gone() is None  # given back: collected
    collector.release()  # a run closed twice does not break the count
    assert gc.get_threshold() == before


def test_an_open_run_holds_the_collector_tuning(tmp_path) -> None:
    import gc
    from types import SimpleNamespace

    from altcraft_sync.config import load_config
    from runner.runtime import open_runtime
    from tests.conftest import TOKEN
    from tests.helpers import build_shop, shop_config

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=20).dispose()
    cfg = load_config(shop_config(tmp_path, url, SimpleNamespace(url="http://127.0.0.1:9/api/v1.1/"), TOKEN))
    rt = open_runtime(cfg, need_client=False)
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        rt.close()
    assert gc.get_freeze_count() == 0


PROBE_NO_CHILD = """
import subprocess
started = []
subprocess.Popen.__init__ = lambda self, *a, **k: started.append(a)  # a child would show here, not start
from runner.memory import glibc_trim
trim = glibc_trim()
print(trim is not None, started)
"""


def test_finding_malloc_trim_starts_no_child_process() -> None:
    """``ctypes.util.find_library`` runs ``ldconfig -p`` in a child: a fork of the run at every start."""
    if glibc_trim() is None:
        pytest.skip("not glibc")
    out = subprocess.run([sys.executable, "-c", PROBE_NO_CHILD], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["True", "[]"], out.stdout


PROBE_HEAP = """
import os
from runner.memory import glibc_trim
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [bytes(1500) for _ in range(60_000)]
keep = blocks[::50]  # a live block every so often: the heap cannot shrink from its top
del blocks
before = rss()
glibc_trim()()
print(before - rss())
"""


def test_trimming_gives_freed_heap_pages_back() -> None:
    if glibc_trim() is None or not Path("/proc/self/statm").exists():
        pytest.skip("not glibc on Linux")
    out = subprocess.run([sys.executable, "-c", PROBE_HEAP], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert float(out.stdout) > 40  # of the ~90 MB freed
