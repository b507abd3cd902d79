"""Commands that look without syncing: ``status``, ``verify``, ``quarantine``, ``check``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from altcraft_sync.errors import SyncError
from altcraft_sync.wording import plural
from cli.app import DEFAULT_CONFIG, ConfigOpt, JsonOpt, StreamOpt, app, console, err_console, fail


@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Watermarks, lag behind the source, last runs, quarantine and rejected backlogs."""
    from runner.status import collect_status

    try:
        report = collect_status(config)
    except SyncError as err:
        fail(str(err), as_json=as_json)
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
    for c in ("started", "kind", "status"):
        runs.add_column(c, no_wrap=True)
    runs.add_column("message", ratio=1)  # wraps at word boundaries, never cut
    for r in report["runs"]:
        runs.add_row(str(r["started_at"])[:19], r["kind"], r["status"], r.get("message") or "")
    console.print(runs)
    if report.get("backlog_line"):  # what waits, and the command that lists it
        err_console.print(("[yellow]warning:[/] " if report["backlog_alert"] else "") + report["backlog_line"],
                          highlight=False, soft_wrap=True)
    if report.get("source_error"):
        err_console.print(f"[yellow]source not reachable, lag unknown:[/] {report['source_error']}")
    if report.get("state_note"):
        _warn(report["state_note"])


def _warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


@app.command()
def verify(
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: StreamOpt = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Compare only this many random delivered records.")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Re-send what differs; delete what altcraft-sync sent "
                                                           "that the shop no longer has.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Prove that Altcraft holds what the shop holds: page through Altcraft's list methods and compare each
    record with the ledger and the mapped source, field by field. Exits 1 when differences remain."""
    import uuid

    from cli.progress import EXIT_INTERRUPTED, Watcher, verify_text
    from runner.runtime import open_runtime
    from runner.verify import verify_streams

    watcher = Watcher(draw=False if as_json else None, describe=verify_text, count=lambda s: s.listed)
    try:
        runtime = open_runtime(config, need_client=True)
        try:
            assert runtime.client is not None
            with watcher:
                results = verify_streams(runtime.config, runtime.source, runtime.state, runtime.client,
                                         run_id=f"verify-{uuid.uuid4().hex[:12]}", streams=stream, repair=repair,
                                         sample=sample, on_progress=watcher)
        finally:
            runtime.close()
    except SyncError as err:
        fail(str(err), as_json=as_json)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted: nothing to resume, verify can be run again"
                          + ("; the repairs made so far are recorded in the ledger" if repair else "") + "[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        console.print_json(json.dumps({n: s.figures() for n, s in results.items()}, default=str))
    else:
        print_verify_table(results, repair)
        for name, st in results.items():
            if st.note:
                console.print(f"{name}: {st.note}")
            for f, n in sorted(st.fields.items()):
                console.print(f"{name}: field {f} differs in {plural(n, 'record')}")
            for kind, items in st.samples.items():
                console.print(f"{name}: {kind}: " + ", ".join(json.dumps(i, default=str) for i in items), highlight=False)
    left = sum(st.differences for st in results.values())
    if left and not repair:
        fail(f"Altcraft differs from the shop in {plural(left, 'record')}; run `altcraft-sync verify --repair` to fix", code=1)


def print_verify_table(results: dict[str, Any], repair: bool, out: Console | None = None) -> None:
    """verify's figures per stream, never wrapped nor cut (``cli.progress.print_table``)."""
    from cli.progress import print_table
    from runner.verify import COLUMNS

    print_table("verify: Altcraft against the shop" + (" (repaired)" if repair else ""),
                ["stream", *(c.replace("_", " ") for c in COLUMNS)],
                [[name, *(str(getattr(st, c)) for c in COLUMNS)] for name, st in results.items()], out)


@app.command()
def quarantine(
    config: ConfigOpt = DEFAULT_CONFIG,
    stream: Annotated[str | None, typer.Option("--stream", "-s", help="Only this stream.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Only reasons containing this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records (newest first).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Quarantined, rejected, failed and deferred records with their reasons and values, from the state
    database (no Prefect needed); e-mails and phones masked."""
    from runner.status import collect_problems
    from transforms.reasons import human_check

    try:
        rows = collect_problems(config, stream=stream, reason=reason, limit=limit, on_note=_warn)
    except SyncError as err:
        fail(str(err), as_json=as_json)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(
        title=f"{plural(len(rows), 'record')} not in Altcraft as the shop has them"
        + (" (limit reached)" if len(rows) == limit else "")
    )
    for c in ("kind", "entity", "external_id", "source key", "field", "check", "value", "when (UTC)"):
        table.add_column(c, overflow="fold")
    for r in rows:
        for i, x in enumerate(r["reasons"]):
            first = i == 0
            table.add_row(r["kind"] if first else "", r["entity"] if first else "", r["external_id"] if first else "",
                          str(r["source_pk"] or "") if first else "", str(x["field"] or ""), human_check(x["check"]),
                          "" if x["value"] is None else str(x["value"]), f"{r['at']:%Y-%m-%d %H:%M}" if first and r["at"] else "")
    console.print(table)


@app.command()
def check(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Validate the config, connect to the shop database, the state database and Altcraft. Exits 2 when
    a check fails."""
    from runner.status import run_checks

    results = list(run_checks(config))
    ok = all(problem is None for _, problem in results)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "checks": [{"check": n, "ok": p is None, "problem": p} for n, p in results]},
                              indent=2))
        raise typer.Exit(0 if ok else 2)
    for name, problem in results:
        if problem is None:
            console.print(f"[green]ok[/]   {name}")
        else:
            console.print(f"[red]FAIL[/] {name}: {problem}", highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(2)
