"""The local sandbox: ``sandbox`` (the emulator), ``demo-db`` (the demo shop), ``demo`` (the main job)."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Annotated

import typer

from altcraft_sync.errors import SyncError
from cli.app import HOME, app, console, fail


# --- sandbox and demo ----------------------------------------------------------------------------------
@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    token: Annotated[str, typer.Option(help="The token the emulator accepts.", envvar="ALTCRAFT_TOKEN")] = "sandbox-token",
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    rate_limit_every: Annotated[int, typer.Option(help="Answer every Nth request with 429.")] = 0,
    retry_after: Annotated[float, typer.Option(help="Retry-After seconds sent with 429.")] = 1.0,
    error_rate: Annotated[float, typer.Option(help="Fraction of requests answered 5xx.")] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Fraction of connections dropped.")] = 0.0,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the fault dice.")] = None,
    strict_data: Annotated[bool, typer.Option("--strict-data", help="Refuse imports with an empty data array "
                                              "(Altcraft documents data as required; what Altcraft does is unknown).")] = False,
    require_profiles: Annotated[bool, typer.Option("--require-profiles", help="Refuse an order whose buyer has no "
                                                   "profile (what Altcraft does is not documented).")] = False,
    accept_orphan_categories: Annotated[bool, typer.Option(
        "--accept-orphan-categories", help="Take a category whose parent Altcraft does not hold (refused by "
        "default: what Altcraft does is not documented).")] = False,
) -> None:
    """Run the local Altcraft emulator until interrupted (faults can be changed at run time with
    POST /__emulator/faults)."""
    from sandbox.emulator import AltcraftEmulator, Faults

    faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after, error_rate=error_rate,
                    drop_rate=drop_rate, latency_ms=latency_ms, seed=seed)
    try:
        emu = AltcraftEmulator(host=host, port=port, token=token, faults=faults, strict_data=strict_data,
                               require_profiles=require_profiles, accept_orphan_categories=accept_orphan_categories)
    except OSError as err:
        fail(port_busy("sandbox", host, port, err))
    console.print(f"Altcraft emulator on {emu.url} (token set; strict data: {strict_data}; require profiles: "
                  f"{require_profiles}; orphan categories: {'accepted' if accept_orphan_categories else 'refused'}; "
                  f"faults: {faults})", highlight=False)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass


@app.command("demo-db")
def demo_db(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL of the database to fill.")] = f"sqlite:///{HOME}/demo-shop.db",
    orders: Annotated[int, typer.Option(min=1, help="Number of orders.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same rows).")] = 42,
    skus: Annotated[int | None, typer.Option(help="Number of SKUs (default orders/10, at most 100,000).")] = None,
    people: Annotated[bool, typer.Option("--people/--no-people", help="Phone-only customers and guest orders "
                                         "(what the customers and guests streams show).")] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Drop the demo tables first when the database "
                                          "already holds a demo shop.")] = False,
) -> None:
    """Create and fill the demo shop schema (deterministic, bulk inserts)."""
    import sqlalchemy as sa

    from altcraft_sync.config import mask_url
    from sandbox import demo_shop

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    started = time.monotonic()
    try:
        if sa.inspect(engine).has_table("orders"):
            if not replace:
                fail(f"demo-db: {mask_url(url)} already has an orders table; pass --replace to drop the demo "
                     "tables and fill them again, or name another database")
            demo_shop.metadata.drop_all(engine)
        size = demo_shop.generate(engine, orders, seed=seed, skus_count=skus, people=people,
                                  progress=lambda n: console.print(f"  {n} orders written"))
    except sa.exc.SQLAlchemyError as err:
        fail(f"demo-db: {mask_url(url)}: {type(err).__name__}: {str(err.orig if hasattr(err, 'orig') else err).splitlines()[0]}")
    console.print(f"demo shop ready in {time.monotonic() - started:.1f} s: {size}")


@app.command()
def demo(
    orders: Annotated[int, typer.Option(min=20, help="Orders in the demo shop (created if missing).")] = 20_000,
    port: Annotated[int, typer.Option(help="Emulator port (0 = any free port).")] = 0,
) -> None:
    """The main job on the embedded default: demo SQLite shop + local Altcraft emulator, two runs."""
    import socket

    from cli.demo import run_demo

    if port:  # say so before a minute of building the demo shop, not after
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as err:
                fail(port_busy("demo", "127.0.0.1", port, err))
    try:
        run_demo(orders=orders, port=port, console=console)
    except SyncError as err:
        fail(str(err))
    except OSError as err:
        if err.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        fail(port_busy("demo", "127.0.0.1", port, err))


def port_busy(command: str, host: str, port: int, err: OSError) -> str:
    """One line for an emulator that cannot listen: which address, why, and what to pass instead."""
    why = err.strerror or str(err)
    return (f"{command}: cannot listen on {host}:{port}: {why} (another emulator or program uses it: stop it, or "
            f"pass --port with a free port{', or 0 for any' if command == 'demo' else ''})")
