"""The keyset cursor's order, which the planner compares watermarks by: a cursor without a key (the page
ended on a NULL key, or a time-only bound) is past every row of its time, and comparing it never raises."""

from __future__ import annotations

from datetime import datetime

from altcraft_sync.cursor import Cursor

T1, T2 = datetime(2026, 12, 1, 10), datetime(2026, 12, 1, 11)


def test_a_later_time_is_after_whatever_the_keys():
    assert Cursor(T2, "A").after(Cursor(T1, "Z")) and not Cursor(T1, "Z").after(Cursor(T2, "A"))
    assert Cursor(T2, None).after(Cursor(T1, None)) and Cursor(T2, "A").after(Cursor(T1, None))


def test_within_one_time_a_cursor_without_a_key_is_past_every_key():
    assert Cursor(T1, None).after(Cursor(T1, "Z-999"))
    assert not Cursor(T1, "Z-999").after(Cursor(T1, None))
    assert not Cursor(T1, None).after(Cursor(T1, None))
    assert Cursor(T1, "B").after(Cursor(T1, "A")) and not Cursor(T1, "A").after(Cursor(T1, "A"))
    assert Cursor(T1, None).after(None)
