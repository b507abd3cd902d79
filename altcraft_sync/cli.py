"""The ``altcraft-sync`` command line.

Every command that fails prints one line saying what is wrong and exits non-zero; no traceback reaches
the terminal for a known failure (config, database, token, lock, threshold).
"""

from __future__ import annotations

import os

# Prefect settings must be in place before prefect is imported (the CLI imports flows lazily).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from altcraft_sync.errors import SyncError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Keep Altcraft's Market in sync with a shop database.")
# Piped output (CI logs, files) gets a fixed width so tables never fold their headers.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Config file (YAML).", envvar="ALTCRAFT_SYNC_CONFIG")]
StreamOpt = Annotated[list[str] | None, typer.Option("--stream", "-s", help="Only these streams (repeatable).")]
PrefectOpt = Annotated[bool | None, typer.Option(
    "--prefect/--local", help="Run as a Prefect flow run (default when a Prefect API is configured), or in this "
                              "process.", show_default=False)]
DEFAULT_CONFIG = Path("altcraft-sync.yaml")
HOME = Path(".altcraft-sync")


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- sync ----------------------------------------------------------------------------------------------
@app.command()
def sync(
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: StreamOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read, map and validate; send and record nothing.")] = False,
    skip_triggers: Annotated[bool, typer.Option("--skip-triggers", help="Ask Altcraft not to fire triggers.")] = False,
    reconcile: Annotated[bool, typer.Option("--reconcile", help="Also delete in Altcraft what was hard-deleted "
                                                                "from the source (reads every key).")] = False,
    prefect: PrefectOpt = None,
) -> None:
    """Run nightly-sync once (what changed since the last run): in this process, or as a Prefect flow run
    when a Prefect API is configured (or with --prefect)."""
    _precheck(config)
    if _use_prefect(prefect):
        from flows.sync import nightly_sync

        state = _with_progress(lambda: nightly_sync(config_path=str(config), streams=stream, dry_run=dry_run,
                                                    skip_triggers=skip_triggers, reconcile=reconcile, return_state=True))
        _finish(state, "nightly-sync", dry_run)
        return
    from flows.runs import guarded, run_streams

    _finish_local(lambda host: guarded(
        lambda rt: run_streams(rt, host, kind="nightly", streams=stream, dry_run=dry_run, skip_triggers=skip_triggers,
                               title="nightly-sync", reconcile=reconcile), str(config), host, need_client=not dry_run),
        "nightly-sync", dry_run)


@app.command()
def retry(config: ConfigOpt = DEFAULT_CONFIG, stream: StreamOpt = None, prefect: PrefectOpt = None) -> None:
    """Re-send, now, every record whose last send failed, was rejected with a retryable error, or waits."""
    _precheck(config)
    if _use_prefect(prefect):
        from flows.sync import retry_pending

        _finish(_with_progress(lambda: retry_pending(config_path=str(config), streams=stream, return_state=True)), "retry")
        return
    from flows.runs import guarded, retry_streams

    _finish_local(lambda host: guarded(lambda rt: retry_streams(rt, host, stream), str(config), host, need_client=True),
                  "retry")


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="Start of the range (exclusive) on updated_at: YYYY-MM-DD or ISO time, UTC.")],
    until: Annotated[str, typer.Option(help="End of the range (inclusive).")],
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: StreamOpt = None,
    window_days: Annotated[float, typer.Option(help="Window size in days.")] = 7,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be sent; send and record nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run windows a previous backfill finished again.")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="Send even records delivered unchanged.")] = False,
    triggers: Annotated[bool, typer.Option("--triggers/--skip-triggers", help="Let Altcraft fire triggers "
                                           "(default: skip them for old records).")] = False,
    prefect: PrefectOpt = None,
) -> None:
    """Re-send a range of history window by window (resumable; never moves the nightly watermark)."""
    from flows.windows import params_from_cli

    try:
        params = params_from_cli(since, until, stream, window_days=window_days, dry_run=dry_run, force=force,
                                 resend=resend, skip_triggers=not triggers)
    except SyncError as err:
        fail(str(err))
    _precheck(config)
    if _use_prefect(prefect):
        from flows.backfill import backfill as backfill_flow

        state = _with_progress(lambda: backfill_flow(params=params, config_path=str(config), return_state=True))
        _finish(state, "backfill", dry_run)
        if dry_run:
            console.print("the Prefect run's summary artifact has samples of what would be sent")
        return
    from flows.runs import guarded
    from flows.windows import run_windows

    _finish_local(lambda host: guarded(lambda rt: run_windows(rt, host, params), str(config), host,
                                       need_client=not dry_run), "backfill", dry_run)


def _prefect_api() -> str | None:
    """The Prefect API this process would talk to: ``PREFECT_API_URL`` from the environment or from the
    active Prefect profile (``$PREFECT_HOME/profiles.toml``), read without importing Prefect."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    profiles = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser() / "profiles.toml"
    if not profiles.is_file():
        return None
    import tomllib

    try:
        data = tomllib.loads(profiles.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    value = (data.get("profiles") or {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def _use_prefect(flag: bool | None) -> bool:
    """A run goes through Prefect when asked (``--prefect``) or when a Prefect API is configured; otherwise it
    runs in this process: without an API Prefect would first start a temporary server (10-20 s)."""
    return flag if flag is not None else _prefect_api() is not None


def _finish_local(run: Any, what: str, dry_run: bool = False) -> None:
    """Run in this process (``flows.runs.LocalHost``), with its log on the terminal, and print the figures."""
    import logging

    from rich.logging import RichHandler

    from flows.runs import LocalHost

    handler = RichHandler(console=err_console, show_path=False, markup=False, rich_tracebacks=False)
    root = logging.getLogger("altcraft_sync")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        outcome = _with_progress(lambda: run(LocalHost()))
    finally:
        root.removeHandler(handler)
    if not outcome.ok:
        fail(f"{what} failed: {outcome.message}")
    _print_figures(outcome.figures, dry_run)
    console.print(f"{what} ran in this process (no Prefect API configured) and is recorded in the state database "
                  "(`altcraft-sync status`); to run it as a Prefect flow, set PREFECT_API_URL or pass --prefect "
                  "(README: Running it with Prefect)", highlight=False)


def _precheck(config: Path) -> None:
    """The config and the mapping against the shop database, checked before a flow starts: without a
    Prefect API a flow run first starts a temporary server (10-20 s), and a typo should not wait for it."""
    from altcraft_sync.config import load_config
    from connectors.shop_db import ShopSource

    try:
        source = ShopSource(load_config(config))
        try:
            source.bind()
        finally:
            source.close()
    except SyncError as err:
        fail(str(err))


def _with_progress(run: Any) -> Any:
    """Run a flow, drawing a progress line per stream when stdout is a terminal."""
    from flows.runs import add_progress_listener

    if not sys.stdout.isatty():
        return run()
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bars:
        tasks: dict[str, Any] = {}

        def listener(stats: Any, done: bool) -> None:
            if stats.stream not in tasks:
                tasks[stats.stream] = bars.add_task(stats.stream, total=None)
            text = (f"{stats.stream}: {stats.extracted} read, {stats.delivered} delivered, {stats.unchanged} unchanged, "
                    f"{stats.invalid} invalid, {stats.rejected} rejected")
            bars.update(tasks[stats.stream], description=text, completed=1 if done else None, total=1 if done else None)

        remove = add_progress_listener(listener)
        try:
            return run()
        finally:
            remove()


def _finish(state: Any, what: str, dry_run: bool = False) -> dict[str, Any]:
    if not state.is_completed():
        fail(f"{what} failed: {state.message}")
    figures = state.result(raise_on_failure=False) or {}
    _print_figures(figures, dry_run)
    return figures


def _print_figures(figures: dict[str, Any], dry_run: bool = False) -> None:
    """The run's table; a dry run's counts what a real run would do (it sends and records nothing)."""
    if dry_run:
        from flows.reporting import DRY_RUN_COLUMNS

        table, cols = Table(title="altcraft-sync dry run: nothing sent or recorded"), dict(DRY_RUN_COLUMNS)
    else:
        table = Table(title="altcraft-sync run")
        cols = {c: c for c in ("extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deferred",
                               "deleted", "retried")}
    table.add_column("stream", no_wrap=True, min_width=10)
    for label in cols:
        table.add_column(label, justify="right", overflow="fold")
    for name, f in figures.items():
        table.add_row(name, *[str(f.get(field, 0)) for field in cols.values()])
    console.print(table)


# --- status / check ------------------------------------------------------------------------------------
@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Watermarks, lag behind the source, last runs, quarantine and rejected backlogs."""
    from flows.status import collect_status

    try:
        report = collect_status(config)
    except SyncError as err:
        fail(str(err))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    table = Table(title="Streams")
    for c in ("stream", "cursor", "watermark", "source newest", "lag (s)"):
        table.add_column(c)
    for row in report["streams"]:
        table.add_row(row["stream"], row["cursor"], str(row["watermark"] or "-"), str(row["source_newest"] or "-"),
                      "-" if row["lag_seconds"] is None else f"{row['lag_seconds']:.0f}")
    console.print(table)
    backlog = Table(title="Backlog")
    for c in ("entity", "quarantined", "rejected (retrying)", "rejected (permanent)", "failed", "deferred", "delivered"):
        backlog.add_column(c)
    for entity, counts in report["backlog"].items():
        backlog.add_row(entity, str(counts["quarantined"]), str(counts["rejected"]), str(counts["rejected_permanent"]),
                        str(counts["failed"]), str(counts["deferred"]), str(counts["delivered"]))
    console.print(backlog)
    runs = Table(title="Last runs")
    for c in ("started", "kind", "status", "message"):
        runs.add_column(c)
    for r in report["runs"]:
        runs.add_row(str(r["started_at"])[:19], r["kind"], r["status"], (r.get("message") or "")[:80])
    console.print(runs)
    if report.get("source_error"):
        err_console.print(f"[yellow]source not reachable, lag unknown:[/] {report['source_error']}")


@app.command()
def verify(
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: StreamOpt = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Compare only this many random delivered records.")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Re-send what differs; delete what altcraft-sync sent "
                                                           "that the shop no longer has.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Prove that Altcraft holds what the shop holds: page through Altcraft's list methods and compare each
    record with the ledger and the mapped source, field by field. Exits 1 when differences remain."""
    import uuid

    from flows.runtime import open_runtime
    from flows.verify import verify_streams

    try:
        runtime = open_runtime(config, need_client=True)
        try:
            assert runtime.client is not None
            results = verify_streams(runtime.config, runtime.source, runtime.state, runtime.client,
                                     run_id=f"verify-{uuid.uuid4().hex[:12]}", streams=stream, repair=repair, sample=sample)
        finally:
            runtime.close()
    except SyncError as err:
        fail(str(err))
    if as_json:
        console.print_json(json.dumps({n: s.figures() for n, s in results.items()}, default=str))
    else:
        from flows.verify import COLUMNS

        table = Table(title="verify: Altcraft against the shop" + (" (repaired)" if repair else ""))
        table.add_column("stream")
        for c in COLUMNS:
            table.add_column(c.replace("_", " "), justify="right")
        for name, st in results.items():
            table.add_row(name, *[str(getattr(st, c)) for c in COLUMNS])
        console.print(table)
        for name, st in results.items():
            if st.note:
                console.print(f"{name}: {st.note}")
            for f, n in sorted(st.fields.items()):
                console.print(f"{name}: field {f} differs in {n} records")
            for kind, items in st.samples.items():
                console.print(f"{name}: {kind}: " + ", ".join(json.dumps(i, default=str) for i in items), highlight=False)
    left = sum(st.differences for st in results.values())
    if left and not repair:
        fail(f"Altcraft differs from the shop in {left} records; run `altcraft-sync verify --repair` to fix", code=1)


@app.command()
def quarantine(
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: Annotated[str | None, typer.Option("--stream", "-s", help="Only this stream.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Only reasons containing this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records (newest first).")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Quarantined, rejected, failed and deferred records with their reasons and values, from the state
    database (no Prefect needed); e-mails and phones masked."""
    from flows.status import collect_problems

    try:
        rows = collect_problems(config, stream=stream, reason=reason, limit=limit)
    except SyncError as err:
        fail(str(err))
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(
        title=f"{len(rows)} records not in Altcraft as the shop has them" + (" (limit reached)" if len(rows) == limit else "")
    )
    for c in ("kind", "entity", "external_id", "source key", "field", "check", "value", "when (UTC)"):
        table.add_column(c, overflow="fold")
    for r in rows:
        for i, x in enumerate(r["reasons"]):
            first = i == 0
            table.add_row(r["kind"] if first else "", r["entity"] if first else "", r["external_id"] if first else "",
                          str(r["source_pk"] or "") if first else "", str(x["field"] or ""), str(x["check"] or ""),
                          "" if x["value"] is None else str(x["value"]), f"{r['at']:%Y-%m-%d %H:%M}" if first and r["at"] else "")
    console.print(table)


@app.command()
def check(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Validate the config, connect to the shop database, the state database and Altcraft."""
    from flows.status import run_checks

    ok = True
    for name, problem in run_checks(config):
        if problem is None:
            console.print(f"[green]ok[/]   {name}")
        else:
            ok = False
            console.print(f"[red]FAIL[/] {name}: {problem}", highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(2)


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
                                              "(api.md marks data required; what Altcraft does is unknown).")] = False,
) -> None:
    """Run the local Altcraft emulator until interrupted (faults can be changed at run time with
    POST /__emulator/faults)."""
    from sandbox.emulator import AltcraftEmulator, Faults

    faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after, error_rate=error_rate,
                    drop_rate=drop_rate, latency_ms=latency_ms, seed=seed)
    emu = AltcraftEmulator(host=host, port=port, token=token, faults=faults, strict_data=strict_data)
    console.print(f"Altcraft emulator on {emu.url} (token set; strict data: {strict_data}; faults: {faults})",
                  highlight=False)
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
) -> None:
    """Create and fill the demo shop schema (deterministic, bulk inserts)."""
    import sqlalchemy as sa

    from sandbox import demo_shop

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    started = time.monotonic()
    try:
        size = demo_shop.generate(engine, orders, seed=seed, skus_count=skus,
                                  progress=lambda n: console.print(f"  {n} orders written"))
    except sa.exc.SQLAlchemyError as err:
        from altcraft_sync.config import mask_url

        fail(f"demo-db: {mask_url(url)}: {type(err).__name__}: {str(err.orig if hasattr(err, 'orig') else err).splitlines()[0]}")
    console.print(f"demo shop ready in {time.monotonic() - started:.1f} s: {size}")


@app.command()
def demo(
    orders: Annotated[int, typer.Option(min=20, help="Orders in the demo shop (created if missing).")] = 20_000,
    port: Annotated[int, typer.Option(help="Emulator port (0 = any free port).")] = 0,
) -> None:
    """The main job on the embedded default: demo SQLite shop + local Altcraft emulator, two runs."""
    from sandbox.demo import run_demo

    try:
        run_demo(orders=orders, port=port, console=console)
    except SyncError as err:
        fail(str(err))


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
