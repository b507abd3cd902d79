"""pandera schemas: the contract every record meets before it is sent to Altcraft.

Written from ``docs/altcraft-api.md`` §2 (data objects), §3 (matching) and §4 (enums). The frames
checked here hold the values exactly as they will be sent (prices already as strings, times as RFC 3339),
so a failure names the field and shows the offending value as Altcraft would have received it.

Validation is lazy (every failure of every row is collected) and never raises to the caller:
:func:`failures` turns pandera's ``failure_cases`` into quarantine rows, and the transforms send the rest.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from altcraft_sync.catalogue import LINE_STATUSES, MATCHING_FIELDS, ORDER_STATUSES
from altcraft_sync.config import CustomField
from transforms.checks import (
    CURRENCY,
    DESCRIPTION_MAX,
    EMAIL,
    PRICE_DIGITS,
    RFC3339,
    Text,
    any_int,
    boolean,
    matches,
    no_controls,
    non_empty,
    number,
    positive_int,
    price_pattern,
    str_matches,
    text,
    unique_within,
)


class CategoryContract(pa.DataFrameModel):
    external_id: Series[Text] = pa.Field(unique=True, str_length={"min_value": 1})
    name: Series[Text] = pa.Field(str_length={"min_value": 1})
    parent_external_id: Series[Text] | None = pa.Field(nullable=True, str_length={"min_value": 1})

    @pa.dataframe_check(error="category is not its own parent", ignore_na=False)
    def not_own_parent(cls, df: pd.DataFrame) -> pd.Series:
        if "parent_external_id" not in df:
            return pd.Series(True, index=df.index)
        return df["parent_external_id"].isna() | (df["parent_external_id"] != df["external_id"])

    class Config:
        strict = False


class CatalogContract(pa.DataFrameModel):
    """Product data object (docs/altcraft-api.md §2.2); SKUs add ``product_external_id``."""

    external_id: Series[Text] = pa.Field(unique=True, str_length={"min_value": 1})
    name: Series[Text] = pa.Field(str_length={"min_value": 1})
    price: Series[Text] | None = pa.Field(nullable=True)
    old_price: Series[Text] | None = pa.Field(nullable=True)
    currency: Series[Text] | None = pa.Field(nullable=True, str_length={"min_value": 1})
    description: Series[Text] | None = pa.Field(nullable=True, str_length={"max_value": DESCRIPTION_MAX})
    url: Series[Text] | None = pa.Field(nullable=True)
    expiration_time: Series[Text] | None = pa.Field(nullable=True)
    count: Series[object] | None = pa.Field(nullable=True)
    is_available: Series[object] | None = pa.Field(nullable=True)
    delivery: Series[object] | None = pa.Field(nullable=True)
    manufacturer_warranty: Series[object] | None = pa.Field(nullable=True)

    @pa.check("currency", error="ISO 4217 currency code (three uppercase letters)")
    def _currency(cls, s: pd.Series) -> pd.Series:
        return matches(CURRENCY)(s)

    @pa.check("count", error="integer")
    def _count(cls, s: pd.Series) -> pd.Series:
        return any_int(s)  # api.md: stock is an int, no sign rule; "negative is 0 available" is the mapping's

    @pa.check("expiration_time", error=r"str_matches('^[0-9]+$')")
    def _expiration(cls, s: pd.Series) -> pd.Series:
        return matches(r"^[0-9]+$")(s)

    @pa.check("is_available", "delivery", "manufacturer_warranty", error="boolean")
    def _bools(cls, s: pd.Series) -> pd.Series:
        return boolean(s)

    class Config:
        strict = False


class SkuContract(CatalogContract):
    product_external_id: Series[Text] = pa.Field(str_length={"min_value": 1})


class RegionalContract(pa.DataFrameModel):
    """One ``regional_data`` entry: a region's price, stock and availability for a SKU/product."""

    external_id: Series[Text] = pa.Field(str_length={"min_value": 1})
    price: Series[Text] | None = pa.Field(nullable=True)
    old_price: Series[Text] | None = pa.Field(nullable=True)
    currency: Series[Text] | None = pa.Field(nullable=True, str_length={"min_value": 1})
    count: Series[object] | None = pa.Field(nullable=True)
    is_available: Series[object] | None = pa.Field(nullable=True)
    delivery: Series[object] | None = pa.Field(nullable=True)

    @pa.check("currency", error="ISO 4217 currency code (three uppercase letters)")
    def _currency(cls, s: pd.Series) -> pd.Series:
        return matches(CURRENCY)(s)

    @pa.check("count", error="integer")
    def _count(cls, s: pd.Series) -> pd.Series:
        return any_int(s)  # api.md: stock is an int, no sign rule; "negative is 0 available" is the mapping's

    @pa.check("is_available", "delivery", error="boolean")
    def _bools(cls, s: pd.Series) -> pd.Series:
        return boolean(s)

    @pa.dataframe_check(error="one entry per region", ignore_na=False)
    def _unique_region(cls, df: pd.DataFrame) -> pd.Series:
        return unique_within(df, "_parent", "external_id")

    class Config:
        strict = False


class OrderContract(pa.DataFrameModel):
    """Order data object (docs/altcraft-api.md §2.1)."""

    external_id: Series[Text] = pa.Field(unique=True, str_length={"min_value": 1})
    status: Series[Text] = pa.Field(isin=list(ORDER_STATUSES))
    total_price: Series[Text]
    delivery_cost: Series[Text] | None = pa.Field(nullable=True)
    currency: Series[Text] = pa.Field(str_length={"min_value": 1})
    endpoint: Series[Text] = pa.Field(str_length={"min_value": 1})
    create_time: Series[Text] | None = pa.Field(nullable=True)
    update_time: Series[Text] | None = pa.Field(nullable=True)
    region: Series[Text] | None = pa.Field(nullable=True, str_length={"min_value": 1})
    n_lines: Series[int] = pa.Field(gt=0, alias="_n_lines")

    @pa.check("currency", error="ISO 4217 currency code (three uppercase letters)")
    def _currency(cls, s: pd.Series) -> pd.Series:
        return matches(CURRENCY)(s)

    @pa.check("create_time", "update_time", error=f"str_matches('{RFC3339}')")
    def _times(cls, s: pd.Series) -> pd.Series:
        return matches(RFC3339)(s)

    class Config:
        strict = False


class LineContract(pa.DataFrameModel):
    """Order line (docs/altcraft-api.md §2.1 lines; the sub-table was cut off, fields from the examples)."""

    external_id: Series[Text] = pa.Field(str_length={"min_value": 1})
    status: Series[Text]
    product: Series[Text] = pa.Field(str_length={"min_value": 1})
    final_price_per_item: Series[Text]
    base_price_per_item: Series[Text] | None = pa.Field(nullable=True)
    min_price_per_item: Series[Text] | None = pa.Field(nullable=True)
    count: Series[object]

    @pa.check("count", error="positive integer")
    def _count(cls, s: pd.Series) -> pd.Series:
        return positive_int(s)  # a missing count fails the column's own not-null check

    @pa.dataframe_check(error="line external_id unique within its order", ignore_na=False)
    def _unique_in_order(cls, df: pd.DataFrame) -> pd.Series:
        return unique_within(df, "_parent", "external_id")

    class Config:
        strict = False


S = TypeVar("S", bound=Callable[..., pa.DataFrameSchema])


def _memoized(build: S) -> S:
    """Build a schema once per distinct set of arguments: every chunk of a run asks for the same one, and
    building it (``to_schema`` deep-copies the model's columns) cost ~0.5 us an order. The key is the
    arguments' ``repr``, which for the config models lists every field; validation never mutates a schema."""
    cache: dict[str, pa.DataFrameSchema] = {}

    @functools.wraps(build)
    def get(*args: object) -> pa.DataFrameSchema:
        key = repr(args)
        schema = cache.get(key)
        if schema is None:
            if len(cache) >= 64:  # a process sees a handful of configs; never grow without bound
                cache.clear()
            schema = cache[key] = build(*args)
        return schema

    return get  # type: ignore[return-value]


def _with_text_rules(schema: pa.DataFrameSchema, name_max: int | None = None) -> pa.DataFrameSchema:
    """``name``: at most ``name_max`` characters (api.md documents no bound: ``sync.max_name_length``)."""
    col = schema.columns.get("name")
    if col is None or not name_max:
        return schema
    label = f"at most {name_max} characters (sync.max_name_length)"
    return schema.update_columns({"name": {"checks": [*col.checks, pa.Check.str_length(max_value=name_max,
                                                                                           error=label)]}})


@_memoized
def category_schema(name_max: int) -> pa.DataFrameSchema:
    return _with_text_rules(CategoryContract.to_schema(), name_max)


def _with_prices(schema: pa.DataFrameSchema, fields: list[str], scale: int) -> pa.DataFrameSchema:
    check = str_matches(price_pattern(scale), f"non-negative decimal, at most {scale} places, "
                                              f"{PRICE_DIGITS} digits before the point")
    updates = {f: {"checks": [check]} for f in fields if f in schema.columns}
    return schema.update_columns(updates) if updates else schema


def _with_custom(schema: pa.DataFrameSchema, definitions: list[CustomField], present: list[str]) -> pa.DataFrameSchema:
    """Add one column per mapped custom field, checked against its ``value_type``."""
    columns = {}
    for cf in definitions:
        name = f"cf.{cf.external_id}"
        if name not in present:
            continue
        if cf.value_type == "int":
            check = pa.Check(any_int, name="int custom field")
        elif cf.value_type == "float":
            check = pa.Check(number, name="float custom field")
        elif cf.value_type == "bool":
            check = pa.Check(boolean, name="bool custom field")
        elif cf.value_type == "enum":
            check = pa.Check.isin(list((cf.enum_values or {}).keys()), error="enum custom field")
        elif cf.value_type == "date":
            check = str_matches(RFC3339, "date custom field")
        else:
            check = pa.Check(text, name="unicode custom field")
        columns[name] = pa.Column(object, checks=[check], nullable=not cf.required, required=True)
    return schema.add_columns(columns) if columns else schema


@_memoized
def order_schema(scale: int, matching_mode: str, matching_fields: list[str], custom: list[CustomField],
                 present: list[str], total_rule: bool, fallback: tuple[str, ...] = ()) -> pa.DataFrameSchema:
    """The order contract. With ``fallback`` modes the mapper has chosen each order's mode
    (``order_extras.choose_matching``): the contract only asks that one could be chosen."""
    schema = _with_prices(OrderContract.to_schema(), ["total_price", "delivery_cost"], scale)
    schema = _with_custom(schema, custom, present)
    extra = _matching_checks(matching_mode, matching_fields) if not fallback else [
        _matched_check([matching_mode, *fallback])]
    if total_rule:
        extra.append(pa.Check(
            lambda df: df["_total_minor"] == df["_lines_minor"] + df["_delivery_minor"],
            name=TOTAL_CHECK, ignore_na=False))
    with_rules = copy.copy(schema)  # pandera has no public "add frame checks"; the attribute is documented
    with_rules.checks = list(schema.checks) + extra
    return with_rules


def _matched_check(modes: list[str]) -> pa.Check:
    needs = "; ".join(f"{m!r} needs {' and '.join(' or '.join(g) for g in MATCHING_FIELDS[m])}" for m in modes)
    return pa.Check(lambda df: df["_matched"].astype(bool), ignore_na=False,
                    name=f"matching: no mode can be used ({needs}; an email must be an address)")


def _matching_checks(matching_mode: str, matching_fields: list[str]) -> list[pa.Check]:
    """One mode: each of its field groups has a value, and an e-mail is an address."""
    alternatives = MATCHING_FIELDS[matching_mode]
    extra: list[pa.Check] = []
    for group in alternatives:
        cols = [c for c in group if c in matching_fields]

        def has_any(df: pd.DataFrame, cols: list[str] = cols) -> pd.Series:
            ok = pd.Series(False, index=df.index)
            for c in cols:
                ok |= non_empty(df[c])
            return ok

        extra.append(pa.Check(has_any, name=f"matching {matching_mode!r} needs {' or '.join(group)}", ignore_na=False))
    if "email" in matching_fields:
        email = matches(EMAIL)
        extra.append(pa.Check(lambda df: email(df["email"]), name="email is an address", ignore_na=False))
    return extra


@_memoized
def line_schema(scale: int, custom_statuses: list[str], custom: list[CustomField], present: list[str]) -> pa.DataFrameSchema:
    schema = _with_prices(LineContract.to_schema(),
                          ["final_price_per_item", "base_price_per_item", "min_price_per_item"], scale)
    allowed = list(LINE_STATUSES) + custom_statuses
    schema = schema.update_column("status", checks=[pa.Check.isin(allowed, error=f"isin({allowed})")])
    return _with_custom(schema, custom, present)


@_memoized
def catalog_schema(
    model: type[pa.DataFrameModel], scale: int, custom: list[CustomField], present: list[str], name_max: int = 0,
) -> pa.DataFrameSchema:
    schema = _with_prices(_with_text_rules(model.to_schema(), name_max), ["price", "old_price"], scale)
    return _with_custom(schema, custom, present)


_NO_FAILURES = pd.DataFrame({"pos": pd.Series([], dtype="int64"), "check": pd.Series([], dtype=object),
                             "field": pd.Series([], dtype=object), "value": pd.Series([], dtype=object)})


CONTROLS = "no NUL or control characters"


TOTAL_CHECK = "total_price = sum(final_price_per_item x count) + delivery_cost"
"""The order total's check (its failures get the compared amounts as their value, :mod:`transforms.orders`)."""


def failures(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Validate lazily; one row per (row position, failed check): ``pos, check, field, value``. Besides
    the schema, every text column of the frame (mapped or custom field) is checked for NUL and control
    characters (:func:`control_failures`).

    A failure pandera cannot tie to a row (a missing column, a wrong dtype) is a bug in the transform,
    not bad data, and is raised.
    """
    if frame.empty:
        return _NO_FAILURES.copy()
    found = [f for f in (_schema_failures(frame, schema), control_failures(frame)) if not f.empty]
    if not found:
        return _NO_FAILURES.copy()
    return found[0] if len(found) == 1 else pd.concat(found, ignore_index=True)


def control_failures(frame: pd.DataFrame) -> pd.DataFrame:
    """A failure row for each text value holding NUL or another control character (a database keeps
    them; no Altcraft field is meant to, and a NUL cuts a string short in many systems)."""
    parts = []
    for name in frame.columns:
        if name.startswith("_") or not isinstance(frame[name].dtype, pd.StringDtype):
            continue
        ok = no_controls(frame[name]).to_numpy(dtype=bool)
        if ok.all():
            continue
        pos = np.flatnonzero(~ok)
        parts.append(pd.DataFrame({"pos": pos, "check": CONTROLS, "field": name,
                                   "value": [_short(repr(v)) for v in frame[name].iloc[pos].tolist()]}))
    return pd.concat(parts, ignore_index=True) if parts else _NO_FAILURES


def _schema_failures(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    empty = _NO_FAILURES.copy()
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        unbound = fc[fc["index"].isna()]
        if not unbound.empty:
            first = unbound.iloc[0]
            raise RuntimeError(f"contract cannot check column {first['column']!r}: {first['check']}") from None
        frame_level = fc["schema_context"] == "DataFrameSchema"
        out = pd.DataFrame({
            "pos": frame.index.get_indexer(fc["index"]),
            "check": fc["check"].astype(str).to_numpy(),
            "field": np.where(frame_level, None, fc["column"].astype(str)),
            "value": fc["failure_case"].map(_short).to_numpy(),
        })
        # a frame-level check reports every column of the row: keep the row once
        out.loc[frame_level.to_numpy(), "value"] = None
        return out.drop_duplicates(["pos", "check", "field"]).reset_index(drop=True)
    return empty


def _short(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."
