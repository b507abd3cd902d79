"""Columnar readers against today's reads: which reader turns the orders keyset pages and their lines into
frames for the least CPU and memory, with money exact.

    python bench/readers.py --dialect sqlite --dialect postgresql --dialect mysql --orders 50000 --repeat 3

Per database it first records, in a child process, the queries ``connectors/shop_db.py`` runs today for
the first ``--orders`` orders of the demo shop (the orders keyset pages of ``source.chunk_size`` and, per
page, the lines by parent key), each rendered as literal SQL, with the database's own sum of each page's
money in minor units. Then each reader runs in a child process of its own:

* ``today``: ``ShopSource.read_changes`` + ``fetch_by_keys``, the code a sync runs (decoding, repeated-key
  marking and the ``_whole_last_key`` look-up included);
* ``pandas-sa``: ``pandas.read_sql`` over the SQLAlchemy engine, on the recorded SQL;
* ``adbc``: ``adbc-driver-sqlite`` / ``adbc-driver-postgresql`` (no MySQL driver on PyPI), Arrow -> pandas;
* ``connectorx``: ``connectorx.read_sql(..., return_type="arrow")`` -> pandas;
* ``pg-copy-binary``: psycopg's ``COPY (...) TO STDOUT (FORMAT BINARY)`` with its binary loaders, rows -> frame;
* ``pg-copy-arrow``: ``COPY (...) TO STDOUT (FORMAT CSV)`` parsed by ``pyarrow.csv`` with the columns' own
  types (NUMERIC as decimal128).

The table gives each reader's CPU-s (user+sys of its process, from ``wait4``; robust on a shared machine),
the CPU of the read loop alone (imports excluded), wall time and peak RSS, all the median of ``--repeat``
runs, and whether its money is exact: its type is Decimal, decimal text or integer, never a binary float
(on SQLite every reader gets the stored REAL), and its minor-unit sums equal the database's own. A types
probe says what each reader gives for a native NUMERIC column and for a text column that is all NULL.

Writes ``bench/results/readers-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

from columnar import ARROW_SCHEMA, READERS, available, reader_query  # noqa: E402  (bench/ is the script's own directory)
from exact_money import LINE_MONEY, ORDER_MONEY, money_check, money_kind  # noqa: E402


# --- the plan: today's queries as literal SQL ----------------------------------------------------------
def demo_source(url: str, workdir: Path, reader: str = "rows") -> Any:
    """The demo shop's mapping bound to ``url`` (the source a sync builds), reading as ``reader`` says:
    ``rows`` by default, the SQLAlchemy path whose queries the plan records and the other readers replay
    (``source.reader: auto`` reads pages without those queries)."""
    import yaml

    from altcraft_sync.config import load_config
    from connectors.shop_db import ShopSource
    from sandbox.demo import write_demo_config

    path = write_demo_config(url, f"sqlite:///{workdir}/state.db", "http://127.0.0.1:9/api/v1.1/", "bench",
                             workdir / "readers.yaml", margin_seconds=0)
    raw = yaml.safe_load(path.read_text())
    raw["source"]["reader"] = reader
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    source = ShopSource(load_config(path))
    source.bind()
    return source


def literal_sql(query: Any, engine: Any) -> str:
    """A query as literal SQL for ``engine``'s dialect (ConnectorX takes no parameters): each untyped bound
    value (SQLite's raw reads) gets its Python value's type so it can be rendered."""
    import sqlalchemy as sa
    from sqlalchemy.sql import visitors

    def typed(element: Any) -> Any:
        if isinstance(element, sa.BindParameter) and isinstance(element.type, sa.types.NullType):
            return sa.literal(element.effective_value)
        return None

    query = visitors.replacement_traverse(query, {}, typed)
    return str(query.compile(engine, compile_kwargs={"literal_binds": True}))


def plan(url: str, orders: int, workdir: Path) -> dict[str, Any]:
    """The queries today's reads run for the first ``orders`` orders, and the database's money sums."""
    source = demo_source(url, workdir)
    chunk = source.config.source.chunk_size
    recorded: list[Any] = []
    fetch = source._fetch

    def recording(query: Any) -> Any:
        recorded.append(query)
        return fetch(query)

    upper = source.upper_bound("orders", 0)
    source._fetch = recording
    pages: list[dict[str, Any]] = []
    read = 0
    for frame, _ in source.read_changes("orders", None, upper, chunk):
        page_queries = [literal_sql(q, source.engine) for q in recorded]
        recorded.clear()
        source.fetch_by_keys("orders.lines", frame["_pk"].tolist(), by_parent=True)
        pages.append({"orders": page_queries, "lines": [literal_sql(q, source.engine) for q in recorded]})
        recorded.clear()
        read += len(frame)
        if read >= orders:
            break
    source._fetch = fetch
    reference = db_money_sums(source, pages)
    source.close()
    return {"url": url, "dialect": source.dialect, "orders": read, "chunk": chunk, "upper": str(upper),
            "pages": pages, "reference": reference}


def db_money_sums(source: Any, pages: list[dict[str, Any]]) -> dict[str, int]:
    """Each money column's sum in minor units over the planned queries, computed by the database itself
    (``NUMERIC`` arithmetic on PostgreSQL and MySQL; SQLite's stored REAL rounded to the cent)."""
    import sqlalchemy as sa

    def cents(col: str) -> str:
        name = f'"{col}"' if source.dialect != "mysql" else f"`{col}`"
        if source.dialect == "sqlite":
            return f"CAST(ROUND({name} * 100) AS INTEGER)"
        numeric = "DECIMAL(30,4)" if source.dialect == "mysql" else "NUMERIC"
        return f"CAST({name} AS {numeric}) * 100"

    sums = dict.fromkeys(ORDER_MONEY + LINE_MONEY, 0)
    with source.engine.connect() as conn:
        for page in pages:
            for table, cols in (("orders", ORDER_MONEY), ("lines", LINE_MONEY)):
                for sql in page[table][:1] if table == "orders" else page[table]:
                    select = ", ".join(f"SUM({cents(c)})" for c in cols)
                    row = conn.execute(sa.text(f"SELECT {select} FROM ({sql}) AS q")).one()
                    for c, v in zip(cols, row):
                        sums[c] += int(v or 0)
    return sums


# --- the readers ------------------------------------------------------------------------------------------
def frames_today(p: dict[str, Any], source: Any) -> Iterator[tuple[Any, Any]]:
    upper = p["upper"] if source.dialect == "sqlite" else source.upper_bound("orders", 0)
    read = 0
    for frame, _ in source.read_changes("orders", None, upper, p["chunk"]):
        yield frame, source.fetch_by_keys("orders.lines", frame["_pk"].tolist(), by_parent=True)
        read += len(frame)
        if read >= p["orders"]:
            return


def replay(p: dict[str, Any], query: Callable[[str], Any]) -> Iterator[tuple[Any, Any]]:
    """The planned pages through ``query`` (SQL -> frame): the page query (and the last key's look-up when
    today's read made one) and the lines of each page."""
    import pandas as pd

    def one(sqls: list[str]) -> Any:
        parts = [query(sql) for sql in sqls]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    for page in p["pages"]:
        yield one(page["orders"][:1]), one(page["lines"])
        for extra in page["orders"][1:]:  # the last key's look-up: read, as today's code reads it
            query(extra)


def read_all(name: str, p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One reader over the plan: rows read, the read loop's CPU and wall time, and the money check."""
    import pandas as pd

    # the reader's imports, its connection and (today) the binding come before the read loop is timed
    if name == "today":
        source = demo_source(p["url"], workdir)
        pages, close = frames_today(p, source), source.close
    else:
        query, close = reader_query(name, p["dialect"], p["url"])
        pages = replay(p, query)
    before, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    orders, lines = [], []
    n_orders = n_lines = 0
    for o, ln in pages:
        n_orders, n_lines = n_orders + len(o), n_lines + len(ln)
        orders.append(o[[c for c in ORDER_MONEY if c in o]])
        lines.append(ln[[c for c in LINE_MONEY if c in ln]])
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t
    close()
    frames = {"orders": pd.concat(orders, ignore_index=True), "lines": pd.concat(lines, ignore_index=True)}
    check = money_check(frames, p["reference"], stored_float=p["dialect"] == "sqlite")
    return {"orders": n_orders, "lines": n_lines, "read_cpu_s": round(after.ru_utime + after.ru_stime
                                                                        - before.ru_utime - before.ru_stime, 3),
            "read_wall_s": round(wall, 3), **check}


# --- what each reader gives for a native NUMERIC and an all-NULL text column ------------------------------
def probe_types(name: str, dialect: str, url: str) -> dict[str, str]:
    """The frame dtype a reader gives for ``orders.total`` read as the database's NUMERIC/DECIMAL (no cast)
    and for ``orders.tags`` where every row read is NULL (a text column a page can hold only NULLs in)."""
    sql = "SELECT id, total, tags FROM orders WHERE tags IS NULL ORDER BY id LIMIT 50"
    if name == "today":
        return {"numeric": "text (CAST AS VARCHAR/CHAR; SQLite: the stored REAL)", "all_null_text": "object (None)"}
    query, close = reader_query(name, dialect, url)
    try:
        frame = query(sql)
    except Exception as err:  # a reader that cannot read the column says so in the table
        return {"numeric": f"error: {type(err).__name__}: {str(err).splitlines()[0][:80]}", "all_null_text": "-"}
    finally:
        close()
    arrow = {f.name: str(f.type) for f in ARROW_SCHEMA[0]} if ARROW_SCHEMA else {}
    shown = {c: f"{frame[c].dtype}" + (f" (Arrow {arrow[c]})" if c in arrow else "") for c in ("total", "tags")}
    return {"numeric": f"{shown['total']}: {money_kind(frame['total'])}", "all_null_text": shown["tags"]}


# --- driver -----------------------------------------------------------------------------------------------
class ReaderFailed(RuntimeError):
    """A reader's process failed; the message is its last line of stderr."""


def child(args: list[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """A phase in its own process: its result, and its wall time, CPU (user+sys, ``wait4``) and peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, __file__, *args, "--out", str(out_path)], cwd=ROOT, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if status != 0:  # a reader that cannot read this database: its last line goes into the table
            err.seek(0)
            last = (err.read().decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]
            out_path.unlink(missing_ok=True)
            raise ReaderFailed(last[:160])
    result = json.loads(out_path.read_text())
    out_path.unlink()
    return result, {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                    "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def dialect_url(dialect: str, args: argparse.Namespace) -> str:
    if dialect == "sqlite":
        return args.sqlite_url
    url = args.pg_url if dialect == "postgresql" else args.mysql_url
    if not url:
        raise SystemExit(f"--dialect {dialect} needs its URL (SHOP_TEST_PG_URL / SHOP_TEST_MYSQL_URL)")
    return url


def bench(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for dialect in args.dialect or ["sqlite"]:
        url = dialect_url(dialect, args)
        plan_path = workdir / f"readers-plan-{dialect}.json"
        p, _ = child(["--phase", "plan", "--url", url, "--orders", str(args.orders), "--plan", str(plan_path)])
        print(f"[{dialect}] planned {p['orders']} orders in {p['pages']} pages", flush=True)
        for name in args.readers:
            if not available(name, dialect):
                rows.append({"dialect": dialect, "reader": name, "skipped": "not supported or not installed"})
                continue
            try:
                runs = [child(["--phase", "read", "--reader", name, "--plan", str(plan_path)]) for _ in range(args.repeat)]
            except ReaderFailed as err:
                rows.append({"dialect": dialect, "reader": name, "skipped": f"fails: {err}"})
                print(f"[{dialect}] {name:<15} fails: {err}", flush=True)
                continue
            types, _ = child(["--phase", "probe", "--reader", name, "--dialect", dialect, "--url", url])
            row = {"dialect": dialect, "reader": name, **runs[0][0], **types,
                   "runs": [{**r, **m} for r, m in runs]}
            for key in ("wall_s", "cpu_s", "peak_rss_mb"):
                row[key] = statistics.median(m[key] for _, m in runs)
            for key in ("read_cpu_s", "read_wall_s"):
                row[key] = statistics.median(r[key] for r, _ in runs)
            rows.append(row)
            print(f"[{dialect}] {name:<15} CPU {row['cpu_s']:6.2f} s (read {row['read_cpu_s']:6.2f})  "
                  f"wall {row['wall_s']:6.2f} s  RSS {row['peak_rss_mb']:6.0f} MB  "
                  f"{row['orders']} orders {row['lines']} lines  exact: {row['exact']}",
                  flush=True)
    return {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "orders": args.orders, "repeat": args.repeat, "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['when']} on {report['machine']}: the first {report['orders']:,} orders of the demo shop "
             f"and their lines; median of {report['repeat']} runs, each reader in its own process.", "",
             "| database | reader | CPU-s (process) | CPU-s (read loop) | wall (s) | peak RSS (MB) | exact money | "
             "money read as | NUMERIC read natively as | all-NULL text as |",
             "|---|---|---:|---:|---:|---:|---|---|---|---|"]
    for r in report["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['dialect']} | {r['reader']} | - | - | - | - | - | {r['skipped']} | | |")
            continue
        kinds = ", ".join(sorted(set(r["kinds"].values())))
        exact = "yes" if r["exact"] else f"NO ({r['wrong_sums'] or r['floats']})"
        lines.append(f"| {r['dialect']} | {r['reader']} | {r['cpu_s']:.2f} | {r['read_cpu_s']:.2f} | {r['wall_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {exact} | {kinds} | {r['numeric']} | {r['all_null_text']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialect", action="append", choices=["sqlite", "postgresql", "mysql"])
    ap.add_argument("--orders", type=int, default=50_000, help="orders read per run (at most the shop's)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--readers", default=",".join(READERS), type=lambda s: [r for r in s.split(",") if r])
    ap.add_argument("--sqlite-url", default=f"sqlite:///{ROOT}/bench/.work/shop-200000.db")
    ap.add_argument("--pg-url", default=os.environ.get("SHOP_TEST_PG_URL"))
    ap.add_argument("--mysql-url", default=os.environ.get("SHOP_TEST_MYSQL_URL"))
    ap.add_argument("--workdir", default=str(ROOT / "bench" / ".work"))
    ap.add_argument("--keep-others", action="store_true",
                    help="keep the last report's rows of the databases not measured in this run")
    # child-process arguments
    ap.add_argument("--phase", choices=["plan", "read", "probe"])
    ap.add_argument("--reader")
    ap.add_argument("--url")
    ap.add_argument("--plan")
    ap.add_argument("--out")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    if args.phase == "plan":
        p = plan(args.url, args.orders, workdir)
        Path(args.plan).write_text(json.dumps(p))
        result: dict[str, Any] = {"orders": p["orders"], "pages": len(p["pages"])}
    elif args.phase == "read":
        result = read_all(args.reader, json.loads(Path(args.plan).read_text()), workdir)
    elif args.phase == "probe":
        result = probe_types(args.reader, args.dialect[0], args.url)
    else:
        if unknown := set(args.readers) - set(READERS):
            raise SystemExit(f"--readers: unknown {sorted(unknown)}; choose from {', '.join(READERS)}")
        report = bench(args)
        RESULTS.mkdir(parents=True, exist_ok=True)
        last = RESULTS / "readers-latest.json"
        if args.keep_others and last.exists():
            measured = {r["dialect"] for r in report["rows"]}
            report["rows"] = [r for r in json.loads(last.read_text())["rows"] if r["dialect"] not in measured] + report["rows"]
        (RESULTS / "readers-latest.json").write_text(json.dumps(report, indent=2, default=str))
        (RESULTS / "readers-latest.md").write_text(markdown(report))
        print()
        print(markdown(report))
        return
    Path(args.out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
