"""The Typer application, its shared options and consoles, and the one-line failure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
    from altcraft_sync.masking import mask

    err_console.print(f"[bold red]error:[/] {mask(message)}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)
