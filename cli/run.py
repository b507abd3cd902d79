"""Commands that run a sync: ``sync``, ``retry``, ``backfill`` (in this process, or as Prefect flow runs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from altcraft_sync.errors import SyncError
from cli.app import DEFAULT_CONFIG, ConfigOpt, PrefectOpt, StreamOpt, app, console, err_console, fail


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
    if _use_prefect(prefect):
        _precheck(config)
        from flows.sync import nightly_sync

        state = _with_progress(lambda: nightly_sync(config_path=str(config), streams=stream, dry_run=dry_run,
                                                    skip_triggers=skip_triggers, reconcile=reconcile, return_state=True))
        _finish(state, "nightly-sync", dry_run)
        return
    from runner.runs import guarded, run_streams

    _finish_local(lambda host: guarded(
        lambda rt: run_streams(rt, host, kind="nightly", streams=stream, dry_run=dry_run, skip_triggers=skip_triggers,
                               title="nightly-sync", reconcile=reconcile), str(config), host, need_client=not dry_run),
        "nightly-sync", dry_run)


@app.command()
def retry(config: ConfigOpt = DEFAULT_CONFIG, stream: StreamOpt = None, prefect: PrefectOpt = None) -> None:
    """Re-send, now, every record whose last send failed, was rejected with a retryable error, or waits."""
    if _use_prefect(prefect):
        _precheck(config)
        from flows.sync import retry_pending

        _finish(_with_progress(lambda: retry_pending(config_path=str(config), streams=stream, return_state=True)), "retry")
        return
    from runner.runs import guarded, retry_streams

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
    from runner.windows import params_from_cli

    try:
        params = params_from_cli(since, until, stream, window_days=window_days, dry_run=dry_run, force=force,
                                 resend=resend, skip_triggers=not triggers)
    except SyncError as err:
        fail(str(err))
    if _use_prefect(prefect):
        _precheck(config)
        from flows.backfill import backfill as backfill_flow

        state = _with_progress(lambda: backfill_flow(params=params, config_path=str(config), return_state=True))
        _finish(state, "backfill", dry_run)
        if dry_run:
            console.print("the Prefect run's summary artifact has samples of what would be sent")
        return
    from runner.runs import guarded
    from runner.windows import run_windows

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
    """Run in this process (``runner.runs.LocalHost``), with its log on the terminal, and print the figures."""
    import logging

    from rich.logging import RichHandler

    from runner.runs import LocalHost

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
    Prefect API a flow run first starts a temporary server (10-20 s), and a typo should not wait for it.
    A run in this process needs no such check: it opens the same runtime first (``runner.runs.guarded``),
    and checking twice cost a no-change run a second reflection of every mapped table."""
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
    from runner.runs import add_progress_listener

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
        from runner.reporting import DRY_RUN_COLUMNS

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
