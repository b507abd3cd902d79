"""Where a no-change run's time goes under a running Prefect server, against an empty flow's run.

    python bench/prefect_path.py                 # a 20,000-order SQLite demo shop, 3 runs of each
    python bench/prefect_path.py --orders 2000 --repeat 3

One Prefect server is started (its own ``PREFECT_HOME``) and warmed with a flow run. Then, ``--repeat`` times
each, in a fresh process:

* ``empty``: ``flow(name="noop")(lambda: None)()``;
* ``ours``: ``flows.sync.nightly_sync`` on a synced demo shop (nothing to send), traced from outside: the
  harness wraps ``PrefectHost`` (the flow body's start, each stream task and the stream's own work inside
  it, the artifacts), ``runner.runs.open_runtime`` and Prefect's progress-artifact calls, without
  changing ``flows/``;
* ``cli``: ``altcraft-sync sync`` with ``PREFECT_API_URL`` set, the command a user types (its
  pre-check binds the source in the CLI process before the flow starts).

Each mark has its time since the process was spawned and the process's CPU (user+sys) so far; the report
gives each segment's median wall and CPU, and the whole process from ``wait4``.
Writes ``bench/results/prefect-path-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

T0 = float(os.environ.get("BENCH_T0", time.time()))
MARKS: list[tuple[str, float, float]] = []


def cpu() -> float:
    """This process's CPU so far, every thread's (Prefect's event loop and log threads count too)."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def mark(name: str) -> None:
    """A moment of the traced process: seconds since it was spawned, and its CPU so far."""
    MARKS.append((name, time.time() - T0, cpu()))


mark("interpreter up")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


# --- traced child processes ------------------------------------------------------------------------------
def trace_empty() -> None:
    import prefect

    mark("import prefect")

    @prefect.flow(name="noop")
    def noop() -> None:
        mark("flow body starts")

    noop()
    mark("flow returned")


def trace_ours(config: str) -> dict[str, Any]:
    import prefect  # noqa: F401

    mark("import prefect")
    import prefect.artifacts as artifacts

    import flows.sync as fs
    import runner.runs as runs

    mark("import flows.sync (our modules: engine, runner, transforms, connectors)")
    steps: list[dict[str, Any]] = []
    calls: dict[str, list[tuple[float, float]]] = {"progress artifact": [], "runtime open": [], "publish artifacts": []}

    def timing(bucket: str, fn: Any) -> Any:
        def wrapped(*a: Any, **kw: Any) -> Any:
            t, c = time.time(), cpu()
            try:
                return fn(*a, **kw)
            finally:
                calls[bucket].append((time.time() - t, cpu() - c))
        return wrapped

    original_init, original_step = fs.PrefectHost.__init__, fs.PrefectHost.step

    def init(self: Any) -> None:
        mark("flow body starts (flow run created, parameters validated)")
        original_init(self)

    def step(self: Any, name: str, fn: Any, judge: Any = None) -> Any:
        inner: list[tuple[float, float]] = []

        def work(log: Any) -> Any:
            t, c = time.time(), cpu()
            try:
                return fn(log)
            finally:
                inner.append((time.time() - t, cpu() - c))

        t, c = time.time(), cpu()
        try:
            return original_step(self, name, work, judge)
        finally:
            steps.append({"stream": name, "task_s": time.time() - t, "task_cpu_s": cpu() - c,
                          "work_s": sum(w for w, _ in inner), "work_cpu_s": sum(u for _, u in inner)})

    fs.PrefectHost.__init__ = init  # type: ignore[method-assign]
    fs.PrefectHost.step = step  # type: ignore[method-assign]
    fs.PrefectHost.publish = timing("publish artifacts", fs.PrefectHost.publish)  # type: ignore[method-assign]
    runs.open_runtime = timing("runtime open", runs.open_runtime)
    for name in ("create_progress_artifact", "update_progress_artifact"):
        setattr(artifacts, name, timing("progress artifact", getattr(artifacts, name)))
    mark("calling nightly_sync")
    state = fs.nightly_sync(config_path=config, return_state=True)
    mark("flow returned")
    if not state.is_completed():
        raise SystemExit(f"nightly-sync did not complete: {state.message}")
    return {"steps": steps, "calls": {k: [[round(w, 4), round(u, 4)] for w, u in vs] for k, vs in calls.items()}}


# --- driver -------------------------------------------------------------------------------------------------
def spawn(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A traced or plain command in a fresh process: its marks (traced) and its wall time, CPU and peak RSS."""
    out = RESULTS / f".prefect-path-{os.getpid()}.json"
    cmd = args if args[0] != "trace" else [sys.executable, __file__, "--phase", *args[1:], "--out", str(out)]
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env, "BENCH_T0": repr(started)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} exited with status {status >> 8}")
    result = json.loads(out.read_text()) if out.exists() else {}
    out.unlink(missing_ok=True)
    return {**result, "wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def segments(result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """Consecutive marks as (segment, wall, CPU), ending with the process's exit (``wait4``)."""
    marks = [("spawned", 0.0, 0.0), *result["marks"], ("process exited", result["wall_s"], result["cpu_s"])]
    return [(f"{a[0]} -> {b[0]}", b[1] - a[1], b[2] - a[2]) for a, b in itertools.pairwise(marks)]


def median_segments(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per = [segments(r) for r in results]
    return [{"segment": rows[0][0], "wall_s": round(statistics.median(r[1] for r in rows), 3),
             "cpu_s": round(statistics.median(r[2] for r in rows), 3)} for rows in zip(*per)]


def prefect_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    from measure import free_port

    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    for _ in range(900):
        try:
            urllib.request.urlopen(api + "/health", timeout=1).read()
            return server, api
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the Prefect server did not answer /health in 180 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--phase", choices=["empty", "ours"])
    ap.add_argument("--config")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.phase:
        extra = trace_empty() if args.phase == "empty" else trace_ours(args.config)
        mark("harness done")
        Path(args.out).write_text(json.dumps({"marks": MARKS, **(extra or {})}))
        return
    from startup import QUIET, synced_shop

    work = args.workdir / "prefect-path"
    home = work / "prefect-home"
    env = {**QUIET, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    emulator, config = synced_shop(args.orders, args.workdir, work, env)
    server, api = prefect_server(home)
    try:
        env["PREFECT_API_URL"] = api
        spawn(["trace", "empty"], env)  # the server's first flow run warms it
        runs = {"empty": [], "ours": [], "cli": []}
        for _ in range(args.repeat):  # interleaved: a drift in the machine's load hits each alike
            runs["empty"].append(spawn(["trace", "empty"], env))
            runs["ours"].append(spawn(["trace", "ours", "--config", str(config)], env))
            runs["cli"].append(spawn([str(Path(sys.executable).with_name("altcraft-sync")), "sync", "--config", str(config)],
                                     env))
    finally:
        server.terminate()
        server.wait()
        emulator.terminate()
        emulator.wait()
    report = {"orders": args.orders, "repeat": args.repeat, "runs": runs,
              "median": {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "cpu_s", "peak_rss_mb")}
                         for k, v in runs.items()},
              "segments": {k: median_segments(runs[k]) for k in ("empty", "ours")}}
    steps = [s for r in runs["ours"] for s in r["steps"]]
    med = lambda values: round(statistics.median(values), 4)  # noqa: E731
    report["tasks"] = {"count_per_run": len(runs["ours"][0]["steps"]),
                       "overhead_s_median": med(s["task_s"] - s["work_s"] for s in steps),
                       "overhead_cpu_s_median": med(s["task_cpu_s"] - s["work_cpu_s"] for s in steps),
                       "work_s_median": med(s["work_s"] for s in steps),
                       "work_cpu_s_median": med(s["work_cpu_s"] for s in steps)}
    report["calls"] = {k: [med(sum(c[i] for c in r["calls"][k]) for r in runs["ours"]) for i in (0, 1)]
                       for k in runs["ours"][0]["calls"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prefect-path-latest.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (RESULTS / "prefect-path-latest.md").write_text(md)
    print(md)


def markdown(report: dict[str, Any]) -> str:
    m = report["median"]
    lines = [f"Under one running Prefect server, median of {report['repeat']} (wall / CPU-s of the process):",
             f"empty flow {m['empty']['wall_s']:.2f} s / {m['empty']['cpu_s']:.2f}; nightly_sync called from Python "
             f"{m['ours']['wall_s']:.2f} s / {m['ours']['cpu_s']:.2f}; `altcraft-sync sync` {m['cli']['wall_s']:.2f} s / "
             f"{m['cli']['cpu_s']:.2f} ({report['orders']:,}-order demo shop, nothing to send).", ""]
    for kind in ("empty", "ours"):
        lines += [f"**{kind}**", "", "| segment | wall (s) | CPU (s) |", "|---|---:|---:|"]
        lines += [f"| {s['segment']} | {s['wall_s']:.3f} | {s['cpu_s']:.3f} |" for s in report["segments"][kind]]
        lines.append("")
    t = report["tasks"]
    lines.append(f"Stream tasks: {t['count_per_run']} a run; per task, Prefect's own time (task run created, "
                 f"states reported) {t['overhead_s_median']:.3f} s wall / {t['overhead_cpu_s_median']:.3f} CPU-s around "
                 f"{t['work_s_median']:.3f} s / {t['work_cpu_s_median']:.3f} CPU-s of the stream's work. "
                 "Calls inside the flow, summed per run (wall / CPU-s): " +
                 ", ".join(f"{k} {w:.3f} / {u:.3f}" for k, (w, u) in report["calls"].items()) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
