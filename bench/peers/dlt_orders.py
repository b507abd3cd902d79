"""The orders sync as a dlt user writes it: an incremental resource over the nested-orders SQL and a
``@dlt.destination`` sink that posts each batch of 500 to ``market/orders/import``.

Run by ``bench/compare.py`` with the Python of its own dlt virtualenv (dlt 1.31):
    python dlt_orders.py --dialect sqlite --db /path/shop.db --api http://127.0.0.1:PORT/api/v1.1/ --state DIR
The cursor is ``cursor`` (the later of the order's and its lines' ``updated_at``), pushed down into the
query as dlt's docs show for SQL sources; the API token comes from ``ALTCRAFT_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import dlt
import requests

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialect", choices=["sqlite", "postgresql"], required=True)
    ap.add_argument("--db", required=True, help="SQLite file or PostgreSQL conninfo")
    ap.add_argument("--api", required=True)
    ap.add_argument("--state", required=True, help="dlt's pipelines directory")
    args = ap.parse_args()
    model = "\n".join(line for line in (HERE / f"orders.{args.dialect}.sql").read_text().splitlines()
                      if not line.startswith("--"))

    def connect():
        if args.dialect == "sqlite":
            import sqlite3

            return sqlite3.connect(args.db), "?"
        import psycopg

        return psycopg.connect(args.db), "%s"

    @dlt.resource(name="orders", primary_key="id", write_disposition="append")
    def orders(cursor=dlt.sources.incremental("cursor")):  # noqa: B008 (dlt's documented way to declare a cursor)
        conn, mark = connect()
        try:
            sql = f"SELECT * FROM ({model}) AS m"
            params: tuple = ()
            if cursor.last_value is not None:
                sql, params = f"{sql} WHERE cursor > {mark}", (cursor.last_value,)
            cur = conn.cursor()
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            while rows := cur.fetchmany(5000):
                yield [dict(zip(names, row)) for row in rows]
        finally:
            conn.close()

    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {os.environ['ALTCRAFT_TOKEN']}",
                            "Content-Type": "application/json"})

    @dlt.destination(batch_size=500, name="altcraft")
    def altcraft(items, table) -> None:
        body = {"data": [json.loads(item["doc"]) for item in items]}
        response = session.post(args.api + "market/orders/import", data=json.dumps(body), timeout=60)
        response.raise_for_status()

    pipeline = dlt.pipeline(pipeline_name="altcraft_orders", destination=altcraft, pipelines_dir=args.state)
    info = pipeline.run(orders())
    print(info)


if __name__ == "__main__":
    main()
