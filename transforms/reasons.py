"""A contract check's name in an operator's words: ``str_length(None, 1000)`` -> ``longer than 1000
characters``. The quarantine stores the check as pandera names it (tests and ``--reason`` filters match on
it); artifacts, the CLI and a run's last line show this reading of it. Pure text in, text out."""

from __future__ import annotations

import ast
import re

from transforms.patterns import RFC3339

_CALL = re.compile(r"^(?P<name>[a-z_]+)\((?P<args>.*)\)$", re.S)


def human_check(check: str | None) -> str:
    """The check as a reason a person reads; a check already in words is returned as it is."""
    if not check:
        return ""
    m = _CALL.match(check.strip())
    if not m:
        return {"not_nullable": "missing (required)", "field_uniqueness": "not unique",
                "column_in_dataframe": "column missing"}.get(check, check)
    name = m["name"]
    quoted = re.fullmatch(r"'(.*)'", m["args"].strip(), re.S)  # one pattern: taken as written, not unescaped
    args = [quoted[1]] if name == "str_matches" and quoted else _args(m["args"])
    if name == "str_length":
        low, high = (args + [None, None])[:2]
        if low and high:
            return f"not {low} characters" if low == high else f"not between {low} and {high} characters long"
        if high is not None:
            return f"longer than {high} characters"
        return "empty" if low in (1, None) else f"shorter than {low} characters"
    if name == "isin" and args and isinstance(args[0], list | tuple | set | frozenset):
        allowed = sorted(map(str, args[0]))
        shown = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")
        return f"not one of {shown}"
    if name == "str_matches" and args:
        pattern = str(args[0])
        if pattern == RFC3339:
            return "not an RFC 3339 time (2026-12-01T02:00:00Z)"
        if pattern == "^[0-9]+$":
            return "not a whole number of digits"
        return f"does not match {pattern}"
    bounds = {"greater_than": "not greater than {}", "greater_than_or_equal_to": "less than {}",
              "less_than": "not less than {}", "less_than_or_equal_to": "greater than {}", "equal_to": "not {}",
              "not_equal_to": "equal to {}"}
    if name in bounds and args:
        return bounds[name].format(args[0])
    if name == "in_range" and len(args) >= 2:
        return f"outside {args[0]}..{args[1]}"
    if name == "dtype" and args:
        return f"not of type {args[0]}"
    return check


def _args(text: str) -> list[object]:
    try:
        value = ast.literal_eval(f"({text},)") if text.strip() else ()
    except (ValueError, SyntaxError):
        return [text]
    return list(value)
