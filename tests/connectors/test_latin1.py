"""UTF-8 read through MySQL's latin1 (which is cp1252): turned back exactly, real latin1 left alone."""

from __future__ import annotations

import pandas as pd
import pytest

from connectors import latin1


def as_mysql_hands_it_out(text: str) -> str:
    """What MySQL returns for ``text``'s UTF-8 bytes stored in a latin1 column: each byte by cp1252, the
    five bytes cp1252 leaves undefined as the C1 control of the same number."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in text.encode())


@pytest.mark.parametrize("text", ["Café", "Привет, мир", "10 € \u2014 \u201cquoted\u201d \u2018single\u2019 \u2026",
                                  "Ωmega ™ ž Š œ", "emoji 😀 🛒", "Ѝ ѝ Ґ"])
def test_double_encoded_text_is_turned_back_whatever_the_script(text):
    garbled = as_mysql_hands_it_out(text)
    assert garbled != text
    assert latin1.undo(garbled) == text


@pytest.mark.parametrize("text", ["plain ascii", "Crème brûlée", "naïve façade 5€", "Ã", "ÿ"])
def test_real_latin1_text_and_ascii_are_left_alone(text):
    assert latin1.undo(text) is None


def test_a_column_is_repaired_value_by_value_and_the_first_case_is_reported():
    garbled = as_mysql_hands_it_out("Чайник \u2013 1 500 ₽")
    series = pd.Series(["ascii", None, "Crème", garbled], dtype=object)
    assert latin1.undo_series(series).tolist() == ["ascii", None, "Crème", "Чайник \u2013 1 500 ₽"]
    assert latin1.first_double_encoded(series) == (garbled, "Чайник \u2013 1 500 ₽")
    assert latin1.first_double_encoded(pd.Series(["Crème", None], dtype=object)) is None
