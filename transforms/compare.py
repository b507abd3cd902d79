"""Field-by-field comparison of a record as altcraft-sync sends it with the same record as Altcraft lists it
(``verify``). Pure functions, no I/O.

Altcraft's list methods return fewer fields than its imports take (api.md §1.1-1.2): ``orders/list`` has
the order fields and the lines, ``products/list`` and ``sku/list`` only ``name`` and ``external_id``.
Only those are compared, each in a canonical form, so that a difference is a difference of value, never
of spelling:

- empty values (absent, ``null``, ``""``, ``[]``, ``{}``) are one value;
- money compares as decimals (``"10"`` = ``"10.00"``); a listed price exactly 100 times the sent one
  also counts as equal, because api.md's list example suggests ``orders/list`` may answer in minor units
  (INFERRED, unverified: both readings are accepted rather than reporting every priced record);
- times compare as instants (``Z`` = ``+00:00``, any number of fraction digits);
- lines are matched by their ``external_id``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from altcraft_sync.catalogue import MONEY_FIELDS, TIME_FIELDS

LISTED_FIELDS: dict[str, frozenset[str]] = {
    "order": frozenset({"external_id", "endpoint", "tags", "status", "delivery_cost", "total_price", "currency",
                        "custom_fields", "region", "create_time", "update_time", "lines"}),
    "product": frozenset({"external_id", "name"}),
    "sku": frozenset({"external_id", "name"}),
}
"""What each list method returns that altcraft-sync also sends (api.md)."""
LISTED_LINE_FIELDS = frozenset({"external_id", "product", "base_price_per_item", "min_price_per_item",
                                "final_price_per_item", "count", "custom_fields"})


def differing_fields(entity: str, sent: dict[str, Any], listed: dict[str, Any]) -> list[str]:
    """The fields (``lines[<id>].<field>`` inside lines) whose values differ, in a stable order."""
    out: list[str] = []
    for name in sorted(LISTED_FIELDS[entity]):
        if name == "lines":
            out += _line_differences(sent.get("lines") or [], listed.get("lines") or [])
        elif not same(name, sent.get(name), listed.get(name)):
            out.append(name)
    return out


def _line_differences(sent: list[dict[str, Any]], listed: list[dict[str, Any]]) -> list[str]:
    theirs = {str(line.get("external_id")): line for line in listed if isinstance(line, dict)}
    ours = {str(line.get("external_id")): line for line in sent}
    out = [f"lines[{ext}]" for ext in sorted(set(ours) ^ set(theirs))]
    for ext in sorted(set(ours) & set(theirs)):
        out += [f"lines[{ext}].{name}" for name in sorted(LISTED_LINE_FIELDS)
                if not same(name, ours[ext].get(name), theirs[ext].get(name))]
    return out


def same(name: str, sent: Any, listed: Any) -> bool:
    """Whether a field's sent and listed values are one value (see the module docstring)."""
    a, b = _empty_to_none(sent), _empty_to_none(listed)
    if a is None or b is None:
        return a is None and b is None
    if name in MONEY_FIELDS or name.endswith("_per_item"):
        return _same_money(a, b)
    if name in TIME_FIELDS:
        x_t, y_t = _instant(a), _instant(b)
        return x_t is not None and x_t == y_t
    return _same_value(a, b)


def _same_money(a: Any, b: Any) -> bool:
    """Equal amounts; a listed amount 100x the sent one is the same (api.md: lists may answer in minor units)."""
    x, y = _decimal(a), _decimal(b)
    return x is not None and y is not None and (x == y or y == x * 100)


def _same_value(a: Any, b: Any) -> bool:
    """Objects field by field, lists and scalars as text, booleans in any case."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(k, a.get(k), b.get(k)) for k in set(a) | set(b))
    if isinstance(a, list) and isinstance(b, list):
        return [str(v) for v in a] == [str(v) for v in b]
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    return a == b or str(a) == str(b)


def _empty_to_none(value: Any) -> Any:
    return None if value is None or value == "" or value == [] or value == {} else value


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def profile_differences(sent: dict[str, Any], listed: dict[str, Any]) -> list[str]:
    """The fields of a profile as sent that Altcraft holds otherwise (``profiles/list`` returns every field).
    A subscription is compared by (channel, resource, address) only: its status and priority are Altcraft's
    (an unsubscribe there is not a difference); e-mails compare without case; fields Altcraft adds (``id``,
    ``db_id``, activity fields) are not ours to compare."""
    out: list[str] = []
    for name in sorted(sent):
        if name == "subscriptions":
            held = {_subscription(s) for s in listed.get("subscriptions") or [] if isinstance(s, dict)}
            out += [f"subscriptions[{s['channel']}]" for s in sent[name] if _subscription(s) not in held]
        elif name == "email":
            if str(sent[name]).lower() != str(listed.get(name) or "").lower():
                out.append(name)
        elif not same("update_time" if name == "_regdate" else name, sent[name], listed.get(name)):
            out.append(name)
    return out


def _subscription(sub: dict[str, Any]) -> tuple[str, str, str]:
    data = sub.get("email_data")
    address = sub.get("email") or (data.get("email") if isinstance(data, dict) else None) or sub.get("phone") or ""
    return str(sub.get("channel")), str(sub.get("resource_id")), str(address).lower()
