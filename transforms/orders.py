"""Orders: order rows + line rows -> ``orders/import`` records with nested ``lines``, and a quarantine.

An order is always sent whole, with every line (docs/altcraft-api.md §5: lines omitted on re-import may be dropped), so
one invalid line quarantines its whole order. Totals are checked in integer minor units: exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from altcraft_sync.keys import canonical_key
from altcraft_sync.sources import OrdersStream
from transforms import contract, jsoncols
from transforms import values as V
from transforms.order_extras import (
    MATCHED,
    change_times,
    choose_matching,
    fractional_counts,
    line_details,
    with_fractional,
)
from transforms.payload import (
    Mapped,
    children_of,
    children_under,
    contract_frame,
    convert,
    custom_columns,
    gc_paused,
    html_decoded,
    map_values,
    parent_positions,
    payloads,
    plain_keys,
    record_texts,
    refs_of,
    split_deleted,
    split_problems,
)
from transforms.profiles import normal_emails, normal_phones, profile_keys
from transforms.quarantine import empty_quarantine, quarantine_rows, with_quarantine
from transforms.spec import MappingSpec

ORDER_REQUIRED = frozenset({"external_id", "status", "total_price", "currency", "endpoint", "lines"})
LINE_REQUIRED = frozenset({"external_id", "status", "product", "final_price_per_item", "count"})


@gc_paused
def map_orders(orders: pd.DataFrame, lines: pd.DataFrame, m: MappingSpec) -> Mapped:
    """Orders with all their lines (``lines`` may hold lines of other orders: only these orders' count)."""
    spec = m.section
    assert isinstance(spec, OrdersStream), "orders are mapped with an orders section"
    out = Mapped(m.entity)
    orders = split_deleted(orders, out)
    orders, problems = split_problems(orders, m.entity, lines)
    out.quarantine = problems
    if orders.empty:
        return out
    order_pks = plain_keys(orders["_pk"])
    orders = html_decoded(orders, spec)
    lines = html_decoded(_lines_of(lines, order_pks, spec), spec.lines)
    lines, fractional = fractional_counts(lines, spec.lines.fractional_count, m.money_scale)
    L, line_minor, line_cf, line_frame = _map_lines(lines, spec, m)
    line_fails = with_fractional(contract.failures(line_frame, contract.line_schema(
        m.money_scale, list(m.custom_line_statuses), list(m.custom_fields), list(line_frame.columns))), fractional, lines)
    O, order_minor, matching, order_cf = _map_order_fields(orders, spec, m)
    parent_pos = parent_positions(order_pks, lines["_parent"])
    order_frame, order_fails = _check_orders(O, order_minor, matching, order_cf, lines, L, line_minor, parent_pos,
                                             spec, m, out)
    invalid, bad = _quarantine(m.entity, O, order_pks, order_fails, L, line_fails, parent_pos)
    out.quarantine = with_quarantine(problems, invalid)
    good = np.flatnonzero(~bad)
    if not len(good):
        return out
    line_rows, offsets = children_under(good, len(orders), parent_pos)
    line_texts = record_texts(L, LINE_REQUIRED, line_rows, line_cf, checked=line_frame)
    sent_matching = {k: v for k, v in matching.items() if k != MATCHED}
    texts = record_texts({**sent_matching, **O}, ORDER_REQUIRED | {"matching"}, good, order_cf,
                         {"lines": jsoncols.arrays(line_texts, offsets)}, checked=order_frame)
    owners = buyer_keys(sent_matching, spec.matching.modes) if m.owner_keys else None
    out.payloads = payloads(texts, good, O["external_id"], order_pks, owners)
    if "product" in L:
        out.refs = refs_of(L["product"], line_rows, offsets)
        out.ref_lines = line_details(lines, L, O["currency"], line_rows, offsets, good)
    if m.change_times:
        out.changed_at = change_times(orders, O, good, m.tz)
    return out


def buyer_keys(matching: dict[str, V.Column], modes: list[str]) -> list[str | None]:
    """Each order's buyer as a profile ledger id (``email:<address>`` / ``phone:<number>``), built exactly as
    the profile streams key their records (:func:`transforms.profiles.profile_keys`); None for an order
    matched by a mode that names no e-mail or phone."""
    email = normal_emails(matching["email"]) if "email" in matching else None
    phone = normal_phones(matching["phone"]) if "phone" in matching else None
    keys: list[str | None] = profile_keys(email, phone, modes, len(matching["matching"])).to_pylist()
    return keys


def _lines_of(lines: pd.DataFrame, order_pks: list[Any], spec: OrdersStream) -> pd.DataFrame:
    """The lines of these orders only, sorted by order then line key; soft-deleted lines leave the order."""
    return children_of(lines, order_pks, bool(spec.lines.deleted_flag))


def _map_lines(lines: pd.DataFrame, spec: OrdersStream,
               m: MappingSpec) -> tuple[dict[str, V.Column], dict[str, np.ndarray], dict[str, V.Column], pd.DataFrame]:
    """Line fields in wire form, their money in minor units, custom fields, and the frame the contract checks."""
    L, line_minor = convert(lines, list(spec.lines.columns), m.tz, m.money_scale)
    L["status"] = (map_values(lines["status"], spec.lines.status_map) if "status" in spec.lines.columns
                   else [spec.lines.default_status] * len(lines))
    line_cf = custom_columns(lines, spec.lines.custom_fields, m)
    line_frame = contract_frame({**L, **line_cf}, {"_parent": lines["_parent"].to_numpy(dtype=object)})
    return L, line_minor, line_cf, line_frame


def _map_order_fields(orders: pd.DataFrame, spec: OrdersStream, m: MappingSpec
                      ) -> tuple[dict[str, V.Column], dict[str, np.ndarray], dict[str, V.Column], dict[str, V.Column]]:
    """Order fields (currency and endpoint from the settings when not mapped), the matching fields, and
    custom fields."""
    O, order_minor = convert(orders, list(spec.columns), m.tz, m.money_scale)
    O["status"] = map_values(orders["status"], spec.status_map)
    n = len(orders)
    if "currency" not in O:
        O["currency"] = [m.default_currency] * n
    if "endpoint" not in O:
        O["endpoint"] = [m.endpoint] * n
    matching: dict[str, V.Column] = {"matching": [spec.matching.mode] * n}
    for fld in spec.matching.columns:  # a phone as its profile has it, so the order finds that profile
        matching[fld] = normal_phones(orders[f"m.{fld}"]) if fld == "phone" else V.strings(orders[f"m.{fld}"])
    for fld, value in spec.matching.constants.items():
        matching[fld] = [value] * n
    if spec.matching.fallback:
        matching = choose_matching(matching, spec.matching.modes)
    return O, order_minor, matching, custom_columns(orders, spec.custom_fields, m)


def _check_orders(O: dict[str, V.Column], order_minor: dict[str, np.ndarray], matching: dict[str, V.Column],
                  order_cf: dict[str, V.Column], lines: pd.DataFrame, L: dict[str, V.Column],
                  line_minor: dict[str, np.ndarray], parent_pos: np.ndarray, spec: OrdersStream, m: MappingSpec,
                  out: Mapped) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The order contract, with each order's total checked in exact minor units against its lines and
    delivery (a mismatch quarantines the order, or only warns with ``sync.total_mismatch: warn``)."""
    n = len(O["external_id"])
    count_int = _whole_counts(lines["count"], L["count"]) if "count" in L else np.zeros(len(lines), dtype=np.int64)
    final_minor = line_minor.get("final_price_per_item", np.zeros(len(lines), dtype=np.int64))
    lines_minor = np.bincount(parent_pos, weights=final_minor * count_int, minlength=n).astype(np.int64)
    n_lines = np.bincount(parent_pos, minlength=n).astype(np.int64)
    delivery_minor = order_minor.get("delivery_cost", np.zeros(n, dtype=np.int64))
    total_minor = order_minor["total_price"]
    order_frame = contract_frame(
        {**O, **{k: v for k, v in matching.items() if k not in ("matching", MATCHED)}, **order_cf},
        {"_n_lines": n_lines, "_lines_minor": lines_minor, "_delivery_minor": delivery_minor, "_total_minor": total_minor,
         **({MATCHED: matching[MATCHED]} if MATCHED in matching else {})},
    )
    total_rule = m.total_mismatch == "quarantine"
    schema = contract.order_schema(m.money_scale, spec.matching.mode,
                                   list(spec.matching.columns) + list(spec.matching.constants),
                                   list(m.custom_fields), list(order_frame.columns), total_rule,
                                   tuple(spec.matching.fallback))
    if not total_rule:
        mismatch = np.flatnonzero(total_minor != lines_minor + delivery_minor)
        if len(mismatch):
            sample = ", ".join(V.pylist(O["external_id"])[i] for i in mismatch[:5].tolist())
            out.warnings.append(f"{len(mismatch)} orders' total_price differs from their lines + delivery (e.g. {sample})")
    fails = contract.failures(order_frame, schema)
    if total_rule and not fails.empty:
        fails = _with_total_values(fails, total_minor, lines_minor, delivery_minor, m.money_scale)
    return order_frame, fails


def _with_total_values(fails: pd.DataFrame, total: np.ndarray, lines: np.ndarray, delivery: np.ndarray,
                       scale: int) -> pd.DataFrame:
    """A failed total check names the amounts it compared (a frame-wide check has no value of its own), so
    the quarantine shows what to fix: ``total_price 105.00, lines 100.00 + delivery 0.00``."""
    hit = (fails["check"] == contract.TOTAL_CHECK).to_numpy()
    if not hit.any():
        return fails
    fields, values = fails["field"].tolist(), fails["value"].tolist()  # object lists: None stays None
    for i, p in zip(np.flatnonzero(hit).tolist(), fails["pos"].to_numpy()[hit].tolist()):
        fields[i] = "total_price"
        values[i] = (f"total_price {_amount(total[p], scale)}, lines {_amount(lines[p], scale)} + "
                     f"delivery {_amount(delivery[p], scale)}")
    return fails.assign(field=pd.Series(fields, index=fails.index, dtype=object),
                        value=pd.Series(values, index=fails.index, dtype=object))


def _amount(minor: int, scale: int) -> str:
    """Minor units as a decimal text, exactly (no float)."""
    sign, units = ("-" if minor < 0 else ""), abs(int(minor))
    whole, frac = divmod(units, 10 ** scale)
    return f"{sign}{whole}.{frac:0{scale}d}" if scale else f"{sign}{whole}"


def _quarantine(entity: str, O: dict[str, V.Column], order_pks: list[Any], order_fails: pd.DataFrame,
                L: dict[str, V.Column], line_fails: pd.DataFrame, parent_pos: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Quarantine rows of invalid orders and of orders with an invalid line (named ``lines.<field>``),
    and the mask of orders not to send."""
    parts = [quarantine_rows(entity, order_fails, O["external_id"], order_pks)]
    bad = np.zeros(len(order_pks), dtype=bool)
    bad[order_fails["pos"].to_numpy()] = True
    if not line_fails.empty:
        lpos = line_fails["pos"].to_numpy()
        opos = parent_pos[lpos]
        bad[opos] = True
        line_ids, order_ids = V.pylist(L["external_id"]), V.pylist(O["external_id"])
        line_ext = [line_ids[p] for p in lpos.tolist()]
        parts.append(pd.DataFrame({
            "entity": entity,
            "external_id": [order_ids[p] for p in opos.tolist()],
            "source_pk": pd.Series([canonical_key(order_pks[p]) for p in opos.tolist()], dtype=object),
            "check": line_fails["check"].to_numpy(),
            "field": ["lines." + (f or "*") for f in line_fails["field"].tolist()],
            "value": [f"{v} (line {e})" if v is not None else f"line {e}"
                      for v, e in zip(line_fails["value"].tolist(), line_ext)],
        }))
    non_empty = [p for p in parts if not p.empty]
    return (pd.concat(non_empty, ignore_index=True) if non_empty else empty_quarantine()), bad


def _whole_counts(source: pd.Series, converted: list[Any]) -> np.ndarray:
    """Line counts as int64 for the order total (a count the contract rejects counts 0: its order is
    quarantined anyway). An integer source column is taken as it is; anything else value by value."""
    if pd.api.types.is_integer_dtype(source.dtype) and not source.hasnans:
        return source.to_numpy(dtype=np.int64)
    return np.array([c if isinstance(c, int) else 0 for c in converted], dtype=np.int64)
