"""A full sync read as rows against read in columns (``source.reader: rows`` / ``auto``), per database.

    nice -n 10 python bench/reader_sync.py --dialect sqlite --dialect postgresql --orders 200000 --repeat 3

Per database it generates the demo shop once (``bench/run.py``'s generator; SQLite kept under ``--workdir``
and reused), starts the emulator in its own process, then runs ``altcraft-sync sync`` from a terminal,
every stream from an empty state and a reset emulator, alternating the two readers ``--repeat`` times (so
a busy moment of the shared machine falls on both). It reports each reader's CPU-s (user+sys of the
command and the map workers it reaped, from ``wait4``: robust on a shared machine), wall time and peak
RSS, the median of the runs, and the records the emulator received (the same for both, or the run says so).

Writes ``bench/results/reader-sync-latest.{json,md}``.
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
from pathlib import Path
from typing import Any

from measure import start_emulator  # bench/ is the script's own directory
from run import child, write_config
from startup import QUIET

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token"
READERS = ("rows", "auto")
DELIVERED = re.compile(r"(\w+): \d+ read, .*? (\d+) delivered")
"""The run's own summary line per stream: both readers must deliver the same records."""


def emulator_call(api: str, what: str, body: bytes | None = None) -> bytes:
    url = api.replace("/api/v1.1/", f"/__emulator/{what}")
    return urllib.request.urlopen(urllib.request.Request(url, data=body)).read()


def timed(cmd: list[str], env: dict[str, str], log: Any) -> dict[str, float]:
    """The command's wall time, CPU (user+sys, ``wait4``: it and the descendants it reaped) and peak RSS.
    Exit status 1 is a completed run with records that did not go (the demo shop plants a few)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    _, status, usage = os.wait4(proc.pid, 0)
    if status >> 8 not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited with status {status >> 8}")
    return {"wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def one_run(work: Path, url: str, api: str, reader: str, env: dict[str, str]) -> dict[str, Any]:
    import yaml

    emulator_call(api, "reset", b"{}")
    config = write_config(work, url, api, f"reader-{reader}")
    raw = yaml.safe_load(config.read_text())
    raw["source"]["reader"] = reader
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    with (work / f"sync-{reader}.log").open("w") as log:
        run = timed([str(Path(sys.executable).with_name("altcraft-sync")), "sync", "--config", str(config)], env, log)
    delivered = dict(DELIVERED.findall((work / f"sync-{reader}.log").read_text()))
    return {**run, "delivered": {k: int(v) for k, v in delivered.items()}}


def bench(dialect: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir / "reader-sync"
    work.mkdir(parents=True, exist_ok=True)
    gen = child("generate", url=url, n_orders=args.orders, n_skus=0,
                reuse_shop="yes" if dialect == "sqlite" else "no")
    print(f"[{dialect}] {args.orders} orders ready ({gen['generate_s']} s)", flush=True)
    env = {**QUIET, "PREFECT_HOME": str(work / "prefect-home")}
    emulator, api = start_emulator(ROOT, TOKEN)
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in READERS}
    try:
        for i in range(args.repeat):
            for reader in READERS:
                runs[reader].append(one_run(work, url, api, reader, env))
                print(f"[{dialect}] {reader} #{i + 1}: {runs[reader][-1]}", flush=True)
    finally:
        emulator.terminate()
        emulator.wait()
    if len({json.dumps(x["delivered"], sort_keys=True) for rs in runs.values() for x in rs}) != 1:
        raise SystemExit(f"[{dialect}] the readers delivered different records: {runs}")
    return {r: {"runs": rs, **{k: statistics.median(x[k] for x in rs) for k in ("cpu_s", "wall_s", "peak_rss_mb")}}
            for r, rs in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialect", action="append", choices=["sqlite", "postgresql", "mysql"])
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg-url", default=os.environ.get("SHOP_TEST_PG_URL"))
    ap.add_argument("--mysql-url", default=os.environ.get("SHOP_TEST_MYSQL_URL"))
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    args = ap.parse_args()
    report: dict[str, Any] = {"orders": args.orders, "repeat": args.repeat}
    md = [f"Full sync (every stream, empty state) of a {args.orders:,}-order demo shop, median of {args.repeat}, "
          "`source.reader` rows vs auto:", "",
          "| database | reader | CPU-s | wall s | peak RSS MB |", "|---|---|---:|---:|---:|"]
    for dialect in args.dialect or ["sqlite"]:
        url = {"sqlite": f"sqlite:///{args.workdir}/shop-{args.orders}.db", "postgresql": args.pg_url,
               "mysql": args.mysql_url}[dialect]
        if not url:
            raise SystemExit(f"--dialect {dialect} needs its URL")
        report[dialect] = got = bench(dialect, url, args)
        md += [f"| {dialect} | {r} | {got[r]['cpu_s']:.2f} | {got[r]['wall_s']:.2f} | {got[r]['peak_rss_mb']:.0f} |"
               for r in READERS]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reader-sync-latest.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "reader-sync-latest.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
