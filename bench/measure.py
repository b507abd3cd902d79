"""What the benchmark measures about processes: the sampled memory of a process tree, a process's CPU
time, a command's wall/CPU/peak memory, the emulator it runs against, and which peak counts for a phase."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _tree_rss(pid: int | None = None, every: float = 0.2) -> tuple[threading.Event, list[int]]:
    """Sample the summed RSS of a process (this one by default) and its descendants (map workers) every
    ``every`` seconds until the returned event is set; the peak lands in the returned list. The kernel's
    peak from ``wait4`` is per process, a sync's memory is the sum, and Linux carries the high-water mark of
    the process that forked a child across fork and exec."""
    import psutil

    peak, stop = [0], threading.Event()
    try:
        top = psutil.Process(pid)
    except psutil.Error:
        return stop, peak

    def loop() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in [top, *top.children(recursive=True)]))
            except psutil.Error:
                pass
            stop.wait(every)

    threading.Thread(target=loop, daemon=True).start()
    return stop, peak


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def compile_sources(root: Path) -> None:
    """Byte-compile altcraft-sync's own packages before anything is timed, as ``pip install`` does for an
    installed package. The bench runs them from the checkout (an editable install); where the environment
    sets ``PYTHONDONTWRITEBYTECODE`` (this workplace does), Python would otherwise compile every module from
    source on every run, ~0.1 s of each start that no installed copy pays."""
    import tomllib

    find = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [str(root / pattern.rstrip("*")) for pattern in find["include"]]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss(res: dict[str, Any]) -> float:
    """A phase's peak memory: the larger of the process's own peak and its process tree's sampled sum."""
    return max(res["peak_rss_mb"], res.get("tree_peak_rss_mb") or 0)


def start_emulator(root: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox emulator in its own process (its CPU is not the sync's); returns it and its API URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "sandbox", "--port", str(port), "--token", token],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1.1/"
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(api.replace("/api/v1.1/", "/__emulator/stats"), timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    return proc, api


def emulator_control(api: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call of the emulator's control API (``reset``, ``digest/orders``...) beside the API at ``api``."""
    import json
    import urllib.request

    url = api.replace("/api/v1.1/", "/__emulator/") + path
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=300) as resp:
        return json.loads(resp.read())


def run_command(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                log: Path | None = None, accept: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Run a command as a user would from a terminal; its wall time, the CPU of it and every descendant it
    reaped (``wait4``), and the peak of its process tree's summed RSS, sampled every 50 ms (``_tree_rss``).
    An exit status outside ``accept`` raises (altcraft-sync exits 1 when a run completes with warnings,
    which the demo shop's planted invalid rows always give)."""

    out = open(log, "ab") if log else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out, stderr=out)
    stop, peak = _tree_rss(proc.pid, every=0.05)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    if out is not subprocess.DEVNULL:
        out.close()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) not in accept:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited with status {status >> 8}" + (f" (log: {log})" if log else ""))
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(peak[0] / 2**20, 1)}
