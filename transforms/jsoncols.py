"""Canonical JSON built column by column, with Arrow's string kernels.

A full backfill encodes millions of records, and building a dict per record to hand to ``orjson`` cost
more than validating them: ~12 us an order with its lines (dicts, dropping missing optional fields,
nesting, ``orjson.dumps`` with sorted keys). Here each field is a column of JSON texts, and each record
is joined from those columns in key order by one Arrow kernel call per chunk.

The output is byte for byte what ``orjson.dumps(record, option=OPT_SORT_KEYS)`` gives for the same record
(``tests/test_jsoncols.py`` checks it on generated records): the bytes are both what is sent and what the
ledger's content fingerprint is taken of, so any difference would make every record look changed once.
Values this module does not render itself (floats, lists, dicts, anything unusual) go through ``orjson``
one value at a time, so they are the same by construction.

A null in a column means "no value": an object leaves the key out, unless the key is required, where it
writes ``null`` (as ``orjson`` does for a record holding ``None``). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

STRING = pa.string()
_NULL = pa.scalar(None, STRING)


class Values(NamedTuple):
    """A column of JSON values: each is ``open + text + close`` (``"`` around a string's escaped text,
    ``[`` ``]`` around an array's items), or missing where ``text`` is null.

    Keeping the delimiters apart lets :func:`objects` write them as constants of its one join, instead of
    a pass per column to add them."""

    text: pa.Array
    open: str = ""
    close: str = ""

    def json(self) -> pa.Array:
        if not self.open and not self.close:
            return self.text
        return pc.binary_join_element_wise(self.open, self.text, self.close, "")


def scalars(values: Sequence[Any] | pa.Array, rows: np.ndarray | None = None) -> Values:
    """Each value (of the selected ``rows``, in that order) as JSON; missing where the value is ``None``
    or a float NaN.

    Strings, integers that fit int64 and booleans are rendered vectorised; a column of anything else (or
    of mixed types: the unselected rows may hold the invalid values a contract rejected) goes value by
    value through ``orjson``, for the selected rows only. ``values`` may already be an Arrow array (the
    string columns pandera checked: converting 5,000 Python strings again would cost ~150 us)."""
    if rows is not None and len(rows) == len(values) and (not len(rows) or (rows[0] == 0 and (np.diff(rows) == 1).all())):
        rows = None  # the identity selection
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        try:
            arr = pa.array(values)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            return _each(values if rows is None else [values[i] for i in rows.tolist()])
    if rows is not None:
        arr = arr.take(pa.array(rows, pa.int64()))
    kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return Values(escaped(arr), '"', '"')
    if pa.types.is_integer(kind):
        return Values(arr.cast(STRING))
    if pa.types.is_boolean(kind):
        return Values(pc.if_else(arr, "true", "false"))
    if pa.types.is_null(kind):
        return Values(pa.nulls(len(arr), STRING))
    # floats (orjson's own shortest form), lists, objects: Arrow would have changed them (a list of dicts
    # becomes a struct with every key), so the original values go to orjson
    return _each(values if rows is None else [values[i] for i in rows.tolist()])


def _each(values: Sequence[Any]) -> Values:
    dumps = orjson.dumps
    return Values(pa.array([None if v is None or (isinstance(v, float) and v != v) else dumps(v).decode()
                            for v in values], STRING))


def escaped(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The text between a JSON string's quotes, for each string (nulls stay null).

    Most shop text needs no escaping and is used as it is; the few values holding a quote, a backslash or
    a control character (found by one scan of the array's bytes) are re-rendered by ``orjson``. Everything
    else, non-ASCII included, is written unescaped, as ``orjson`` writes it."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):  # pandas' string columns
        arr = arr.cast(STRING)
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    if not len(arr) or data_buf is None:
        return arr
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]]
    hits = np.flatnonzero((data < 0x20) | (data == 0x22) | (data == 0x5C))
    if not len(hits):
        return arr
    rows = np.unique(np.searchsorted(offsets, hits + offsets[0], side="right") - 1)
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    inner = [orjson.dumps(v)[1:-1].decode() for v in arr.take(pa.array(rows)).to_pylist()]
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(inner, STRING))


def objects(fields: Mapping[str, Values], n: int, required: frozenset[str] | set[str] = frozenset()) -> pa.Array:
    """JSON objects with sorted keys, one per row (``n`` rows). A missing value leaves its key out of that
    row's object; a required key writes ``null``.

    One ``binary_join_element_wise`` call builds every object: keys and delimiters are constants in it,
    columns with a value in every row go in as they are, and only columns with gaps get a pass of their
    own (key and value together, null where missing, joined as ""). Commas: the first key present in
    every row (the anchor) has none; keys before it end with one, keys after it start with one. Without
    an anchor every member starts with a comma and the first is cut."""
    if not fields:
        return pa.array(["{}"] * n, STRING)
    members: dict[str, Values] = {}
    for key in sorted(fields):
        values = fields[key]
        if key in required and values.text.null_count:
            values = Values(pc.fill_null(values.json(), "null"))
        members[key] = values
    anchor = next((k for k, v in members.items() if not v.text.null_count), None)
    before = anchor is not None
    args: list[Any] = ["{"]
    for key, values in members.items():
        name = orjson.dumps(key).decode() + ":"
        if key == anchor:
            args += [name + values.open, values.text, values.close]
            before = False
            continue
        head, tail = (name + values.open, values.close + ",") if before else ("," + name + values.open, values.close)
        if values.text.null_count:
            args.append(pc.binary_join_element_wise(head, values.text, tail, ""))
        else:
            args += [head, values.text, tail]
    args.append("}")
    joined = pc.binary_join_element_wise(*args, "", null_handling="replace", null_replacement="")
    if anchor is None:  # with a member, the object's own "{," is the first one; an empty object is "{}"
        joined = pc.replace_substring(joined, "{,", "{", max_replacements=1)
    return joined


def omit_empty(texts: pa.Array) -> Values:
    """Objects, with ``{}`` as missing (``custom_fields`` with no values is left out)."""
    return Values(pc.if_else(pc.equal(texts, "{}"), _NULL, texts))


def arrays(items: pa.Array, offsets: np.ndarray) -> Values:
    """JSON arrays of consecutive JSON texts: row ``i`` holds ``items[offsets[i]:offsets[i + 1]]``."""
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)
    return Values(pc.binary_join(lists, ","), "[", "]")


def present_where(values: Values, keep: np.ndarray) -> Values:
    """``values`` missing where ``keep`` is false (an empty array that is left out rather than sent)."""
    return values._replace(text=pc.if_else(pa.array(keep, pa.bool_()), values.text, _NULL))


def to_bytes(texts: pa.Array) -> list[bytes]:
    """UTF-8 bytes of each text (what is sent and fingerprinted)."""
    return texts.cast(pa.binary()).to_pylist()
