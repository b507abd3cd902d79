"""The ``altcraft-sync`` console script: the application with every command registered."""

from __future__ import annotations  # noqa: I001  (command modules in the order `--help` lists them)

# Each module registers its commands on the app, in the order `--help` lists them: running first.
import cli  # noqa: F401  (Prefect settings before anything imports prefect)
from cli import run  # noqa: F401
from cli import checks  # noqa: F401
from cli import people  # noqa: F401
from cli import local  # noqa: F401
from cli import preset  # noqa: F401
from cli.app import app
from cli.process_exit import leave

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console script entry
    """Run the command; its exit skips the interpreter's teardown (``cli.process_exit``). An error that
    escapes a command (a bug) leaves the normal way, with its traceback."""
    try:
        app()
    except SystemExit as stop:
        leave(stop.code)
    leave(0)


if __name__ == "__main__":  # pragma: no cover
    main()
