"""Orders: order rows + line rows -> ``orders/import`` records with nested ``lines``, and a quarantine.

An order is always sent whole, with every line (api.md §5: lines omitted on re-import may be dropped), so
one invalid line quarantines its whole order. Totals are checked in integer minor units: exact.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from altcraft_sync.config import Config
from altcraft_sync.sources import OrdersStream
from transforms import contract, jsoncols
from transforms import values as V
from transforms.payload import (
    Mapped,
    children_under,
    contract_frame,
    convert,
    deleted_mask,
    empty_quarantine,
    gc_paused,
    map_values,
    parent_positions,
    payloads,
    plain_keys,
    quarantine_rows,
    record_texts,
    refs_of,
    sort_children,
    split_deleted,
)

ORDER_REQUIRED = frozenset({"external_id", "status", "total_price", "currency", "endpoint", "lines"})
LINE_REQUIRED = frozenset({"external_id", "status", "product", "final_price_per_item", "count"})


@gc_paused
def map_orders(orders: pd.DataFrame, lines: pd.DataFrame, config: Config) -> Mapped:
    spec = config.streams.section("orders")
    assert isinstance(spec, OrdersStream), "orders are mapped with an orders section"
    sync, tz, scale = config.sync, ZoneInfo(config.source.timezone), config.sync.money_scale
    out = Mapped("order")
    orders = split_deleted(orders, out)
    if orders.empty:
        return out

    order_pks = plain_keys(orders["_pk"])
    # lines of these orders only, sorted by order then line key; soft-deleted lines leave the order
    lines = lines[lines["_parent"].isin(order_pks)]
    if spec.lines.deleted_flag and not lines.empty:
        lines = lines[~deleted_mask(lines)]
    lines = sort_children(lines)

    # --- lines ---------------------------------------------------------------------------------------
    line_fields = list(spec.lines.columns)
    L, line_minor = convert(lines, line_fields, tz, scale)
    L["status"] = (map_values(lines["status"], spec.lines.status_map) if "status" in spec.lines.columns
                   else [spec.lines.default_status] * len(lines))
    line_cf = _custom(lines, spec.lines.custom_fields, config, tz)
    line_parent = lines["_parent"].to_numpy(dtype=object)
    line_frame = contract_frame({**L, **line_cf}, {"_parent": line_parent})
    custom_statuses = [s.external_id for s in config.custom_line_statuses]
    line_fails = contract.failures(line_frame, contract.line_schema(scale, custom_statuses, config.custom_fields,
                                                                      list(line_frame.columns)))

    # --- orders --------------------------------------------------------------------------------------
    order_fields = list(spec.columns)
    O, order_minor = convert(orders, order_fields, tz, scale)
    O["status"] = map_values(orders["status"], spec.status_map)
    n = len(orders)
    if "currency" not in O:
        O["currency"] = [sync.default_currency] * n
    if "endpoint" not in O:
        O["endpoint"] = [sync.endpoint] * n
    matching: dict[str, V.Column] = {"matching": [spec.matching.mode] * n}
    for fld in spec.matching.columns:
        matching[fld] = V.strings(orders[f"m.{fld}"])
    for fld, value in spec.matching.constants.items():
        matching[fld] = [value] * n
    order_cf = _custom(orders, spec.custom_fields, config, tz)

    count_int = _whole_counts(lines["count"], L["count"]) if "count" in L else np.zeros(len(lines), dtype=np.int64)
    final_minor = line_minor.get("final_price_per_item", np.zeros(len(lines), dtype=np.int64))
    parent_pos = parent_positions(order_pks, lines["_parent"])
    lines_minor = np.bincount(parent_pos, weights=final_minor * count_int, minlength=n).astype(np.int64)
    n_lines = np.bincount(parent_pos, minlength=n).astype(np.int64)
    delivery_minor = order_minor.get("delivery_cost", np.zeros(n, dtype=np.int64))
    total_minor = order_minor["total_price"]
    order_frame = contract_frame(
        {**O, **{k: v for k, v in matching.items() if k != "matching"}, **order_cf},
        {"_n_lines": n_lines, "_lines_minor": lines_minor, "_delivery_minor": delivery_minor, "_total_minor": total_minor},
    )
    total_rule = sync.total_mismatch == "quarantine"
    schema = contract.order_schema(scale, spec.matching.mode, list(spec.matching.columns) + list(spec.matching.constants),
                                   config.custom_fields, list(order_frame.columns), total_rule)
    order_fails = contract.failures(order_frame, schema)
    if not total_rule:
        mismatch = np.flatnonzero(total_minor != lines_minor + delivery_minor)
        if len(mismatch):
            sample = ", ".join(V.pylist(O["external_id"])[i] for i in mismatch[:5].tolist())
            out.warnings.append(f"{len(mismatch)} orders' total_price differs from their lines + delivery (e.g. {sample})")

    # --- quarantine: invalid orders and orders with an invalid line ----------------------------------
    parts = [quarantine_rows("order", order_fails, O["external_id"], order_pks)]
    bad = np.zeros(n, dtype=bool)
    bad[order_fails["pos"].to_numpy()] = True
    if not line_fails.empty:
        lpos = line_fails["pos"].to_numpy()
        opos = parent_pos[lpos]
        bad[opos] = True
        line_ids, order_ids = V.pylist(L["external_id"]), V.pylist(O["external_id"])
        line_ext = [line_ids[p] for p in lpos.tolist()]
        parts.append(
            pd.DataFrame(
                {
                    "entity": "order",
                    "external_id": [order_ids[p] for p in opos.tolist()],
                    "source_pk": [order_pks[p] for p in opos.tolist()],
                    "check": line_fails["check"].to_numpy(),
                    "field": ["lines." + (f or "*") for f in line_fails["field"].tolist()],
                    "value": [
                        f"{v} (line {e})" if v is not None else f"line {e}"
                        for v, e in zip(line_fails["value"].tolist(), line_ext)
                    ],
                }
            )
        )
    out.quarantine = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else empty_quarantine()
    )

    # --- records for the valid orders ---------------------------------------------------------------
    good = np.flatnonzero(~bad)
    if not len(good):
        return out
    line_rows, offsets = children_under(good, n, parent_pos)
    line_texts = record_texts(L, LINE_REQUIRED, line_rows, line_cf, checked=line_frame)
    texts = record_texts({**matching, **O}, ORDER_REQUIRED | {"matching"}, good, order_cf,
                         {"lines": jsoncols.arrays(line_texts, offsets)}, checked=order_frame)
    out.payloads = payloads(texts, good, O["external_id"], order_pks)
    if "product" in L:
        out.refs = refs_of(L["product"], line_rows, offsets)
    return out


def _custom(frame: pd.DataFrame, mapping: dict[str, str], config: Config, tz: ZoneInfo) -> dict[str, V.Column]:
    types = {cf.external_id: cf.value_type for cf in config.custom_fields}
    return {f"cf.{cf_id}": V.custom_value(frame[f"cf.{cf_id}"], types[cf_id], tz) for cf_id in mapping}


def _whole_counts(source: pd.Series, converted: list[Any]) -> np.ndarray:
    """Line counts as int64 for the order total (a count the contract rejects counts 0: its order is
    quarantined anyway). An integer source column is taken as it is; anything else value by value."""
    if pd.api.types.is_integer_dtype(source.dtype) and not source.hasnans:
        return source.to_numpy(dtype=np.int64)
    return np.array([c if isinstance(c, int) else 0 for c in converted], dtype=np.int64)
