"""Altcraft's Market field catalogue: which fields each record takes, which are required, their value kinds
and the enums (``../shared/altcraft/api.md`` §2-§3). Data only: the settings model (:mod:`altcraft_sync.config`)
checks mappings against it, the transforms encode values by it."""

from __future__ import annotations

MONEY_FIELDS = frozenset(
    {"price", "old_price", "delivery_cost", "total_price", "base_price_per_item", "min_price_per_item",
     "final_price_per_item"}
)
INT_FIELDS = frozenset({"count"})
BOOL_FIELDS = frozenset({"is_available", "delivery", "manufacturer_warranty"})
LIST_FIELDS = frozenset({"tags", "pictures", "barcode", "categories"})
TIME_FIELDS = frozenset({"create_time", "update_time"})

CATEGORY_FIELDS = {"external_id": True, "name": True, "parent_external_id": False}
PRODUCT_FIELDS = {
    "external_id": True, "name": True, "price": False, "old_price": False, "currency": False, "tags": False,
    "manufacturer_name": False, "description": False, "url": False, "pictures": False, "count": False,
    "expiration_time": False, "is_available": False, "delivery": False, "barcode": False,
    "manufacturer_warranty": False, "categories": False,
}
SKU_FIELDS = {**PRODUCT_FIELDS, "product_external_id": True}
REGIONAL_FIELDS = {
    "external_id": True, "price": False, "old_price": False, "currency": False, "count": False,
    "is_available": False, "delivery": False,
}
ORDER_FIELDS = {
    # currency and endpoint are required by Altcraft but may come from sync.default_currency / sync.endpoint
    "external_id": True, "status": True, "total_price": True, "currency": False, "endpoint": False,
    "delivery_cost": False, "create_time": False, "update_time": False, "region": False, "tags": False,
}
LINE_FIELDS = {
    "external_id": True, "status": False, "product": True, "final_price_per_item": True, "count": True,
    "base_price_per_item": False, "min_price_per_item": False,
}

ORDER_STATUSES = ("new", "delivered", "paid", "canceled", "part_refunded")
LINE_STATUSES = ("new", "processing", "delivering", "delivered", "canceled", "refunded")
CUSTOM_LINE_STATUS_TYPES = ("delivered", "canceled", "refunded", "in_process")
VALUE_TYPES = ("unicode", "int", "float", "bool", "enum", "date")
ENTITY_TYPES = ("product", "sku", "order", "line_order")

# Which profile fields each matching mode needs in the order object (api.md §3). For the email_phone
# modes either one is enough.
MATCHING_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "email": (("email",),),
    "email_profile": (("email",),),
    "email_sub": (("email",),),
    "phone": (("phone",),),
    "phone_sub": (("phone",),),
    "profile_id": (("profile_id",),),
    "push_sub": (("provider",), ("subscription_id",)),
    "custom": (("field_name",), ("field_value",)),
    "custom_sub": (("field_name",), ("field_value",)),
    "email_phone": (("email", "phone"),),
    "email_phone_sub": (("email", "phone"),),
}

# Altcraft profile fields a customers section may map in ``columns`` (docs/altcraft-profiles.md): system
# fields carry a leading underscore; ``email`` and ``phones`` come from the matching columns. Where the
# docs name a field two ways the documented API name wins: the birthday is ``_bdate`` (no ``_birthday``
# exists), the registration date ``_regdate``.
PROFILE_FIELDS = {
    "_fname": False, "_lname": False, "_bdate": False, "_sex": False, "_city": False, "_regdate": False,
    "_regcity": False, "_regcountry": False, "_country": False, "_region": False, "_postal_code": False,
    "_tz": False, "_vendor": False,
}
PROFILE_DATE_FIELDS = frozenset({"_bdate", "_regdate"})
SEX_VALUES = ("male", "female")
SEX_NUMBERS = {"male": 1, "female": 2}
"""``_sex`` as a number (the Profile data object page types it int; a community client sends 1 / 2)."""
CONSENT_CHANNELS = {"email": "email", "sms": "phone"}
"""Subscription channel -> the matching field whose address it subscribes."""
PROFILE_KEY_FIELDS = ("email", "phone")
"""The matching fields a profile can be keyed by (its ledger id is ``<field>:<value>``)."""


def key_field(mode: str) -> tuple[str, ...]:
    """The profile key fields a matching mode reads (email modes: ``email``; phone modes: ``phone``)."""
    return tuple(f for group in MATCHING_FIELDS.get(mode, ()) for f in group if f in PROFILE_KEY_FIELDS)
