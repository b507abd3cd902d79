"""Ending the ``altcraft-sync`` process: everything Python's own exit does, but the teardown of the modules.

A run imports ~1,200-1,500 modules (pandas, pyarrow, SQLAlchemy, Prefect). At a normal exit the
interpreter then frees every module's objects one by one, which took ~0.4 s of a ~1.5 s no-change sync
(``docs/performance.md``, "Start and exit"): the one part of a run that does no work. :func:`leave` keeps
the order of a normal exit for what matters, waiting for the threads that are not daemons and running
the exit hooks that threads registered (``concurrent.futures``, Prefect's log and event services, which
send what is still queued to the Prefect API), then the ``atexit`` hooks (``logging.shutdown``, a temporary
Prefect server's stop), flushes stdout and stderr, and ends the process with the command's status. Every
file, database and connection the commands open is closed by them before (``Runtime.close``); the
state database's writes are committed transactions, which SQLite, PostgreSQL and MySQL keep whatever
the process does next."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def status_of(code: object) -> int:
    """The exit status ``sys.exit(code)`` would give: None is 0, an integer itself, anything else 1
    (its text printed to stderr, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: object) -> NoReturn:
    """Exit with ``code`` as ``sys.exit`` would, without freeing the modules (see the module's docstring)."""
    status = status_of(code)
    threading._shutdown()  # type: ignore[attr-defined]  # threading's exit hooks, then the non-daemon threads joined (3.11-3.13)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing left to tell
            pass
    os._exit(status)
