"""What the benchmark measures about processes: the sampled memory of a process tree, a process's CPU
time, a free port for the emulator, and which peak counts for a phase."""

from __future__ import annotations

import socket
from typing import Any


def _tree_rss() -> tuple[Any, list[int]]:
    """Sample the summed RSS of this process and its children (the map workers) every 0.2 s: the kernel's
    peak from ``wait4`` is per process, and a sync's memory is the sum."""
    import threading

    import psutil

    me, peak, stop = psutil.Process(), [0], threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            try:
                total = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                continue
            peak[0] = max(peak[0], total)

    threading.Thread(target=loop, daemon=True).start()
    return stop, peak


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss(res: dict[str, Any]) -> float:
    """A phase's peak memory: the larger of the process's own peak and its process tree's sampled sum."""
    return max(res["peak_rss_mb"], res.get("tree_peak_rss_mb") or 0)
