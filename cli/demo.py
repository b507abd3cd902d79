"""``altcraft-sync demo``: the main job on the embedded default, with nothing to set up.

Creates the demo SQLite shop if missing, starts the local Altcraft emulator, runs the nightly-sync flow,
shows what Altcraft now holds, changes a few rows (two orders, one order line only, one SKU) and runs
again to show the incremental run sending only those.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from altcraft_sync.errors import SyncError
from sandbox import demo_shop
from sandbox.demo import DEMO_TOKEN, HOME, MARGIN_SECONDS, write_demo_config
from sandbox.emulator import AltcraftEmulator


def run_demo(orders: int = 20_000, port: int = 0, console: Console | None = None, home: Path = HOME) -> dict[str, Any]:
    from flows.sync import nightly_sync

    console = console or Console()
    home.mkdir(parents=True, exist_ok=True)
    shop = home / "demo-shop.db"
    engine = sa.create_engine(f"sqlite:///{shop}")
    if shop.exists() and "guest_email" not in {c["name"] for c in sa.inspect(engine).get_columns("orders")}:
        console.print(f"{shop} predates customers and guests: creating it again")
        demo_shop.metadata.drop_all(engine)
        shop.unlink()
    if not shop.exists():
        console.print(f"Creating the demo shop ({orders} orders) in {shop} ...")
        started = time.monotonic()
        demo_shop.generate(engine, orders, people=True)
        console.print(f"  done in {time.monotonic() - started:.1f} s")
    else:
        with engine.connect() as conn:
            held = conn.execute(sa.select(sa.func.count()).select_from(demo_shop.orders)).scalar()
        console.print(f"Using the demo shop in {shop} ({held} orders, with the changes of earlier demos); "
                      "delete it to create a new one" + (f" of {orders} orders" if held != orders else ""))
    state_db = home / "demo-state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state_db}{suffix}").unlink(missing_ok=True)  # a fresh emulator needs a fresh ledger
    # refuses an empty data, and an order whose buyer has no profile
    with AltcraftEmulator(port=port, token=DEMO_TOKEN, strict_data=True, require_profiles=True) as emu:
        config = write_demo_config(f"sqlite:///{shop}", f"sqlite:///{state_db}", emu.url, DEMO_TOKEN, home / "demo.yaml",
                                   people=True)
        console.print(f"Altcraft emulator on {emu.url}; config {config}")
        server = ("" if os.environ.get("PREFECT_API_URL")
                  else " (the first flow run starts a local Prefect server, ~20 s)")
        console.print(f"[bold]Run 1[/]: everything is new{server}")
        first = _run(nightly_sync, config, console)
        _show_store(emu, console)
        changed = _change_rows(engine)
        console.print(f"Changed in the shop: orders {changed['orders']} (status), order line {changed['line']} "
                      f"only (of order {changed['line_order']}), SKU {changed['sku']} (stock)")
        time.sleep(MARGIN_SECONDS + 1)
        console.print("[bold]Run 2[/]: only what changed is sent")
        second = _run(nightly_sync, config, console)
        _show_store(emu, console)
    from cli.app import command

    console.print(f"State: {state_db}  ·  inspect with: {command('status', config)}", highlight=False)
    return {"first": first, "second": second, "changed": changed}


def _run(flow: Any, config: Path, console: Console) -> dict[str, Any]:
    state = flow(config_path=str(config), return_state=True)
    if not state.is_completed():
        raise SyncError(f"demo run failed: {state.message}")
    figures = state.result()
    table = Table()
    cols = ["extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deferred"]
    table.add_column("stream")
    for c in cols:
        table.add_column(c, justify="right")
    for name, f in figures.items():
        table.add_row(name, *[str(f[c]) for c in cols])
    console.print(table)
    return figures


def _show_store(emu: AltcraftEmulator, console: Console) -> None:
    with emu.lock:
        counts = {k: len(getattr(emu.store, k)) for k in ("categories", "products", "skus", "profiles", "orders")}
    console.print("Altcraft (emulator) holds: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def _change_rows(engine: sa.Engine) -> dict[str, Any]:
    """Pick valid rows deterministically and change them with the database's own clock. Only rows that
    ``touch`` really changes are picked (an order not yet completed, a line not yet done), so every run of
    the demo sends exactly what it announces, however often it is run on the same shop."""
    o, lines, people = demo_shop.orders, demo_shop.order_lines, demo_shop.customers
    planted = sa.select(lines.c.order_id).where(lines.c.qty <= 0)  # the planted bad line's order
    valid = (o.c.id > 7, o.c.id.not_in(planted), o.c.is_deleted.is_(False),  # order 7: the planted bad total
             o.c.customer_id.in_(sa.select(people.c.id).where(people.c.email.is_not(None))))
    with engine.connect() as conn:
        order_ids = [r[0] for r in conn.execute(
            sa.select(o.c.id).where(*valid, o.c.state != "completed").order_by(o.c.id).limit(2))]
        line = conn.execute(
            sa.select(lines.c.id, lines.c.order_id).join(o, o.c.id == lines.c.order_id)
            .where(*valid, lines.c.qty > 0, lines.c.state != "done", lines.c.order_id.not_in(order_ids))
            .order_by(lines.c.id).limit(1)).first()
        sku = conn.execute(
            sa.select(demo_shop.skus.c.id).where(demo_shop.skus.c.price > 0).order_by(demo_shop.skus.c.id).limit(1)
        ).scalar()
    if len(order_ids) < 2 or line is None:
        raise SyncError("demo: the demo shop has too few valid orders to change for the second run; "
                        "create it with more (altcraft-sync demo --orders 100)")
    now = datetime.now(UTC).replace(tzinfo=None)
    demo_shop.touch(engine, order_ids=order_ids, line_id=line.id, sku_id=sku, at=now)
    return {"orders": order_ids, "line": line.id, "line_order": line.order_id, "sku": sku}
