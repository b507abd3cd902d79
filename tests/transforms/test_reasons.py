"""A contract check in an operator's words (issue 27: artifacts said ``str_length(None, 1000)``)."""

from __future__ import annotations

import pytest

from transforms.contract import RFC3339
from transforms.reasons import human_check


@pytest.mark.parametrize(("check", "reason"), [
    ("str_length(None, 1000)", "longer than 1000 characters"),
    ("str_length(1, None)", "empty"),
    ("str_length(2, 40)", "not between 2 and 40 characters long"),
    ("isin(['new', 'paid'])", "not one of new, paid"),
    (f"str_matches('{RFC3339}')", "not an RFC 3339 time (2026-12-01T02:00:00Z)"),
    ("greater_than(0)", "not greater than 0"),
    ("in_range(0, 5)", "outside 0..5"),
    ("not_nullable", "missing (required)"),
    ("positive integer", "positive integer"),  # already in words
    (None, ""),
])
def test_a_check_reads_as_a_reason(check, reason):
    assert human_check(check) == reason
