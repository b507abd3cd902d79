"""altcraft-sync benchmark: a demo shop at a real shop's scale, measured against the floor.

    python bench/run.py                      # 1,000,000 orders (+ 100,000 for the RSS comparison), SQLite
    python bench/run.py --dialect postgresql --pg-url postgresql://...   # the same on PostgreSQL
    python bench/run.py --orders 100000 --small 20000                   # quicker

Per dialect it generates the shop, starts the emulator in its own process, and runs each phase in its own
child process (wall time and that process's peak RSS, from ``os.wait4``):

1. floor: a plain SQLAlchemy SELECT of the same rows, serialized to JSON bytes, no mapping or validation;
2. transform: the source's chunked reads of 1M orders with their lines, timed apart from map + validate +
   serialize, in one process (issue 4's ratio; ``--no-transform-phase`` skips it);
3. full: a first sync of every stream into the emulator (what a full backfill does);
4. incremental: after 1% of orders changed;
5. no change.

It prints wall time, rows/s and peak RSS per phase and the ratios the targets are stated in, and writes
``bench/results/latest.json`` and ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from measure import _cpu, _rss, _tree_rss, compile_sources, free_port  # bench/ is the script's own directory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token"
CORES = os.cpu_count() or 1


# --- phases (run in child processes) ---------------------------------------------------------------
def phase_floor(args: argparse.Namespace) -> dict[str, Any]:
    import orjson
    import sqlalchemy as sa

    from sandbox import demo_shop as D

    engine = sa.create_engine(args.url)
    rows = nbytes = 0
    with engine.connect() as conn:
        for table in (D.categories, D.products, D.skus, D.sku_regions, D.orders, D.order_lines):
            result = conn.execution_options(yield_per=10_000).execute(sa.select(table).order_by(table.c.id))
            keys = [str(k) for k in result.keys()]  # noqa: SIM118 (a Result, not a dict); plain str: orjson refuses str subclasses as keys
            for part in result.partitions():
                for row in part:
                    nbytes += len(orjson.dumps(dict(zip(keys, row)), default=str))
                rows += len(part)
    return {"rows": rows, "bytes": nbytes}


def _runtime(args: argparse.Namespace) -> Any:
    from altcraft_sync.config import load_config
    from runner.runtime import open_runtime

    cfg = load_config(args.config)
    return open_runtime(cfg, need_client=args.phase != "transform")



def phase_sync(args: argparse.Namespace) -> dict[str, Any]:
    from engine.coordinator import Syncer

    stop, peak = _tree_rss()
    rt = _runtime(args)
    try:
        with Syncer(rt.config, rt.source, rt.state, rt.client, run_id=f"bench-{args.phase}") as syncer:
            out: dict[str, Any] = {"streams": {}}
            for stream in ("categories", "products", "skus", "orders"):
                st = syncer.sync_stream(stream)
                out["streams"][stream] = {k: getattr(st, k) for k in ("extracted", "unchanged", "invalid", "delivered",
                                                                       "rejected", "failed", "requests")}
                out["streams"][stream]["seconds"] = {k: round(v, 2) for k, v in st.seconds.items()}
                out["streams"][stream]["mapped_in_workers"] = st.mapped_in_workers
        out["rows"] = sum(s["extracted"] for s in out["streams"].values())
        out["delivered"] = sum(s["delivered"] for s in out["streams"].values())
        stop.set()
        out["tree_peak_rss_mb"] = round(peak[0] / 2**20, 1)
        return out
    finally:
        rt.close()


def phase_transform(args: argparse.Namespace) -> dict[str, Any]:
    """Issue 4's target: map + validate + serialize vs just fetching the same rows from the source."""
    from transforms.orders import map_orders
    from transforms.spec import mapping_spec

    rt = _runtime(args)
    src, cfg = rt.source, rt.config
    mapping = mapping_spec(cfg, "orders")
    fetch = transform = 0.0
    orders = lines = 0
    upper = src.upper_bound("orders", 0)
    t = time.perf_counter()
    for frame, _ in src.read_changes("orders", None, upper, cfg.source.chunk_size):
        children = src.fetch_by_keys("orders.lines", frame["_pk"].tolist(), by_parent=True)
        fetch += time.perf_counter() - t
        t = time.perf_counter()
        mapped = map_orders(frame, children, mapping)
        transform += time.perf_counter() - t
        orders += len(frame)
        lines += len(children)
        del mapped
        t = time.perf_counter()
    rt.close()
    return {"rows": orders + lines, "orders": orders, "lines": lines, "fetch_s": round(fetch, 2),
            "transform_s": round(transform, 2), "transform_over_fetch": round(transform / fetch, 3) if fetch else None}


def phase_capacity(args: argparse.Namespace) -> dict[str, Any]:
    """The emulator's own capacity: pre-encoded orders pushed as fast as 4 connections go."""
    from pydantic import SecretStr

    from altcraft_sync.config import AltcraftSettings
    from connectors.altcraft import AltcraftClient, Encoded, RateLimiter

    settings = AltcraftSettings(api_url=args.api, requests_per_second=10_000, concurrency=4)
    client = AltcraftClient(settings, SecretStr(TOKEN), limiter=RateLimiter(10_000))
    client.import_categories([Encoded.of({"external_id": "cap", "name": "cap"})],
                             carrier=Encoded.of({"external_id": "cap-p", "name": "p"}))
    client.import_records("market/sku/import",
                          [Encoded.of({"external_id": "cap-s", "name": "s", "product_external_id": "cap-p"})])
    line = {"status": "new", "product": "cap-s", "final_price_per_item": "10", "count": 1}
    records = [
        Encoded.of(
            {
                "external_id": f"cap-{i}",
                "email": "a@b.co",
                "endpoint": "w",
                "status": "new",
                "total_price": "30",
                "currency": "RUB",
                "lines": [{**line, "external_id": f"{i}-{k}"} for k in range(3)],
            }
        )
        for i in range(args.capacity_orders)
    ]
    t = time.perf_counter()
    report = client.import_records("market/orders/import", records, root={"skip_triggers": False})
    wall = time.perf_counter() - t
    client.close()
    return {"rows": report.count("delivered"), "wall_inner": wall}


def phase_generate(args: argparse.Namespace) -> dict[str, Any]:
    """Generating runs in a child too: Linux carries a process's RSS high-water mark across fork and
    exec, so a driver that generated 1M orders itself would lend its peak to every later phase."""
    seconds = prepare_shop(args.url, args.n_orders, args.n_skus or None, reuse=args.reuse_shop == "yes")
    return {"generate_s": round(seconds, 1), "rows": 0}


PHASES = {
    "generate": phase_generate,
    "floor": phase_floor,
    "transform": phase_transform,
    "full": phase_sync,
    "incremental": phase_sync,
    "nochange": phase_sync,
    "capacity": phase_capacity,
}


# --- driver ------------------------------------------------------------------------------------------
def child(phase: str, **kw: Any) -> dict[str, Any]:
    """Run one phase in a child process; its wall time and peak RSS come from the kernel."""
    cmd = [sys.executable, __file__, "--phase", phase] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items() if v is not None]
    out_path = RESULTS / f".phase-{os.getpid()}.json"
    started = time.perf_counter()
    proc = subprocess.Popen(cmd + [f"--out={out_path}"], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"phase {phase} failed (status {status})")
    result = json.loads(out_path.read_text())
    out_path.unlink()
    # CPU from wait4 covers the child and the descendants it reaped (the map workers): with the emulator's
    # own CPU it bounds the wall time from below on this many cores, whatever the pipeline overlaps.
    result.update(phase=phase, wall_s=round(wall, 2), peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 1))
    result["rows_per_s"] = round(result["rows"] / wall) if result.get("rows") else None
    return result




def prepare_shop(url: str, n_orders: int, skus: int, reuse: bool) -> float:
    import sqlalchemy as sa

    from sandbox import demo_shop

    engine = sa.create_engine(url)
    if reuse and sa.inspect(engine).has_table("orders"):
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == n_orders:
                return 0.0
    demo_shop.metadata.drop_all(engine)
    t = time.perf_counter()
    demo_shop.generate(engine, n_orders, seed=1, skus_count=skus)
    if engine.dialect.name == "postgresql":  # as a loaded shop is: else autovacuum works through the fresh
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # rows during the
            conn.exec_driver_sql("VACUUM ANALYZE")  # first tool's run, on the same two cores
    engine.dispose()
    return time.perf_counter() - t


def write_config(workdir: Path, url: str, api: str, tag: str) -> Path:
    from sandbox.demo import write_demo_config

    state = workdir / f"state-{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    path = write_demo_config(url, f"sqlite:///{state}", api, TOKEN, workdir / f"config-{tag}.yaml", margin_seconds=0)
    import yaml

    raw = yaml.safe_load(path.read_text())
    raw["altcraft"].update(requests_per_second=10_000, concurrency=4)
    raw["sync"]["failure_threshold"] = 1.0
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def change_one_percent(url: str) -> int:
    import sqlalchemy as sa

    from sandbox import demo_shop as D

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(D.orders)).scalar()
        # whole seconds, as the demo shop's times are (sub-millisecond digits would be rounded by SQLite's
        # strftime('%f') in the peers' model and truncated by altcraft-sync: a difference of spelling)
        at = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(seconds=5)
        result = conn.execute(D.orders.update().where(D.orders.c.id % 100 == 37).values(state="completed", updated_at=at))
    engine.dispose()
    return result.rowcount or n // 100


def bench_dialect(args: argparse.Namespace, dialect: str, workdir: Path) -> dict[str, Any]:
    if dialect == "sqlite":
        url_for = lambda n: f"sqlite:///{workdir}/shop-{n}.db"  # noqa: E731
    else:
        if not args.pg_url:
            raise SystemExit("--dialect postgresql needs --pg-url (or SHOP_TEST_PG_URL)")
        url_for = lambda n: args.pg_url  # noqa: E731
    port = free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "cli.main", "sandbox", "--port", str(port), "--token", TOKEN],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1.1/"
    time.sleep(1.5)
    out: dict[str, Any] = {"dialect": dialect, "phases": {}}
    try:
        for n, label in ((args.small, "small"), (args.orders, "big")):
            if not n:
                continue
            url = url_for(n)
            gen = child("generate", url=url, n_orders=n, n_skus=args.skus if label == "big" else 0,
                        reuse_shop="yes" if args.reuse and dialect == "sqlite" else "no")["generate_s"]
            print(f"[{dialect}] {n} orders ready (generated in {gen:.0f} s)", flush=True)
            out[f"generate_{label}_s"] = gen
            subprocess.run([sys.executable, "-c", "import urllib.request as u; u.urlopen(u.Request("
                            f"'http://127.0.0.1:{port}/__emulator/reset', data=b'{{}}'))"], check=True)
            cfg = write_config(workdir, url, api, f"{dialect}-{label}")
            phases = ["full"] if label == "small" else (
                ["floor"] + (["transform"] if args.transform_phase else []) + ["full", "incremental", "nochange"])
            for phase in phases:
                if phase == "incremental":
                    changed = change_one_percent(url)
                    print(f"[{dialect}] changed {changed} orders (1%)", flush=True)
                    time.sleep(0.2)
                emu_cpu = _cpu(emulator.pid)
                res = child(phase, url=url, config=cfg, api=api)
                res["emulator_cpu_s"] = round(_cpu(emulator.pid) - emu_cpu, 1)
                out["phases"][f"{phase}_{label}" if label == "small" else phase] = res
                print(f"[{dialect}] {phase:<12} {res['wall_s']:>8.1f} s  {res.get('rows_per_s') or 0:>9} rows/s  "
                      f"peak RSS {res['peak_rss_mb']:>7.1f} MB (with map workers {res.get('tree_peak_rss_mb') or '-'} MB)",
                      flush=True)
                if res["emulator_cpu_s"] >= 0.5:
                    print(f"[{dialect}]   CPU {res['cpu_s']} s (with map workers) + emulator {res['emulator_cpu_s']} s "
                          f"= at least {(res['cpu_s'] + res['emulator_cpu_s']) / CORES:.1f} s on {CORES} cores", flush=True)
                if phase == "transform":
                    print(f"[{dialect}]   fetch {res['fetch_s']} s, map + validate + encode {res['transform_s']} s "
                          f"({res['rows'] / res['transform_s']:.0f} rows/s): ratio {res['transform_over_fetch']}", flush=True)
        cap = child("capacity", api=api, capacity_orders=args.capacity_orders)
        cap["rows_per_s"] = round(cap["rows"] / cap["wall_inner"])
        out["phases"]["emulator_capacity"] = cap
        print(f"[{dialect}] emulator capacity {cap['rows_per_s']} orders/s (3 lines each, 4 connections)", flush=True)
    finally:
        emulator.terminate()
        emulator.wait()
    p = out["phases"]
    ratios = {}
    if "full" in p and "floor" in p:
        full, floor = p["full"], p["floor"]["wall_s"]
        ratios["full_over_floor"] = round(full["wall_s"] / floor, 2)
        # the full sync's CPU (run + workers + emulator) spread over every core: no overlap beats it
        ratios["full_cpu_bound_over_floor"] = round((full["cpu_s"] + full["emulator_cpu_s"]) / CORES / floor, 2)
    if "incremental" in p and "full" in p:
        ratios["incremental_over_full"] = round(p["incremental"]["wall_s"] / p["full"]["wall_s"], 4)
    if "full_small" in p and "full" in p:
        ratios["rss_big_over_small"] = round(_rss(p["full"]) / _rss(p["full_small"]), 2)
    if "transform" in p:  # in one process, one after the other: each side's own cost
        ratios["transform_over_fetch"] = p["transform"]["transform_over_fetch"]
    if "full" in p:  # the full sync's split (the worker's map time vs the run's read time, both contended)
        secs = p["full"]["streams"]["orders"]["seconds"]
        ratios["full_sync_map_over_read"] = round(secs.get("map", 0) / secs["read"], 3) if secs.get("read") else None
    if "full" in p and "orders" in p["full"].get("streams", {}):
        orders_delivered = p["full"]["streams"]["orders"]["delivered"]
        push_rate = orders_delivered / max(1e-9, p["full"]["streams"]["orders"]["seconds"].get("push", 0) or 1e-9)
        ratios["emulator_headroom"] = round(p["emulator_capacity"]["rows_per_s"] / push_rate, 2) if push_rate else None
    out["ratios"] = ratios
    print(f"[{dialect}] ratios: {ratios}", flush=True)
    return out



def markdown(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['when']} on {report['machine']} ({report['orders']} orders, {report['skus']} SKUs).", ""]
    for d in report["dialects"]:
        lines += [
            f"**{d['dialect']}**",
            "",
            "| phase | wall (s) | rows/s | peak RSS (MB) | with map workers (MB) | CPU (s) | emulator CPU (s) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, res in d["phases"].items():
            lines.append(f"| {name} | {res['wall_s']} | {res.get('rows_per_s') or '-'} | {res['peak_rss_mb']} | "
                         f"{res.get('tree_peak_rss_mb') or '-'} | {res.get('cpu_s', '-')} | {res.get('emulator_cpu_s', '-')} |")
        lines += ["", "| ratio | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in d["ratios"].items()] + [""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000, help="smaller shop for the peak-RSS comparison (0 = skip)")
    ap.add_argument("--skus", type=int, default=100_000)
    ap.add_argument("--dialect", action="append", choices=["sqlite", "postgresql"])
    ap.add_argument("--pg-url", default=os.environ.get("SHOP_TEST_PG_URL"))
    ap.add_argument("--workdir", default=str(ROOT / "bench" / ".work"))
    ap.add_argument("--reuse", action="store_true", help="reuse a generated SQLite shop of the same size")
    ap.add_argument("--capacity-orders", type=int, default=20_000)
    ap.add_argument("--no-transform-phase", dest="transform_phase", action="store_false",
                    help="skip timing fetch vs transform in a phase of its own (issue 4's target; ~1 min at 1M)")
    # child-process arguments
    ap.add_argument("--phase", choices=list(PHASES))
    ap.add_argument("--url")
    ap.add_argument("--config")
    ap.add_argument("--api")
    ap.add_argument("--out")
    ap.add_argument("--n-orders", type=int)
    ap.add_argument("--n-skus", type=int)
    ap.add_argument("--reuse-shop")
    args = ap.parse_args()
    if args.phase:
        result = PHASES[args.phase](args)
        Path(args.out).write_text(json.dumps(result, default=str))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    compile_sources(ROOT)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "orders": args.orders, "skus": args.skus,
              "dialects": [bench_dialect(args, d, workdir) for d in (args.dialect or ["sqlite"])]}
    report["total_s"] = round(time.perf_counter() - started, 1)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.md").write_text(markdown(report))
    print(markdown(report))
    print(f"total {report['total_s']} s; written to {RESULTS}/latest.json and latest.md")


if __name__ == "__main__":
    main()
