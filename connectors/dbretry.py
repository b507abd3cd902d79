"""Transient database errors, and the one retry policy the shop source and the state store share.

A nightly run should survive what a database does every so often: a restart for a minor upgrade, a
failover that drops every connection, a deadlock or serialization failure, SQLite's ``database is
locked``. Those are re-run with backoff, capped in attempts and in seconds (as the Altcraft client is).
Everything else (bad SQL, a missing table or column, a permission) is permanent: retrying cannot help,
so it fails at once with its first line.

Re-running is safe because each retried unit is one read (a page, a lookup) or one whole state
transaction: a transaction that failed was rolled back, and a commit whose answer was lost is re-applied
as the same upserts (the ledger's ``attempts`` may count one extra send; nothing else changes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential
from tenacity.wait import wait_base

from altcraft_sync import jitter

log = logging.getLogger("altcraft_sync.db")
T = TypeVar("T")

TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57P01",  # admin_shutdown (server restart)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up / shutting down)
    "53300",  # too_many_connections
})
"""PostgreSQL SQLSTATEs worth a retry; the whole class ``08`` (connection exception) is too."""

TRANSIENT_MYSQL_CODES = frozenset({
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock found
    1927,  # connection was killed
    2002, 2003,  # cannot connect
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection at handshake
    4031,  # disconnected by the server (idle timeout)
})

TRANSIENT_TEXT = (
    "database is locked", "database table is locked",  # SQLite: another writer holds the file
    "server closed the connection", "terminating connection", "connection is closed", "connection refused",
    "could not connect", "connection failed", "the database system is", "lost connection", "gone away",
    "connection reset", "broken pipe", "consuming input failed", "connection timed out",
)
"""Driver messages of the same failures when a driver gives no code (psycopg at connect time, SQLite)."""


def is_transient(err: BaseException) -> bool:
    """Whether re-running the failed statement or transaction may succeed."""
    if not isinstance(err, DBAPIError):
        return False
    if err.connection_invalidated:
        return True
    orig = err.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] == "08" or sqlstate in TRANSIENT_SQLSTATES
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in TRANSIENT_MYSQL_CODES:
        return True
    if not isinstance(err, (OperationalError, InterfaceError)):
        return False  # ProgrammingError, IntegrityError, DataError...: the statement itself is wrong
    text = str(orig).lower()
    return any(t in text for t in TRANSIENT_TEXT)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and total seconds for one database operation (``source.*`` / ``state.*`` settings)."""

    max_attempts: int = 8
    max_retry_seconds: float = 120
    backoff_initial: float = 0.5
    backoff_max: float = 10


class _Jitter(wait_base):
    """Up to ``top`` seconds more, drawn from altcraft-sync's own generator (tenacity's ``wait_random``
    draws from the ``random`` module's global one: :mod:`altcraft_sync.jitter`)."""

    def __init__(self, top: float) -> None:
        self.top = top

    def __call__(self, retry_state: RetryCallState) -> float:
        return jitter.uniform(0, self.top)


def retrying(policy: RetryPolicy, what: str, fn: Callable[[], T], *, sleep: Callable[[float], None] | None = None) -> T:
    """Run ``fn``; re-run it on a transient database error with exponential backoff (plus jitter so two
    processes do not reconnect in step), until it succeeds or the policy's caps are spent. The last
    error is re-raised as it was: callers turn it into their one-line error."""

    def before_sleep(state: object) -> None:
        outcome = getattr(state, "outcome", None)
        err = outcome.exception() if outcome is not None else None
        attempt = getattr(state, "attempt_number", 0)
        log.warning("%s: transient database error (%s); attempt %d of %d, retrying", what, first_line(err), attempt,
                    policy.max_attempts)

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    runner = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_retry_seconds),
        wait=wait_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max) + _Jitter(policy.backoff_initial),
        reraise=True,
        before_sleep=before_sleep,
        **kwargs,
    )
    return runner(fn)


def first_line(err: object) -> str:
    """The first line of a database error's own message (SQLAlchemy appends the SQL and a link)."""
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()
    return text[0] if text else type(err).__name__
