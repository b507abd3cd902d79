"""Errors that end a run, each with a one-line message that says what to fix.

Every exception raised to a person (CLI exit, Prefect Failed state) is one of these, so the flow and the
CLI can turn it into a single clear line instead of a traceback. Messages never contain secrets: the
token and database passwords are masked before any of these is built.
"""

from __future__ import annotations

from typing import Any

from altcraft_sync.masking import mask


class SyncError(Exception):
    """Base class: a run could not do its job. ``str(err)`` is the one-line reason, masked when the error
    is made (the token or a password an answer echoed never reaches a terminal, a log or a state row)."""

    exit_code = 2

    def __init__(self, *args: Any) -> None:
        super().__init__(*(mask(a) if isinstance(a, str) else a for a in args))


class ConfigError(SyncError):
    """The configuration is invalid; the message names the setting."""


class SourceError(SyncError):
    """The shop database is unreachable or does not match the configured mapping."""


class StateError(SyncError):
    """The sync-state database is unreachable or locked by another run."""


class StreamLocked(StateError):
    """Another run holds the stream's lock (two runs of one stream never overlap)."""


class AltcraftError(SyncError):
    """Altcraft refused or could not serve the whole run."""


class AltcraftAuthError(AltcraftError):
    """Bad or missing token (401/403): retrying cannot help."""


class AltcraftTariffError(AltcraftError):
    """Tariff limit reached (402): retrying cannot help."""


class AltcraftUnavailable(AltcraftError):
    """Altcraft kept failing transiently after every allowed retry."""


class ThresholdExceeded(SyncError):
    """The share of rejected + invalid records passed the configured failure threshold."""


class StaleWatermark(SyncError):
    """A stream's watermark did not move although the source has eligible rows after it."""


def one_line(err: BaseException, run_id: str | None = None) -> str:
    """The one line an operator sees for any error that ends a run: a ``SyncError``'s own message, or,
    for an exception nobody anticipated, ``internal error: <type>: <first line>`` with the run id (the
    traceback goes to the debug log, never to the terminal or the run state). Always masked."""
    if isinstance(err, SyncError):
        return mask(str(err))
    text = str(err).strip().splitlines()
    where = f" (run {run_id})" if run_id else ""
    return mask(f"internal error: {type(err).__name__}: {text[0] if text else '(no message)'}{where}")
