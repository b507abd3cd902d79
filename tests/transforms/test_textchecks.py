"""The control-character check (``transforms.textchecks.no_controls``) gives Python's answer for every value,
whether it runs the regular expression or sees from the column's bytes that it need not."""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.textchecks import CONTROL, no_controls

TEXT = st.text(alphabet=st.sampled_from(list("ab é中\t\n\r\x00\x01\x1b\x1f\x7f\u2028\U0001f600")), max_size=6)


def expected(values: list[str | None]) -> list[bool]:
    return [v is None or re.search(CONTROL, v) is None for v in values]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=12), st.integers(0, 4))
def test_no_controls_agrees_with_pythons_regex_on_whole_and_sliced_columns(values: list[str | None], cut: int) -> None:
    column = pd.Series(values, dtype="str")
    assert no_controls(column).tolist() == expected(values)
    tail = column.iloc[cut:]  # an Arrow array with an offset into buffers that hold the cut-off values too
    assert no_controls(tail).tolist() == expected(values[cut:])
    assert no_controls(tail).index.equals(tail.index)


def test_a_column_without_control_bytes_passes_and_one_with_them_is_caught() -> None:
    plain = pd.Series(["Acme", "ünï 中文", None, ""], dtype="str")
    assert no_controls(plain).tolist() == [True, True, True, True]
    mixed = pd.Series(["tab\there", "line\nbreak", "esc\x1b[31m", "del\x7f", "nul\x00"], dtype="str")
    assert no_controls(mixed).tolist() == [True, True, False, False, False]
    # a control byte only in a value the slice leaves out does not fail the values it keeps
    assert no_controls(pd.Series(["bad\x01", "good"], dtype="str").iloc[1:]).tolist() == [True]


def test_a_text_column_in_another_arrow_layout_still_goes_to_the_match() -> None:
    import pyarrow as pa

    from transforms.textchecks import _may_hold_controls

    assert _may_hold_controls(pa.array(["plain"], pa.string_view())) is True  # not read as offsets
    assert _may_hold_controls(pa.array(["plain", None], pa.large_string())) is False
    assert _may_hold_controls(pa.array(["a\x1b"], pa.large_string())) is True
