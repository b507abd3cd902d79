"""Which thread of a full orders sync spends its CPU: the run thread (read, digest, map, decide), the push
thread and the HTTP senders, the commit thread, the heap trimmer.

    python bench/threads.py                        # the 200,000-order SQLite bench shop, one run
    python bench/threads.py --orders 20000 --repeat 3

It generates the demo shop (kept under ``bench/.work`` and reused), starts the emulator in its own process,
loads the catalog untimed, then runs ``altcraft-sync sync --stream orders`` from a terminal ``--repeat``
times (the state and the emulator's orders reset before each). The command runs in a child that samples
each thread's user+sys CPU from ``/proc/self/task`` every 50 ms and once more at exit (the kernel's own
counters: no profiler slows the run), and names the thread by Python's name for it (``push_0``,
``commit_0``, ``altcraft_0``...). Prints one table per run: CPU-s per thread, and the process total; and
the cyclic garbage collector's share of it (collections per generation and their thread CPU, counted with
``gc.callbacks``), which is spread over the threads that happen to trigger it.

Linux only (``/proc``). Why it matters: ``docs/performance.md`` ("Where the CPU goes, thread by thread").
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
QUIET = {"ALTCRAFT_TOKEN": TOKEN, "PREFECT_API_URL": "", "OPENBLAS_NUM_THREADS": "1"}


def _thread_cpu(seen: dict[int, tuple[str, float]]) -> None:
    """Update ``seen`` (thread id -> (name, CPU-s)) from ``/proc/self/task``."""
    clock = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended between the listing and the read
            continue
        cpu = (int(fields[11]) + int(fields[12])) / clock
        name, before = seen.get(int(tid), ("?", 0.0))
        seen[int(tid)] = (names.get(int(tid), name), max(cpu, before))


def _count_collections(collected: dict[str, list[float]]) -> None:
    """Add each collection's generation and thread CPU to ``collected`` (``"gc gen N"`` -> [count, CPU-s])."""
    import gc

    started: dict[int, float] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        me = threading.get_ident()
        if phase == "start":
            started[me] = time.thread_time()
        elif me in started:
            entry = collected.setdefault(f"gc gen {info['generation']}", [0, 0.0])
            entry[0] += 1
            entry[1] += time.thread_time() - started.pop(me)

    gc.callbacks.append(callback)


def run_cli_sampled(out: Path, argv: list[str]) -> None:
    """In the child: run the CLI with ``argv``; at exit (the CLI runs ``atexit`` hooks before it ends the
    process) write each thread's CPU, and the collector's, to ``out`` as JSON."""
    import atexit

    seen: dict[int, tuple[str, float]] = {}
    collected: dict[str, list[float]] = {}
    _count_collections(collected)

    def sample() -> None:
        while True:
            _thread_cpu(seen)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True, name="sampler").start()

    def report() -> None:
        _thread_cpu(seen)
        per: dict[str, float] = {}
        for name, cpu in seen.values():
            per[name] = per.get(name, 0.0) + cpu
        out.write_text(json.dumps({"threads": per, "gc": collected}))

    atexit.register(report)
    sys.argv = ["altcraft-sync", *argv]
    runpy.run_module("cli.main", run_name="__main__")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    args = ap.parse_args()
    from measure import compile_sources, emulator_control, run_command, start_emulator  # bench/ is the script's own directory
    from run import prepare_shop, write_config

    compile_sources(ROOT)
    args.workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.workdir / f'shop-{args.orders}.db'}"
    prepare_shop(url, args.orders, max(1000, args.orders // 10), reuse=True)
    work = args.workdir / "threads"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    emu, api = start_emulator(ROOT, TOKEN)
    try:
        cfg = write_config(work, url, api, "threads")
        base = [sys.executable, "-m", "cli.main", "sync", "--config", str(cfg)]
        run_command(base + ["--stream", "categories", "--stream", "products", "--stream", "skus"], env=QUIET,
                    cwd=ROOT, log=work / "log", accept=(0, 1))
        state = work / "state-threads.db"
        shutil.copy(state, work / "catalog.db")
        for i in range(args.repeat):
            shutil.copy(work / "catalog.db", state)
            for suffix in ("-wal", "-shm", ".in-flight"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)
            emulator_control(api, "reset", {"kinds": ["orders"]})
            out = work / f"threads-{i}.json"
            cmd = [sys.executable, __file__, "--sampled", str(out), "sync", "--config", str(cfg), "--stream", "orders"]
            r = run_command(cmd, env=QUIET, cwd=ROOT, log=work / "log", accept=(0, 1))
            got = json.loads(out.read_text())
            per = got["threads"]
            print(f"run {i + 1}: {r['wall_s']} s wall, {r['cpu_s']} CPU-s (process), peak {r['peak_rss_mb']} MB")
            for name, cpu in sorted(per.items(), key=lambda kv: -kv[1]):
                if cpu >= 0.01:
                    print(f"  {cpu:7.2f}  {name}")
            print(f"  {sum(per.values()):7.2f}  all threads")
            for name, (count, cpu) in sorted(got["gc"].items()):
                print(f"  {cpu:7.2f}  of it in {int(count)} collections of {name.removeprefix('gc ')}")
    finally:
        emu.terminate()
        emu.wait()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--sampled":
        sys.path.insert(0, str(ROOT))
        run_cli_sampled(Path(sys.argv[2]), sys.argv[3:])
    else:
        main()
