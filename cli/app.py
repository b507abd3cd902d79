"""The Typer application, its shared options and consoles, the global options (``--version``,
``--log-level``/``-v``) and the one-line failure."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# Plain (click) help: a flag shows its meaning only, with no ``<bool>`` placeholder beside it.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Keep Altcraft's Market in sync with a shop database.")
# Piped output (CI logs, files) gets a fixed width so tables never fold their headers.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Config file (YAML).", envvar="ALTCRAFT_SYNC_CONFIG")]
StreamOpt = Annotated[list[str] | None, typer.Option("--stream", "-s", help="Only these streams (repeatable).")]
PrefectOpt = Annotated[bool | None, typer.Option(
    "--prefect/--local", help="Run as a Prefect flow run (default when a Prefect API is configured), or in this "
                              "process.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (for scripts and "
                                                      "monitoring) instead of tables.")]
DEFAULT_CONFIG = Path("altcraft-sync.yaml")
HOME = Path(".altcraft-sync")
LEVELS = ("debug", "info", "warning", "error")
LOGGER = "altcraft_sync"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("altcraft-sync")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"altcraft-sync {version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="How much of the run's log reaches stderr: "
                                           + ", ".join(LEVELS) + ".", envvar="ALTCRAFT_SYNC_LOG_LEVEL")] = "info",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="The debug log (same as --log-level debug): "
                                          "each committed chunk (stream, records, cursor) and the traceback of an "
                                          "unexpected error, besides the info log (request retries, batches halved).")] = False,
) -> None:
    """Keep Altcraft's Market in sync with a shop database."""
    level = "debug" if verbose else log_level.lower()
    if level not in LEVELS:
        fail(f"--log-level {log_level}: one of {', '.join(LEVELS)}")
    configure_logging(level)


class _NotTheOutcome(logging.Filter):
    """The line a failed run ends with is printed once, by the CLI, as its last line: the run's own log
    record of it (``extra={"run_outcome": True}``) stays out of the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "run_outcome", False)


def configure_logging(level: str) -> None:
    """The ``altcraft_sync`` log on stderr at ``level`` (set once per command, by the global options)."""
    from rich.logging import RichHandler

    root = logging.getLogger(LOGGER)
    for h in [h for h in root.handlers if getattr(h, "_altcraft_cli", False)]:
        root.removeHandler(h)
    handler = RichHandler(console=err_console, show_path=False, markup=False, rich_tracebacks=False)
    handler.addFilter(_NotTheOutcome())
    handler._altcraft_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


def fail(message: str, code: int = 2, as_json: bool = False) -> None:
    """The one-line failure on stderr and the exit code; with ``--json`` also a JSON object on stdout, so a
    script that parses stdout gets JSON whatever happened."""
    import json

    from altcraft_sync.masking import mask

    if as_json:
        typer.echo(json.dumps({"outcome": "failed", "exit_code": code, "error": mask(message)}))
    err_console.print(f"[bold red]error:[/] {mask(message)}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def command(args: str = "", config: Path | None = None) -> str:
    """``altcraft-sync ARGS`` as a person can paste it: the bare name when it is on PATH, else the path of
    this installation's script (``.venv/bin/altcraft-sync`` after ``make setup``), and ``--config`` when
    the run read another file than the default ``altcraft-sync.yaml`` (a hint without it would read the
    default and fail, or show another shop's state), so a printed hint runs as written."""
    import os
    import shlex
    import shutil

    script = Path(sys.executable).parent / "altcraft-sync"
    found = shutil.which("altcraft-sync")
    if found and Path(found).resolve() == script.resolve():
        name = "altcraft-sync"
    else:
        try:
            rel = os.path.relpath(script)
        except ValueError:  # another drive (Windows)
            rel = ".."
        name = str(script) if rel.startswith("..") else rel
    if config is not None and config != DEFAULT_CONFIG and "--config" not in args:
        args = f"{args} --config {shlex.quote(str(config))}"
    return f"{name} {args}".strip()


def runnable(text: str, config: Path | None = None) -> str:
    """Every ```altcraft-sync ...``` hint in ``text`` (the run's own lines name the bare command) as
    :func:`command` spells it."""
    import re

    return re.sub(r"`altcraft-sync ([^`]*)`", lambda m: f"`{command(m.group(1), config)}`", text)
