"""What a run costs before it reads anything: ``altcraft-sync sync`` with nothing to do, from a terminal.

    python bench/startup.py                     # a 20,000-order SQLite demo shop, 5 no-change runs
    python bench/startup.py --orders 2000 --repeat 5 --stream orders

It generates the demo shop (kept under ``bench/.work`` and reused), starts the emulator in its own process,
runs one full sync untimed, then times ``--repeat`` no-change runs of the console command (CPU = user+sys
of the process from ``wait4``: robust on a shared machine; wall; peak RSS), and one more under
``python -X importtime``, whose report is summed by top-level package: what the run imports, and how
long each import took (self time, so a package's share is not counted twice).

Writes ``bench/results/startup-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from measure import compile_sources, start_emulator  # bench/ is the script's own directory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token"
QUIET = {"ALTCRAFT_TOKEN": TOKEN, "PREFECT_API_URL": "", "OPENBLAS_NUM_THREADS": "1"}
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def timed(cmd: list[str], env: dict[str, str], stderr: Any = subprocess.DEVNULL, ok: tuple[int, ...] = (0,)) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status >> 8 not in ok or status & 0xFF:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited with status {status >> 8}")
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def import_report(text: str) -> dict[str, Any]:
    """``-X importtime`` lines summed by top-level package (self microseconds), and the modules loaded."""
    by_package: dict[str, int] = defaultdict(int)
    modules = []
    for m in IMPORT_LINE.finditer(text):
        self_us, name = int(m.group(1)), m.group(4)
        by_package[name.split(".")[0]] += self_us
        modules.append(name)
    top = sorted(by_package.items(), key=lambda kv: -kv[1])
    return {"total_s": round(sum(by_package.values()) / 1e6, 3), "modules": len(modules),
            "by_package_s": {k: round(v / 1e6, 3) for k, v in top}, "loaded": sorted(set(modules))}


def synced_shop(orders: int, workdir: Path, work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """A demo shop of ``orders`` orders (generated once under ``workdir``, then reused), the emulator in its
    own process, and a config whose first full sync has run: the next run has nothing to do."""
    from run import child, write_config

    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir}/shop-{orders}.db"
    child("generate", url=url, n_orders=orders, n_skus=0, reuse_shop="yes")
    emulator, api = start_emulator(ROOT, TOKEN)
    try:
        urllib.request.urlopen(urllib.request.Request(api.replace("/api/v1.1/", "/__emulator/reset"), data=b"{}")).read()
        config = write_config(work, url, api, work.name)
        # the demo shop plants invalid rows: the first sync ends "with warnings" (exit code 1)
        timed([str(Path(sys.executable).with_name("altcraft-sync")), "sync", "--config", str(config)], env, ok=(0, 1))
    except BaseException:
        emulator.terminate()
        raise
    return emulator, config


def main() -> None:

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stream", action="append", help="only these streams (default: every stream)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--label", default="latest", help="names the result files (startup-<label>)")
    ap.add_argument("--lookback", type=float, default=None,
                    help="source.lookback_seconds of the timed runs: a long one re-reads every record unchanged")
    args = ap.parse_args()
    compile_sources(ROOT)
    work = args.workdir / "startup"
    env = {**QUIET, "PREFECT_HOME": str(work / "prefect-home")}
    emulator, config = synced_shop(args.orders, args.workdir, work, env)
    try:
        if args.lookback is not None:
            import yaml

            raw = yaml.safe_load(config.read_text())
            raw["source"]["lookback_seconds"] = args.lookback
            config.write_text(yaml.safe_dump(raw, sort_keys=False))
        cmd = [str(Path(sys.executable).with_name("altcraft-sync")), "sync", "--config", str(config)]
        for s in args.stream or []:
            cmd += ["--stream", s]
        runs = [timed(cmd, env) for _ in range(args.repeat)]
        log = work / "importtime.txt"
        with log.open("w") as f:
            timed([sys.executable, "-X", "importtime", *cmd], env, stderr=f)
        imports = import_report(log.read_text())
    finally:
        emulator.terminate()
        emulator.wait()
    report = {"orders": args.orders, "streams": args.stream or "all", "repeat": args.repeat, "lookback_s": args.lookback,
              "runs": runs,
              **{k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mb")},
              "imports": imports}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"startup-{args.label}.json").write_text(json.dumps(report, indent=2))
    top = list(imports["by_package_s"].items())[:15]
    reread = f" re-reading {args.lookback:g} s of lookback" if args.lookback else ""
    md = [f"No-change `altcraft-sync sync`{reread} on a {args.orders:,}-order SQLite demo shop, streams: {report['streams']}; "
          f"median of {args.repeat}: CPU {report['cpu_s']:.2f} s, wall {report['wall_s']:.2f} s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB. Imports: {imports['modules']} modules, "
          f"{imports['total_s']:.2f} s (self time, under -X importtime).", "",
          "| package | import self time (s) |", "|---|---:|"] + [f"| {k} | {v:.3f} |" for k, v in top]
    (RESULTS / f"startup-{args.label}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print("runs:", [(r["cpu_s"], r["wall_s"]) for r in runs])


if __name__ == "__main__":
    main()
