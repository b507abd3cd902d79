"""The wire formats the contract checks, as plain regular expressions: a module without pandas or pandera,
so that code which only names a check (``transforms.reasons``, shown by the CLI) does not import them."""

from __future__ import annotations

# ASCII digits spelled [0-9]: Python's ``\d`` also takes other scripts' digits, RE2's (Arrow's) does not
_YEAR = "([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
RFC3339 = "^" + _YEAR + r"-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
"""Years 0001-9999 (RFC 3339's range; year 0 is what a year-1 wall time east of UTC becomes)."""
