"""Counts in the lines people read: ``1 record``, ``2 records``. One place, so every user-facing line
agrees in number."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "record")`` -> ``1 record``; ``plural(3, "record")`` -> ``3 records``; ``many`` for an
    irregular plural (``plural(2, "ledger entry", "ledger entries")``)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"
