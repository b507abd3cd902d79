"""Catalogue: categories (parents before children), products and SKUs with nested ``regional_data``, and
the root ``custom_fields`` / ``custom_line_statuses`` definitions. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from altcraft_sync.sources import CatalogStream, ChildSource
from transforms import contract, jsoncols
from transforms import values as V
from transforms.category_tree import depths
from transforms.payload import (
    Mapped,
    children_of,
    children_under,
    contract_frame,
    convert,
    custom_columns,
    gc_paused,
    html_decoded,
    parent_positions,
    payloads,
    plain_keys,
    record_texts,
    refs_of,
    split_deleted,
    split_problems,
)
from transforms.quarantine import empty_quarantine, quarantine_rows, with_quarantine
from transforms.spec import MappingSpec

CATEGORY_REQUIRED = frozenset({"external_id", "name"})
CATALOG_REQUIRED = frozenset({"external_id", "name", "product_external_id"})
REGIONAL_REQUIRED = frozenset({"external_id"})


@gc_paused
def map_categories(frame: pd.DataFrame, m: MappingSpec) -> Mapped:
    """Categories ordered so every parent comes before its children (Altcraft needs the parent to exist).

    Parents outside this batch are assumed already delivered; a cycle is quarantined."""
    spec = m.section
    out = Mapped(m.entity)
    frame, problems = split_problems(frame, m.entity)
    out.quarantine = problems
    if frame.empty:
        return out
    frame = html_decoded(frame, spec)
    C, _ = convert(frame, list(spec.columns), m.tz, m.money_scale)
    pks = plain_keys(frame["_pk"])
    fails = contract.failures(contract_frame(C), contract.category_schema(m.max_name_length))
    parents = V.pylist(C.get("parent_external_id", [None] * len(frame)))
    depth = depths(V.pylist(C["external_id"]), parents)
    cyclic = np.flatnonzero(depth < 0)
    cycle_fails = pd.DataFrame({"pos": cyclic, "check": "category tree has no cycles",
                                "field": "parent_external_id", "value": [parents[i] for i in cyclic.tolist()]})
    all_fails = (
        pd.concat([f for f in (fails, cycle_fails) if not f.empty], ignore_index=True)
        if len(cyclic) or not fails.empty
        else fails
    )
    out.quarantine = with_quarantine(problems, quarantine_rows(m.entity, all_fails, C["external_id"], pks))
    bad = np.zeros(len(frame), dtype=bool)
    bad[all_fails["pos"].to_numpy(dtype=np.int64)] = True
    order = [i for i in np.argsort(depth, kind="stable").tolist() if not bad[i]]
    rows = np.array(order, dtype=np.int64)
    out.payloads = payloads(record_texts(C, CATEGORY_REQUIRED, rows), rows, C["external_id"], pks)
    return out


@gc_paused
def map_catalog(frame: pd.DataFrame, regional: pd.DataFrame | None, m: MappingSpec) -> Mapped:
    """Products or SKUs (any stream whose spec maps with this function) with their ``regional_data``. A
    stream whose records name a ``product_external_id`` is checked as SKUs, any other as products."""
    spec = m.section
    assert isinstance(spec, CatalogStream), f"{m.stream} is not a catalogue stream"
    out = Mapped(m.entity)
    frame = split_deleted(frame, out)
    frame, problems = split_problems(frame, m.entity, regional)
    out.quarantine = problems
    if frame.empty:
        return out
    pks = plain_keys(frame["_pk"])
    frame = html_decoded(frame, spec)
    P, _ = convert(frame, list(spec.columns), m.tz, m.money_scale)
    P_cf = custom_columns(frame, spec.custom_fields, m)
    model = contract.SkuContract if m.sku_like else contract.CatalogContract
    pframe = contract_frame({**P, **P_cf})
    fails = contract.failures(pframe, contract.catalog_schema(model, m.money_scale, list(m.custom_fields),
                                                              list(pframe.columns), m.max_name_length))
    parts = [problems, quarantine_rows(m.entity, fails, P["external_id"], pks)]
    bad = np.zeros(len(frame), dtype=bool)
    bad[fails["pos"].to_numpy(dtype=np.int64)] = True
    nested: dict[str, jsoncols.Values] = {}
    if spec.regional is not None and regional is not None:
        regions = _map_regions(regional, pks, P, spec.regional, m)
        if regions.failures is not None:
            bad[regions.failures["pos_parent"].to_numpy()] = True
            parts.append(regions.failures.drop(columns="pos_parent"))
        good = np.flatnonzero(~bad)
        rows, offsets = children_under(good, len(frame), regions.parent_pos)
        grouped = jsoncols.arrays(record_texts(regions.fields, REGIONAL_REQUIRED, rows, regions.custom,
                                               checked=regions.frame), offsets)
        # a row without regional entries leaves ``regional_data`` out
        nested["regional_data"] = jsoncols.present_where(grouped, np.diff(offsets) > 0)
    non_empty = [p for p in parts if not p.empty]
    out.quarantine = pd.concat(non_empty, ignore_index=True) if non_empty else empty_quarantine()
    good = np.flatnonzero(~bad)
    texts = record_texts(P, CATALOG_REQUIRED, good, P_cf, nested, checked=pframe)
    out.payloads = payloads(texts, good, P["external_id"], pks)
    ref_column = "product_external_id" if m.sku_like else "categories"
    if ref_column in P:
        out.refs = refs_of(P[ref_column], good)
    return out


@dataclass
class _Regions:
    fields: dict[str, V.Column]
    custom: dict[str, V.Column]
    frame: pd.DataFrame
    parent_pos: np.ndarray
    """Each regional row's parent position."""
    failures: pd.DataFrame | None
    """Quarantine rows for parents with an invalid region (``pos_parent``: the parent's position)."""


def _map_regions(regional: pd.DataFrame, pks: list[Any], P: dict[str, V.Column], spec: ChildSource,
                 m: MappingSpec) -> _Regions:
    """The regional rows of these parents, converted and checked; an invalid region quarantines its parent
    (the field is named ``regional_data.<field>``, the value says which region)."""
    reg = html_decoded(children_of(regional, pks, bool(spec.deleted_flag)), spec)
    R, _ = convert(reg, list(spec.columns), m.tz, m.money_scale)
    R_cf = custom_columns(reg, spec.custom_fields, m)
    rframe = contract_frame({**R, **R_cf}, {"_parent": reg["_parent"].to_numpy(dtype=object)})
    rfails = contract.failures(rframe, contract.catalog_schema(contract.RegionalContract, m.money_scale,
                                                               list(m.custom_fields), list(rframe.columns)))
    parent_pos = parent_positions(pks, reg["_parent"])
    failures = None
    if not rfails.empty:
        rpos = rfails["pos"].to_numpy()
        opos = parent_pos[rpos]
        ids, region_ids = V.pylist(P["external_id"]), V.pylist(R["external_id"])
        failures = pd.DataFrame({
            "entity": m.entity, "external_id": [ids[p] for p in opos.tolist()],
            "source_pk": [pks[p] for p in opos.tolist()], "check": rfails["check"].to_numpy(),
            "field": ["regional_data." + (f or "*") for f in rfails["field"].tolist()],
            "value": [f"{v} (region {region_ids[p]})" for v, p in zip(rfails["value"].tolist(), rpos.tolist())],
            "pos_parent": opos,
        })
    return _Regions(R, R_cf, rframe, parent_pos, failures)
