"""What the emulated Altcraft accepts: the enums, the JSON types a typed (Go) decoder would insist on
(whole-request errors), and the per-record checks (per-item errors). Each ``INFERRED`` choice is listed in
:mod:`sandbox.emulator`'s docstring."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sandbox.emulator_store import Account

ORDER_STATUSES = {"new", "delivered", "paid", "canceled", "part_refunded"}
LINE_STATUSES = {"new", "processing", "delivering", "delivered", "canceled", "refunded"}
CUSTOM_LINE_STATUS_TYPES = {"delivered", "canceled", "refunded", "in_process"}
VALUE_TYPES = {"unicode", "int", "float", "bool", "enum", "date"}
ENTITY_TYPES = {"product", "sku", "order", "line_order"}
MATCHING = {
    "email": (("email",),), "email_profile": (("email",),), "email_sub": (("email",),),
    "phone": (("phone",),), "phone_sub": (("phone",),), "profile_id": (("profile_id",),),
    "push_sub": (("provider",), ("subscription_id",)), "custom": (("field_name",), ("field_value",)),
    "custom_sub": (("field_name",), ("field_value",)), "email_phone": (("email", "phone"),),
    "email_phone_sub": (("email", "phone"),),
}
DEFAULT_CURRENCIES = frozenset({"RUB", "USD", "EUR", "KZT", "BYN"})

_PRICE = re.compile(r"\d+(\.\d+)?")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


class ItemError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class RequestError(Exception):
    """The whole request is refused (body ``error`` != 0)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


# --- JSON type decoding (whole-request errors) -------------------------------------------------------
_STR, _INT, _BOOL, _LIST, _OBJ = "string", "integer", "boolean", "array", "object"
_CATALOG_TYPES = {
    "external_id": _STR, "name": _STR, "price": _STR, "old_price": _STR, "currency": _STR, "tags": _LIST,
    "manufacturer_name": _STR, "description": _STR, "url": _STR, "pictures": _LIST, "count": _INT,
    "expiration_time": _STR, "is_available": _BOOL, "delivery": _BOOL, "barcode": _LIST,
    "manufacturer_warranty": _BOOL, "custom_fields": _OBJ, "regional_data": _LIST, "categories": _LIST,
    "product_external_id": _STR, "sku": _LIST,
}
_TYPES = {
    "order": {
        "external_id": _STR, "matching": _STR, "endpoint": _STR, "tags": _LIST, "status": _STR,
        "delivery_cost": _STR, "total_price": _STR, "currency": _STR, "create_time": _STR, "update_time": _STR,
        "custom_fields": _OBJ, "region": _STR, "lines": _LIST,
    },
    "line": {
        "external_id": _STR, "status": _STR, "product": _STR, "base_price_per_item": _STR,
        "min_price_per_item": _STR, "final_price_per_item": _STR, "count": _INT, "custom_fields": _OBJ,
    },
    "product": _CATALOG_TYPES,
    "sku": _CATALOG_TYPES,
}
_PY = {_STR: (str,), _INT: (int,), _BOOL: (bool,), _LIST: (list,), _OBJ: (dict,)}


def type_problem(item: Any, kind: str) -> str:
    """The first JSON type mismatch in a record (``.lines[0].count: cannot decode ...``), or ''."""
    if not isinstance(item, dict):
        return ": cannot decode into an object"
    for key, expected in _TYPES[kind].items():
        value = item.get(key)
        if value is None:
            continue
        ok = isinstance(value, _PY[expected]) and not (expected == _INT and isinstance(value, bool))
        if not ok:
            return f".{key}: cannot decode {type(value).__name__} into {expected}"
    if kind == "order":
        for i, line in enumerate(item.get("lines") or []):
            problem = type_problem(line, "line")
            if problem:
                return f".lines[{i}]{problem}"
    return ""


# --- validation helpers ------------------------------------------------------------------------------
def nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _price(item: dict[str, Any], key: str, required: bool = False, where: str = "") -> None:
    value = item.get(key)
    if value is None:
        if required:
            raise ItemError(400, f"{where}{key} is required")
        return
    if not isinstance(value, str) or not _PRICE.fullmatch(value):
        raise ItemError(400, f"{where}{key} must be a non-negative decimal string, got {value!r}")


def _time(item: dict[str, Any], key: str) -> None:
    value = item.get(key)
    if value is None:
        return
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ItemError(400, f"{key} must be an RFC 3339 time, got {value!r}")
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ItemError(400, f"{key} is not a valid date: {value!r}") from None


def _str_list(item: dict[str, Any], key: str) -> None:
    value = item.get(key)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ItemError(400, f"{key} must be an array of strings")


def check_custom_field_definition(i: int, cf: Any) -> None:
    where = f"incorrect request: custom_fields[{i}]"
    if not isinstance(cf, dict):
        raise RequestError(400, f"{where} must be an object")
    for key in ("external_id", "name"):
        if not nonempty(cf.get(key)):
            raise RequestError(400, f"{where}.{key} is required")
    if cf.get("entity_type") not in ENTITY_TYPES:
        raise RequestError(400, f"{where}.entity_type {cf.get('entity_type')!r} is not one of {sorted(ENTITY_TYPES)}")
    if cf.get("value_type") not in VALUE_TYPES:
        raise RequestError(400, f"{where}.value_type {cf.get('value_type')!r} is not one of {sorted(VALUE_TYPES)}")
    if not isinstance(cf.get("required"), bool):
        raise RequestError(400, f"{where}.required must be a boolean")
    if "default_value" not in cf:
        raise RequestError(400, f"{where}.default_value is required")
    if cf["value_type"] == "enum" and not isinstance(cf.get("enum_values"), dict):
        raise RequestError(400, f"{where}.enum_values is required for value_type enum")


def check_line_status_definition(i: int, st: Any) -> None:
    if not isinstance(st, dict) or not nonempty(st.get("external_id")) or not nonempty(st.get("name")):
        raise RequestError(400, f"incorrect request: custom_line_statuses[{i}] needs external_id and name")
    if st.get("type") not in CUSTOM_LINE_STATUS_TYPES:
        raise RequestError(400, f"incorrect request: custom_line_statuses[{i}].type {st.get('type')!r}")


def check_category_tree(cats: list[Any], known: set[str], need_parents: bool = True) -> None:
    """Every category named, and (``need_parents``) every parent known or sent earlier in the same request."""
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not nonempty(cat.get("external_id")) or not nonempty(cat.get("name")):
            raise RequestError(400, f"incorrect request: categories[{i}] needs external_id and name")
        parent = cat.get("parent_external_id")
        if need_parents and parent not in (None, "") and parent not in known:
            raise RequestError(
                400, f"incorrect request: categories[{i}] parent {parent!r} does not exist (send parents first)"
            )
        known.add(cat["external_id"])


def _custom_values(emu: Account, item: dict[str, Any], entity: str, where: str = "") -> None:
    values = item.get("custom_fields")
    if values is None:
        return
    if not isinstance(values, dict):
        raise ItemError(400, f"{where}custom_fields must be an object")
    for key, value in values.items():
        definition = emu.store.custom_fields.get(key)
        if definition is None or definition["entity_type"] != entity:
            raise ItemError(404, f"{where}custom field {key!r} does not exist for {entity}")
        vt = definition["value_type"]
        ok = {
            "unicode": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "enum": value in (definition.get("enum_values") or {}),
            "date": isinstance(value, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value)),
        }[vt]
        if not ok and value is not None:
            raise ItemError(400, f"{where}custom field {key!r} expects {vt}, got {value!r}")


def _catalog_fields(emu: Account, item: dict[str, Any], entity: str) -> None:
    for key in ("external_id", "name"):
        if not nonempty(item.get(key)):
            raise ItemError(400, f"{key} is required")
    for key in ("price", "old_price"):
        _price(item, key)
    _currency(emu, item.get("currency"))
    _catalog_values(item)
    for cat in item.get("categories") or []:
        if cat not in emu.store.categories:
            raise ItemError(404, f"category {cat!r} does not exist")
    for i, region in enumerate(item.get("regional_data") or []):
        _region(emu, i, region, entity)
    _custom_values(emu, item, entity)


def _currency(emu: Account, currency: Any, where: str = "") -> None:
    if currency is not None and currency not in emu.currencies:
        raise ItemError(400, f"{where}currency {currency!r} is not enabled in the account")


def _catalog_values(item: dict[str, Any]) -> None:
    """Description, count, flags, lists and barcodes: their JSON shapes and ranges."""
    description = item.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 1000):
        raise ItemError(400, "description must be a string of at most 1000 characters")
    count = item.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise ItemError(400, f"count must be a non-negative integer, got {count!r}")
    for key in ("is_available", "delivery", "manufacturer_warranty"):
        if key in item and not isinstance(item[key], bool):
            raise ItemError(400, f"{key} must be a boolean")
    for key in ("tags", "pictures", "categories"):
        _str_list(item, key)
    barcode = item.get("barcode")
    if barcode is not None and (not isinstance(barcode, list) or not all(isinstance(b, (int, str)) for b in barcode)):
        raise ItemError(400, "barcode must be an array")


def _region(emu: Account, i: int, region: Any, entity: str) -> None:
    where = f"regional_data[{i}]."
    if not isinstance(region, dict) or not nonempty(region.get("external_id")):
        raise ItemError(400, f"{where}external_id is required")
    for key in ("price", "old_price"):
        _price(region, key, where=where)
    _currency(emu, region.get("currency"), where)
    _custom_values(emu, region, entity, where=where)


def validate_product(emu: Account, item: dict[str, Any]) -> None:
    _catalog_fields(emu, item, "product")
    for sku in item.get("sku") or []:
        if not isinstance(sku, dict):
            raise ItemError(400, "sku entries must be objects")
        _catalog_fields(emu, sku, "sku")


def validate_sku(emu: Account, item: dict[str, Any]) -> None:
    _catalog_fields(emu, item, "sku")
    parent = item.get("product_external_id")
    if not nonempty(parent):
        raise ItemError(400, "product_external_id is required")
    if parent not in emu.store.products:
        raise ItemError(404, f"product {parent!r} does not exist")


def validate_order(emu: Account, item: dict[str, Any]) -> None:
    for key in ("external_id", "endpoint", "currency"):
        if not nonempty(item.get(key)):
            raise ItemError(400, f"{key} is required")
    if item.get("status") not in ORDER_STATUSES:
        raise ItemError(400, f"status {item.get('status')!r} is not one of {sorted(ORDER_STATUSES)}")
    _currency(emu, item["currency"])
    _matching(item)
    _price(item, "total_price", required=True)
    _price(item, "delivery_cost")
    _time(item, "create_time")
    _time(item, "update_time")
    _str_list(item, "tags")
    if "region" in item and not nonempty(item["region"]):
        raise ItemError(400, "region must be a non-empty string")
    _custom_values(emu, item, "order")
    lines = item.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ItemError(400, "lines must hold at least one line")
    seen: set[str] = set()
    line_statuses = LINE_STATUSES | set(emu.store.custom_line_statuses)
    for i, line in enumerate(lines):
        _line(emu, f"lines[{i}].", line, seen, line_statuses)


def _matching(item: dict[str, Any]) -> None:
    mode = item.get("matching", "email")
    if mode not in MATCHING:
        raise ItemError(400, f"matching {mode!r} is not a matching mode")
    for alternatives in MATCHING[mode]:
        if not any(item.get(k) not in (None, "") for k in alternatives):
            raise ItemError(400, f"matching {mode!r} needs {' or '.join(alternatives)}")


def _line(emu: Account, where: str, line: Any, seen: set[str], line_statuses: set[str]) -> None:
    if not isinstance(line, dict) or not nonempty(line.get("external_id")):
        raise ItemError(400, f"{where}external_id is required")
    if line["external_id"] in seen:
        raise ItemError(400, f"{where}external_id {line['external_id']!r} is duplicated")
    seen.add(line["external_id"])
    if line.get("status") is not None and line["status"] not in line_statuses:
        raise ItemError(400, f"{where}status {line['status']!r} is not a line status")
    product = line.get("product")
    if not nonempty(product):
        raise ItemError(400, f"{where}product is required")
    if emu.require_known_products and product not in emu.store.skus and product not in emu.store.products:
        raise ItemError(404, f"{where}product {product!r} does not exist")
    count = line.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise ItemError(400, f"{where}count must be a positive integer, got {count!r}")
    for key in ("base_price_per_item", "min_price_per_item", "final_price_per_item"):
        _price(line, key, required=key == "final_price_per_item", where=where)
    _custom_values(emu, line, "line_order", where=where)
