"""A source key's canonical text: one spelling whatever type the key reached us in."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from altcraft_sync.keys import canonical_key


class Code(str):
    pass


@pytest.mark.parametrize(("value", "text"), [
    (1443, "1443"), (np.int64(1443), "1443"), (1443.0, "1443"), (np.float64(1443.0), "1443"),
    (Decimal("1443"), "1443"), (Decimal("1443.00"), "1443"), (Decimal("14.5"), "14.5"), (1.5, "1.5"),
    (True, "1"), ("1443", "1443"), ("SKU-7", "SKU-7"), (Code("A-1"), "A-1"), (2**70, str(2**70)),
    (None, None), (float("nan"), None), (np.nan, None), (pd.NA, None), (pd.NaT, None), (Decimal("NaN"), None),
])
def test_a_key_has_one_text_whatever_its_type(value, text):
    got = canonical_key(value)
    assert got == text and (got is None or type(got) is str)
