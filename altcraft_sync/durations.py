"""Durations in the settings file: ``1d``, ``36h``, ``90m``, ``45s``, ``1h30m``, a number of seconds, or
what pydantic reads as a ``timedelta`` (ISO 8601 ``P1D``/``PT24H``, ``HH:MM:SS``). Read into seconds.

People write ``24h`` in a YAML file, not ``PT24H``: the short units come first, everything else is left to
pydantic's own ``timedelta`` parser, so an invalid value gets pydantic's one-line message."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, TypeAdapter

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*([wdhms])\s*)+$", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.IGNORECASE)
_TIMEDELTA = TypeAdapter(timedelta)
OFF = ("off", "none", "never", "false")


def seconds(value: Any) -> float:
    """A duration as seconds (>= 0). Raises ``ValueError`` with a line saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (write e.g. 1d, 24h, 90m, or a number of seconds)")
    if isinstance(value, (int, float)):
        total = float(value)
    elif isinstance(value, timedelta):
        total = value.total_seconds()
    elif isinstance(value, str) and _NUMBER.match(value):
        total = float(value)
    elif isinstance(value, str) and _SHORT.match(value):
        total = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(value))
    else:
        try:
            total = _TIMEDELTA.validate_python(value).total_seconds()
        except ValueError:
            raise ValueError(f"{value!r} is not a duration (write e.g. 1d, 24h, 90m, P1D, "
                             "or a number of seconds)") from None
    if total < 0:
        raise ValueError(f"{value!r} is negative; a duration is 0 or more")
    return total


def _optional_seconds(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF) or value is False:
        return None
    return seconds(value)


Duration = Annotated[float, BeforeValidator(seconds)]
"""A settings field holding a duration, stored as seconds."""
OptionalDuration = Annotated[float | None, BeforeValidator(_optional_seconds)]
"""A duration, or ``off`` (also ``none``, ``never``, ``false``, YAML null): stored as None."""


def describe(total: float) -> str:
    """Seconds as a person would say them: ``24 h`` (days from two on: ``3 d``), ``90 min``, ``45 s``."""
    for unit, size, least in (("d", 86400, 2 * 86400), ("h", 3600, 3600), ("min", 60, 60)):
        if total >= least and total % size == 0:
            return f"{int(total // size)} {unit}"
    return f"{total:g} s"
