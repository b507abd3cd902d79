"""The raw-row digest (``transforms.digest``): what changes it, what must not, and that computing it never
imports the contract."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.engine.fakes import demo_config
from transforms import digest
from transforms.digest import mapping_fingerprint, raw_digests
from transforms.spec import mapping_spec


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return mapping_spec(demo_config(tmp_path_factory.mktemp("digest")), "orders")


def orders(**over) -> pd.DataFrame:
    frame = pd.DataFrame({"_pk": [1, 2, 3], "external_id": ["1", "2", "3"], "total": [10.5, 20.0, 7.25],
                          "email": ["a@x.io", "b@x.io", None]})
    for name, values in over.items():
        frame[name] = values
    return frame


def lines(**over) -> pd.DataFrame:
    frame = pd.DataFrame({"_pk": [11, 12, 21, 31], "_parent": [1, 1, 2, 3], "sku": ["A", "B", "A", "C"],
                          "qty": [1, 2, 1, 5]})
    for name, values in over.items():
        frame[name] = values
    return frame


def digests(parents, children, m) -> list[int]:
    out = raw_digests(parents, children, m)
    assert out is not None and out.dtype == np.int64 and len(out) == len(parents)
    return out.tolist()


def test_children_in_any_order_give_the_same_digest(spec) -> None:
    base = digests(orders(), lines(), spec)
    assert digests(orders(), lines().iloc[[3, 1, 2, 0]], spec) == base
    assert len(set(base)) == 3


def test_a_changed_added_or_removed_child_changes_its_parent_only(spec) -> None:
    base = digests(orders(), lines(), spec)
    changed = digests(orders(), lines(qty=[1, 3, 1, 5]), spec)  # order 1's second line
    assert changed[0] != base[0] and changed[1:] == base[1:]
    fewer = digests(orders(), lines().iloc[[0, 2, 3]], spec)
    assert fewer[0] != base[0] and fewer[1:] == base[1:]
    repeated = digests(orders(), pd.concat([lines(), lines().iloc[[2]]]), spec)  # a line twice is not no line
    assert repeated[1] != base[1] and digests(orders(), lines().iloc[[0, 1, 3]], spec)[1] != repeated[1]


def test_a_changed_parent_value_changes_its_digest(spec) -> None:
    base = digests(orders(), lines(), spec)
    assert digests(orders(total=[10.5, 20.01, 7.25]), lines(), spec)[1] != base[1]
    swapped = orders()
    swapped["email"], swapped["note"] = None, ["a@x.io", "b@x.io", None]  # the same values in another column
    assert digests(swapped, lines(), spec)[0] != base[0]


def test_null_and_empty_text_differ(spec) -> None:
    empty = digests(orders(email=["a@x.io", "b@x.io", ""]), lines(), spec)
    assert empty[2] != digests(orders(), lines(), spec)[2]


def test_money_as_the_database_gives_it(spec) -> None:
    """PostgreSQL and MySQL money is read as text or Decimal (its scale kept): 1.10 and 1.1 differ, which
    costs at most a re-map. SQLite gives a number: 1.10 is 1.1, and a whole 5.0 is the integer 5."""
    def one(values):
        return digests(orders(total=values), None, spec)[0]

    assert one(["1.10", "2", "3"]) != one(["1.1", "2", "3"])
    assert one([Decimal("1.10"), Decimal(2), Decimal(3)]) != one([Decimal("1.1"), Decimal(2), Decimal(3)])
    assert one([1.10, 2.0, 3.0]) == one([1.1, 2.0, 3.0])
    assert one([1.10, 2.0, 3.0]) != one([1.1000000000000003, 2.0, 3.0])  # every bit of a float counts
    assert one([5, 2, 3]) == one([5.0, 2.5, 3.0]) != one([5.5, 2.5, 3.0])


def test_the_dtype_pandas_inferred_for_a_chunk_does_not_matter(spec) -> None:
    """A record read in another chunk (a lookback page, the quarantine re-read by key) gets columns of other
    dtypes: whole prices are int64 in one page and float64 in another, an all-NULL column is object."""
    typed = pd.DataFrame({"_pk": [1, 2], "external_id": ["1", "2"], "total": [5, 6], "note": [None, None],
                          "email": ["a@x.io", None], "paid": [True, False]})
    loose = pd.DataFrame({"_pk": pd.Series([1, 2], dtype=object), "external_id": pd.Series(["1", "2"], dtype=object),
                          "total": [5.0, 6.0], "note": [np.nan, np.nan],
                          "email": pd.Series(["a@x.io", None], dtype=object), "paid": pd.Series([1, 0], dtype=object)})
    assert digests(typed, None, spec) == digests(loose, None, spec)
    nullable = loose.astype({"total": "Int64", "paid": "boolean"})  # a columnar reader's masked types
    nullable.loc[1, "total"] = pd.NA
    with_null = loose.copy()
    with_null.loc[1, "total"] = None
    assert digests(nullable, None, spec) == digests(with_null, None, spec)
    arrow = typed.astype({"total": "int64[pyarrow]", "email": "string[pyarrow]", "paid": "bool[pyarrow]"})
    assert digests(arrow, None, spec) == digests(typed, None, spec)
    assert digests(typed.iloc[[1, 0]], None, spec) == digests(typed, None, spec)[::-1]  # rows stand alone
    assert digests(typed[list(reversed(typed.columns))], None, spec) == digests(typed, None, spec)


def test_times_give_one_digest_whether_objects_or_a_typed_column(spec) -> None:
    """A cursor or time read by PostgreSQL's or MySQL's driver is a Python ``datetime`` per value, the same
    time read in columns a ``datetime64`` column: one digest either way, naive or in a zone, whole seconds
    or not, with NULLs. A whole column is keyed at once (value by value, these columns cost more than the
    rest of the digest) with the keys the value-by-value path gives; a column it cannot take whole (zones
    that differ) still goes value by value, to the same keys. A time, its zone's offset and naive against
    aware each change the digest."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    base = dt.datetime(2024, 3, 1, 12, 30)
    naive = [base, None, base + dt.timedelta(seconds=1, microseconds=250), base.replace(year=1969)]
    seen: set[tuple[int, ...]] = set()
    for zone in (None, dt.UTC, ZoneInfo("Europe/Moscow")):
        values = [None if v is None else v.replace(tzinfo=zone) for v in naive]
        objects = pd.DataFrame({"_pk": [1, 2, 3, 4], "_ts": pd.Series(values, dtype=object)})
        typed = objects.assign(_ts=pd.Series(pd.DatetimeIndex(values)))
        assert digest._stamp_keys(np.array(values, dtype=object)) is not None
        want = [digest._object_keys(np.array([v], dtype=object))[0] for v in values]
        got = digest._column_keys(objects["_ts"]).tolist()
        assert got[:1] + got[2:] == want[:1] + want[2:]
        assert digests(objects, None, spec) == digests(typed, None, spec)
        assert len(set(digests(objects, None, spec))) == 4
        seen.add(tuple(digests(objects, None, spec)))
    assert len(seen) == 3  # naive, UTC and Moscow: three different digests of the same wall-clock times
    later = pd.DataFrame({"_pk": [1], "_ts": [base + dt.timedelta(microseconds=1)]})
    assert digests(later, None, spec) != digests(pd.DataFrame({"_pk": [1], "_ts": [base]}), None, spec)
    moscow = dt.timezone(dt.timedelta(hours=3))
    mixed = np.array([base.replace(tzinfo=moscow), base.replace(tzinfo=dt.UTC), None], dtype=object)
    assert digest._stamp_keys(mixed) is None
    keys = digest._column_keys(pd.Series(mixed, dtype=object)).tolist()
    assert keys[:2] == digest._object_keys(mixed).tolist()[:2] and keys[0] != keys[1]
    assert keys[1] == digest._stamp_keys(np.array([base.replace(tzinfo=dt.UTC)], dtype=object))[0]


def test_the_mapping_spec_and_the_code_version_are_part_of_it(spec, monkeypatch) -> None:
    base = digests(orders(), lines(), spec)
    other = dataclasses.replace(spec, max_name_length=spec.max_name_length - 1)
    assert mapping_fingerprint(other) != mapping_fingerprint(spec)
    assert all(a != b for a, b in zip(digests(orders(), lines(), other), base))
    moved = dataclasses.replace(spec, timezone="Europe/Moscow")
    assert all(a != b for a, b in zip(digests(orders(), lines(), moved), base))
    import transforms.digest

    monkeypatch.setattr(transforms.digest, "MAPPING_VERSION", transforms.digest.MAPPING_VERSION + 1)
    assert all(a != b for a, b in zip(digests(orders(), lines(), spec), base))


def test_computing_it_does_not_import_the_contract() -> None:
    code = ("import sys; import transforms.digest, engine.mapping, engine.pipeline; "
            "print(sorted(m for m in sys.modules if m.startswith(('pandera', 'transforms.contract', 'transforms.checks'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
