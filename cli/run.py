"""Commands that run a sync: ``sync``, ``retry``, ``backfill`` (in this process, or as Prefect flow runs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from altcraft_sync.errors import SyncError
from cli.app import (
    DEFAULT_CONFIG,
    ConfigOpt,
    JsonOpt,
    PrefectOpt,
    StreamOpt,
    app,
    command,
    console,
    err_console,
    fail,
    runnable,
)
from cli.progress import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WARNINGS,
    Watcher,
    exit_code,
    interrupted_line,
    print_figures,
    print_json,
)


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
    as_json: JsonOpt = False,
) -> None:
    """Run nightly-sync once (what changed since the last run): in this process, or as a Prefect flow run
    when a Prefect API is configured (or with --prefect). Exits 0 when all went, 1 when it completed with
    warnings (a backlog waits), 2 when it failed, 130 when interrupted."""
    if _use_prefect(prefect):
        _precheck(config)
        from flows.sync import nightly_sync

        state = _prefect_run(lambda: nightly_sync(config_path=str(config), streams=tuple(stream or ()), dry_run=dry_run,
                                                  skip_triggers=skip_triggers, reconcile=reconcile, return_state=True))
        _finish(state, "nightly-sync", dry_run, as_json, config)
        return
    from runner.runs import guarded, run_streams

    _finish_local(lambda host: guarded(
        lambda rt: run_streams(rt, host, kind="nightly", streams=stream, dry_run=dry_run, skip_triggers=skip_triggers,
                               title="nightly-sync", reconcile=reconcile), str(config), host, need_client=not dry_run),
        "nightly-sync", dry_run, as_json, config)


@app.command()
def retry(config: ConfigOpt = DEFAULT_CONFIG, stream: StreamOpt = None, prefect: PrefectOpt = None,
          as_json: JsonOpt = False) -> None:
    """Re-send, now, every record whose last send failed, was rejected with a retryable error, or waits.
    A permanently rejected record is not re-sent: it waits until its data changes in the shop."""
    if _use_prefect(prefect):
        _precheck(config)
        from flows.sync import retry_pending

        _finish(_prefect_run(lambda: retry_pending(config_path=str(config), streams=tuple(stream or ()), return_state=True)),
                "retry", as_json=as_json, config=config)
        return
    from runner.runs import guarded, retry_streams

    _finish_local(lambda host: guarded(lambda rt: retry_streams(rt, host, stream), str(config), host, need_client=True),
                  "retry", as_json=as_json, config=config)


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
    as_json: JsonOpt = False,
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

        state = _prefect_run(lambda: backfill_flow(params=params, config_path=str(config), return_state=True))
        if dry_run and not as_json:
            console.print("the Prefect run's summary artifact has samples of what would be sent")
        _finish(state, "backfill", dry_run, as_json, config)
        return
    from runner.runs import guarded
    from runner.windows import run_windows

    _finish_local(lambda host: guarded(lambda rt: run_windows(rt, host, params), str(config), host,
                                       need_client=not dry_run), "backfill", dry_run, as_json, config)


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


def _finish_local(run: Any, what: str, dry_run: bool = False, as_json: bool = False, config: Path | None = None) -> None:
    """Run in this process (``runner.runs.LocalHost``), with its log and progress on the terminal, then its
    figures and the last line: what did not go, why, and the command that shows it."""
    from runner.runs import LocalHost

    watcher = Watcher(draw=False if as_json else None)
    try:
        with watcher:
            outcome = run(LocalHost(progress=watcher))  # the engine's progress events, through the host
    except KeyboardInterrupt:
        err_console.print(f"[yellow]{interrupted_line(watcher)}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _report(what, outcome.ok, outcome.message, outcome.figures, outcome.warnings, dry_run, as_json, local=True,
            backlog=outcome.backlog, config=config)


def _report(what: str, ok: bool, message: str, figures: dict[str, Any], warnings: list[str], dry_run: bool,
            as_json: bool, local: bool = False, backlog: str | None = None, config: Path | None = None) -> None:
    """The run's figures, the backlog line, then its outcome as the last line (what did not go, why, and
    the command that shows it); the exit code says the same (0, 1, 2)."""
    code = exit_code(ok, warnings)
    # hints that run as written: the installation's script where the command is not on PATH, the config read
    warnings = [runnable(w, config) for w in warnings]
    message = runnable(message, config)
    backlog = runnable(backlog, config) if backlog else backlog
    if as_json:
        print_json({"command": what, "outcome": {EXIT_OK: "ok", EXIT_WARNINGS: "warnings", EXIT_FAILED: "failed"}[code],
                    "exit_code": code, "message": message, "warnings": warnings, "backlog": backlog,
                    "dry_run": dry_run, "streams": figures})
        raise typer.Exit(code)
    if figures:
        print_figures(figures, dry_run)
    if local and ok and not dry_run:  # a dry run records nothing
        console.print(f"{what} ran in this process (no Prefect API configured) and is recorded in the state database "
                      f"(`{command('status', config)}`); to run it as a Prefect flow, set PREFECT_API_URL or pass --prefect "
                      "(README: Running it with Prefect)", highlight=False)
    if backlog and backlog not in warnings:
        err_console.print(backlog, highlight=False, soft_wrap=True)
    if not ok:
        fail(f"{what} failed: {message}", code)
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if code:
        raise typer.Exit(code)


def _precheck(config: Path) -> None:
    """The config and the mapping against the shop database, checked before a flow starts: without a
    Prefect API a flow run first starts a temporary server (10-20 s), and a typo should not wait for it.
    A run in this process needs no such check: it opens the same runtime first (``runner.runs.guarded``),
    and checking twice cost a no-change run a second reflection of every mapped table. Nor does a run
    against a running Prefect API: its flow opens the runtime within a second and fails with the same
    one-line error, so the check would only bind the source twice."""
    api = _prefect_api()
    if api is not None:
        _reachable(api)
        return
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


def _reachable(api: str) -> None:
    """A configured Prefect API that does not answer is one line and exit 2, not the client's traceback
    of hundreds of lines: the server of the recipe is not running, or the URL names the wrong port."""
    import httpx

    try:
        httpx.get(api.rstrip("/") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError as err:
        fail(f"the Prefect API at {api} does not answer ({type(err).__name__}: {err}); start it "
             "(prefect server start), fix PREFECT_API_URL, or run in this process with --local")


def _prefect_run(run: Any) -> Any:
    """Run a flow in this process (its tasks report progress through the same listener)."""
    from runner.runs import add_progress_listener

    watcher = Watcher()
    remove = add_progress_listener(watcher)
    try:
        with watcher:
            return run()
    except KeyboardInterrupt:
        err_console.print(f"[yellow]{interrupted_line(watcher)}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        remove()


def _finish(state: Any, what: str, dry_run: bool = False, as_json: bool = False, config: Path | None = None) -> None:
    from runner.outcome import WARNINGS_PREFIX

    ok = state.is_completed()
    figures = (state.result(raise_on_failure=False) or {}) if ok else {}
    message = state.message or ""
    warnings = [message.removeprefix(WARNINGS_PREFIX)] if ok and message.startswith(WARNINGS_PREFIX) else []
    backlog = _backlog(config) if config is not None and not dry_run else None
    _report(what, ok, message, figures, warnings, dry_run, as_json, backlog=backlog, config=config)


def _backlog(config: Path) -> str | None:
    """The backlog line after a flow run, read from the state database as the run itself read it (a flow's
    state carries only its figures and message); None when nothing waits or the state cannot be read."""
    from datetime import UTC, datetime

    from altcraft_sync.config import load_config
    from connectors.state import StateStore
    from runner.outcome import backlog_line

    try:
        cfg = load_config(config)
        state = StateStore(cfg.state)
        try:
            return backlog_line(state.backlog(), cfg.sync, datetime.now(UTC))[0]
        finally:
            state.close()
    except SyncError:
        return None
