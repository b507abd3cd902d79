"""Counts in the lines people read: ``1 record``, ``2 records``; ``< 1 min`` rather than ``1 min`` after a
few seconds. One place, so every user-facing line agrees in number."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "record")`` -> ``1 record``; ``plural(3, "record")`` -> ``3 records``; ``many`` for an
    irregular plural. Thousands are grouped (``12,345 records``)."""
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"
