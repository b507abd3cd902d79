"""Payload building shared by every entity: field conversion by Altcraft type, the frame the contract
checks, records as canonical JSON built column-wise (:mod:`transforms.jsoncols`) with children grouped by
offsets, the content fingerprint. Quarantine rows are :mod:`transforms.quarantine`'s.

Records are never built with ``DataFrame.to_dict("records")``, per-row loops over a DataFrame or a dict
per record: each field is converted once per column, and JSON is joined from columns.
"""

from __future__ import annotations

import functools
import gc
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from altcraft_sync.catalogue import BOOL_FIELDS, INT_FIELDS, LIST_FIELDS, MONEY_FIELDS, TIME_FIELDS
from altcraft_sync.cursor import PARENT, PK, PROBLEM, PRODUCT_NAME
from altcraft_sync.keys import canonical_key
from transforms import jsoncols
from transforms import values as V
from transforms.money import money
from transforms.order_extras import LineDetails
from transforms.quarantine import empty_quarantine, null_key_id

if TYPE_CHECKING:
    from transforms.spec import MappingSpec

P = ParamSpec("P")
R = TypeVar("R")
ID_FIELDS = frozenset({"external_id", "product_external_id", "parent_external_id", "product"})



class Payload(NamedTuple):
    """One record ready to send: its canonical JSON bytes and their fingerprint.

    A named tuple, not a frozen dataclass: a million of them are built per full sync, and a frozen
    dataclass's ``__init__`` cost ~1.8 us each against ~0.2 us."""

    external_id: str
    data: bytes
    fingerprint: str
    source_pk: Any
    owner: str | None = None
    """The ledger id of the profile the record is sent for (an order's buyer, ``email:<address>``), or None."""


@dataclass
class Mapped:
    """What a transform returns: records to send, rows quarantined with their reasons, deletions."""

    entity: str
    payloads: list[Payload] = field(default_factory=list)
    quarantine: pd.DataFrame = field(default_factory=lambda: empty_quarantine())
    deletions: list[tuple[str, Any]] = field(default_factory=list)
    """(external_id, source_pk) of soft-deleted rows."""
    warnings: list[str] = field(default_factory=list)
    refs: Refs | None = None
    """The external ids each payload refers to (an order's line products, a SKU's product, a product's
    categories): the engine holds a record back while one of them is not delivered."""
    ref_lines: LineDetails | None = None
    """Orders: what the line behind each reference says about its product (``order_extras.LineDetails``),
    for a stand-in of a product that will never reach Altcraft."""
    changed_at: np.ndarray | None = None
    """Orders: when each payload's record last changed (Unix seconds, NaN unknown), for the trigger
    window."""

    @property
    def invalid_count(self) -> int:
        return int(self.quarantine["external_id"].nunique()) if not self.quarantine.empty else 0

    def records(self) -> list[dict[str, Any]]:
        """The payload records as dicts (tests and dry-run samples; the push uses the bytes)."""
        return [orjson.loads(p.data) for p in self.payloads]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to and from map worker processes) with the payloads as four columns: one list of
        bytes pickles in ~5 ms per 5,000 records, 5,000 record objects in ~24 ms."""
        state = dict(self.__dict__)
        state["payloads"] = tuple(map(list, zip(*self.payloads))) if self.payloads else ()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        columns = state.pop("payloads")
        self.__dict__.update(state)
        self.payloads = list(map(Payload._make, zip(*columns))) if columns else []


class Refs(NamedTuple):
    """References of a chunk's payloads, flat: payload ``i`` refers to ``values[offsets[i]:offsets[i+1]]``."""

    values: pa.Array
    offsets: np.ndarray


def refs_of(column: V.Column | list[list[Any] | None], rows: np.ndarray, offsets: np.ndarray | None = None) -> Refs:
    """The references in ``column`` at ``rows`` (one payload each, or grouped by ``offsets`` when a
    payload has several rows, e.g. an order's lines). A list column (categories) is flattened per row."""
    if isinstance(column, pa.Array):
        values = column.take(pa.array(rows, pa.int64())).cast(pa.string())
    else:
        picked = [column[i] for i in rows.tolist()]
        if picked and any(isinstance(v, list) for v in picked):
            lengths = np.array([len(v) if isinstance(v, list) else 0 for v in picked], dtype=np.int64)
            flat = [x for v in picked if isinstance(v, list) for x in v]
            return Refs(pa.array(flat, pa.string()), np.concatenate(([0], np.cumsum(lengths))).astype(np.int64))
        values = pa.array([None if v is None else str(v) for v in picked], pa.string())
    if offsets is None:
        offsets = np.arange(len(rows) + 1, dtype=np.int64)
    return Refs(values, offsets)


def fingerprint(data: bytes) -> str:
    """The ledger's fingerprint of a record (or a root definition): blake2b of its canonical JSON."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def canonical(body: dict[str, Any]) -> bytes:
    """A dict as canonical JSON (sorted keys), the input of :func:`fingerprint`."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def payloads(texts: pa.Array, rows: np.ndarray, external_ids: V.Column, source_pks: list[Any],
             owners: list[str | None] | None = None) -> list[Payload]:
    """The records built by :func:`record_texts` for ``rows``, with the external id and source key of each
    row (and the profile each is sent for, when given). Canonical JSON is both the wire payload and the
    fingerprint's input, so a record is serialized exactly once."""
    picked = rows.tolist()
    ids = (external_ids.take(pa.array(rows, pa.int64())).to_pylist() if isinstance(external_ids, pa.Array)
           else [external_ids[i] for i in picked])
    if owners is not None:
        return [Payload(e, d, fingerprint(d), source_pks[i], owners[i])
                for e, d, i in zip(ids, jsoncols.to_bytes(texts), picked)]
    return [Payload(e, d, fingerprint(d), source_pks[i])
            for e, d, i in zip(ids, jsoncols.to_bytes(texts), picked)]


def record_texts(columns: dict[str, V.Column], required: frozenset[str] | set[str], rows: np.ndarray,
                 custom: dict[str, V.Column] | None = None, nested: dict[str, jsoncols.Values] | None = None,
                 checked: pd.DataFrame | None = None) -> pa.Array:
    """The canonical JSON object of each selected row (``rows``, in that order), built column-wise.

    ``columns`` hold wire values (a missing optional value leaves its key out), ``custom`` the ``cf.<id>``
    columns that go into a ``custom_fields`` object (left out when it has no values), and ``nested`` JSON
    values already built for the selected rows (``lines``, ``regional_data``). String columns are taken
    from ``checked`` (the contract frame) when given: the same values, already in Arrow."""
    n = len(rows)
    fields = {}
    for name, vals in columns.items():
        arrow = vals if isinstance(vals, pa.Array) else _arrow_text(checked, name)
        fields[name] = jsoncols.scalars(vals if arrow is None else arrow, rows)
    if custom:
        inner = {name[3:]: jsoncols.scalars(vals, rows) for name, vals in custom.items()}
        fields["custom_fields"] = jsoncols.omit_empty(jsoncols.objects(inner, n))
    fields.update(nested or {})
    return jsoncols.objects(fields, n, required)


def sort_children(frame: pd.DataFrame) -> pd.DataFrame:
    """Child rows sorted by parent key, then their own key (re-indexed).

    Integer keys, the usual case, are sorted as int64 arrays: pandas sorts an ``object`` key column (how
    primary keys are read, to keep them exact) by factorizing it, ~2 ms per 15,000 lines against 0.3 ms."""
    parent, own = _int_keys(frame["_parent"]), _int_keys(frame["_pk"])
    if parent is None or own is None:
        return frame.sort_values(["_parent", "_pk"], kind="stable").reset_index(drop=True)
    return frame.take(np.lexsort((own, parent))).reset_index(drop=True)


def children_of(children: pd.DataFrame, parent_keys: list[Any], skip_deleted: bool) -> pd.DataFrame:
    """The child rows (order lines, regional rows) of these parents only, soft-deleted ones left out
    (``skip_deleted``: the child table has a deleted flag), sorted by parent then own key."""
    children = children[children["_parent"].isin(parent_keys)]
    if skip_deleted and not children.empty:
        children = children[~deleted_mask(children)]
    return sort_children(children)


def custom_columns(frame: pd.DataFrame, custom_fields: Iterable[str], m: MappingSpec) -> dict[str, V.Column]:
    """The mapped custom fields of a frame (``cf.<id>`` columns) in the JSON type each is defined with."""
    return {f"cf.{cf_id}": V.custom_value(frame[f"cf.{cf_id}"], m.custom_types[cf_id], m.tz) for cf_id in custom_fields}


def _int_keys(series: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy()
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "integer":
        try:
            return series.to_numpy().astype(np.int64)
        except OverflowError:
            return None
    return None


def parent_positions(parent_keys: list[Any], child_parents: pd.Series) -> np.ndarray:
    """Each child's parent position in ``parent_keys`` (-1 for none). Integer keys are matched as int64
    arrays: through ``object`` arrays the lookup cost ~1.2 ms per 15,000 lines, as int64 0.2 ms."""
    if not len(child_parents):
        return np.array([], dtype=np.int64)
    children = _int_keys(child_parents)
    if children is not None:
        parents = np.asarray(parent_keys)
        if parents.dtype.kind == "i":
            return pd.Index(parents).get_indexer(children)
    return pd.Index(parent_keys).get_indexer(child_parents.to_numpy(dtype=object))


def children_under(good: np.ndarray, n_parents: int, parent_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Child rows of the kept parents (``good``, positions among ``n_parents``), grouped in the kept
    parents' sequence, and the group offsets (``len(good) + 1``) that :func:`jsoncols.arrays` takes.
    ``parent_pos`` is each child's parent position; children keep their order within a parent."""
    rank = np.full(n_parents, -1, dtype=np.int64)
    rank[good] = np.arange(len(good))
    child_rank = rank[parent_pos] if len(parent_pos) else np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(child_rank >= 0)
    rows = rows[np.argsort(child_rank[rows], kind="stable")]
    counts = np.bincount(child_rank[rows], minlength=len(good))
    return rows, np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def convert(
    frame: pd.DataFrame, fields: list[str], tz: ZoneInfo, scale: int
) -> tuple[dict[str, V.Column], dict[str, np.ndarray]]:
    """Each mapped field in Altcraft's wire type; money fields also as integer minor units."""
    out: dict[str, V.Column] = {}
    minor: dict[str, np.ndarray] = {}
    for name in fields:
        col = frame[name]
        if name in MONEY_FIELDS:
            out[name], minor[name] = money(col, scale)
        elif name in INT_FIELDS:
            out[name] = V.integers(col)
        elif name in BOOL_FIELDS:
            out[name] = V.booleans(col)
        elif name in LIST_FIELDS:
            out[name] = V.lists(col, "raw" if name == "barcode" else "str")
        elif name in TIME_FIELDS:
            out[name] = V.rfc3339(col, tz)
        elif name in ID_FIELDS or name == "expiration_time":
            out[name] = V.ids(col)
        else:
            out[name] = V.strings(col)
    return out, minor


def html_decoded(frame: pd.DataFrame, section: Any) -> pd.DataFrame:
    """The frame with the text of the section's ``html_unescape`` fields decoded (a field's column is its
    name, a custom field's ``cf.<id>``, a line's product name :data:`PRODUCT_NAME`)."""
    names = getattr(section, "html_unescape", None)
    if not names or frame.empty:
        return frame
    frame = frame.copy(deep=False)
    for name in names:
        column = name if name in section.columns else (PRODUCT_NAME if name == "product_name" else f"cf.{name}")
        if column in frame:
            frame[column] = V.html_unescaped(frame[column])
    return frame


def map_values(series: pd.Series, mapping: dict[str, str]) -> V.Column:
    """Shop values through a value map (statuses); unmapped values pass through for the contract."""
    return V.by_unique_text(series, lambda v: mapping.get(str(v), str(v)))


TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
"""pandas' default ``str`` dtype (pandas 3), which the contract's ``Text`` columns expect."""


def contract_frame(columns: dict[str, V.Column], extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """The frame pandera checks: string fields as pandas ``str`` (an Arrow column is wrapped, not
    copied), the rest as ``object``; lists are built by the transform itself and are not part of the
    checked frame."""
    index = pd.RangeIndex(len(next(iter({**columns, **(extra or {})}.values()), [])))
    data: dict[str, Any] = {}
    for name, vals in columns.items():
        if name in LIST_FIELDS:
            continue
        if name in INT_FIELDS or name in BOOL_FIELDS or name.startswith("cf."):
            objects = np.empty(len(index), dtype=object)  # filled, not np.array(vals): a value may be a list
            objects[:] = vals.to_numpy(zero_copy_only=False) if isinstance(vals, pa.Array) else vals
            # a Series on the frame's own index: a bare object array of strings would be inferred as str
            data[name] = pd.Series(objects, index=index, dtype=object, copy=False)
        else:
            data[name] = pd.array(vals, dtype=TEXT)
    data.update(extra or {})
    # arrays (and Series on the same index), not Series of their own: aligning indexes is ~40 us a column
    return pd.DataFrame(data, index=index, copy=False)


def _arrow_text(frame: pd.DataFrame | None, name: str) -> pa.Array | None:
    """A string column of the contract frame as Arrow (zero-copy). ``contract_frame`` builds those columns
    from the converters' ``str``/``None`` values, so they hold exactly the wire values."""
    if frame is None or name not in frame.columns:
        return None
    return V.arrow_strings(frame[name])


def gc_paused(func: Callable[P, R]) -> Callable[P, R]:
    """Run a transform with the cyclic GC paused.

    Building millions of small dicts/bytes with ~10^5 live objects around makes CPython's collector rescan
    everything over and over: measured 17.7 us vs 4.5 us per order record. Transforms create no cycles of
    their own, so collection simply waits until the transform returns."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


def split_deleted(frame: pd.DataFrame, out: Mapped) -> pd.DataFrame:
    """Record soft-deleted rows as deletions on ``out``; return the live rows, re-indexed."""
    frame = frame.reset_index(drop=True)
    deleted = deleted_mask(frame)
    if deleted.any():
        gone = frame[deleted]
        out.deletions = list(zip(V.pylist(V.ids(gone["external_id"])), plain_keys(gone["_pk"])))
        frame = frame[~deleted].reset_index(drop=True)
    return frame


def split_problems(frame: pd.DataFrame, entity: str,
                   children: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows the source marked as not to be taken as they are (:data:`altcraft_sync.cursor.PROBLEM`: a key
    in several rows, a value it could not read), or whose child rows it marked: their records become
    quarantine rows naming the field, the check and the value. Returns the other rows and the quarantine."""
    frame = frame.reset_index(drop=True)
    bad = np.zeros(len(frame), dtype=bool)
    reasons: dict[int, tuple[str, str, str]] = {}
    if PROBLEM in frame:
        for i, p in enumerate(frame[PROBLEM].tolist()):
            if isinstance(p, tuple):
                bad[i], reasons[i] = True, p
        frame = frame.drop(columns=PROBLEM)
    if children is not None and PROBLEM in children and len(frame):
        marked = children[children[PROBLEM].map(lambda p: isinstance(p, tuple))]
        by_parent = dict(zip(marked[PARENT].tolist(), marked[PROBLEM].tolist()))
        for i, pk in enumerate(frame[PK].tolist()):
            if pk in by_parent and i not in reasons:
                bad[i], reasons[i] = True, by_parent[pk]
    if not reasons:
        return frame, empty_quarantine()
    pks = [canonical_key(k) for k in plain_keys(frame[PK])]
    first: dict[Any, int] = {}
    for i in sorted(reasons):  # one quarantine row a record, however many rows repeat its key
        first.setdefault(pks[i] if pks[i] is not None else ("row", i), i)  # a NULL key: a record of its own
    pos = sorted(first.values())
    ids = V.pylist(V.ids(frame["external_id"])) if "external_id" in frame else [None] * len(frame)
    quarantine = pd.DataFrame({
        "entity": entity,
        "external_id": [ids[i] if ids[i] is not None else pks[i] if pks[i] is not None else null_key_id(frame, i)
                        for i in pos],
        "source_pk": pd.Series([pks[i] for i in pos], dtype=object), "check": [reasons[i][1] for i in pos],
        "field": [reasons[i][0] for i in pos], "value": [reasons[i][2] for i in pos],
    })
    return frame[~bad].reset_index(drop=True), quarantine


def deleted_mask(frame: pd.DataFrame) -> np.ndarray:
    if "_deleted" not in frame:
        return np.zeros(len(frame), dtype=bool)
    flag = frame["_deleted"]
    if pd.api.types.is_bool_dtype(flag.dtype) and not flag.hasnans:
        return flag.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(flag.dtype):  # SQLite's booleans; what V.booleans calls True
        return flag.to_numpy() == 1
    return np.array([f is True for f in V.booleans(flag)], dtype=bool)


def plain_keys(series: pd.Series) -> list[Any]:
    """Primary keys as plain Python values (numpy scalars unwrapped), as the ledger stores them."""
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.tolist()
    ints = _int_keys(series)  # keys are read as objects (exact); integer ones are the usual case
    if ints is not None:
        return ints.tolist()
    return [v.item() if hasattr(v, "item") else v for v in series.tolist()]
