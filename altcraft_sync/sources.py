"""How one stream's rows are found in the shop: a table (with column names) or a SELECT, its key and
cursor column, and the children nested into its records. The settings models of ``streams.*`` in the YAML;
each stream spec (:mod:`altcraft_sync.streams`) names the model its section is validated with."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from altcraft_sync.catalogue import CONSENT_CHANNELS, MATCHING_FIELDS, SEX_VALUES, key_field
from altcraft_sync.cursor import CF_PREFIX, CONSENT_PREFIX, MATCH_PREFIX, PRODUCT_NAME


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TableSource(_Model):
    """Where one entity's rows come from: a table (with column names) or a SELECT the user wrote."""

    table: str | None = None
    db_schema: str | None = Field(default=None, alias="schema")
    query: str | None = None
    primary_key: str
    updated_at: str | None = None
    """The column that moves when a row changes. Without one the stream (or child) is read in full every
    run, by key, and only what the ledger's fingerprints say changed is sent; deletes are found in the
    same pass. A child without one is read only with its parent."""
    deleted_flag: str | None = None
    columns: dict[str, str]
    custom_fields: dict[str, str] = Field(default_factory=dict)
    html_unescape: list[str] = Field(default_factory=list)
    """Altcraft fields, custom field ids (or ``product_name`` of order lines) whose text the shop stores
    HTML-escaped (OpenCart's ``Laptops &amp; Notebooks``): decoded (``html.unescape``) before the contract."""

    @model_validator(mode="after")
    def _one_source(self) -> TableSource:
        if bool(self.table) == bool(self.query):
            raise ValueError("set exactly one of 'table' or 'query'")
        return self

    def source_name(self) -> str:
        return self.table or "query"

    def extra_columns(self) -> list[tuple[str, str, str]]:
        """Columns read besides ``columns`` and ``custom_fields``: (setting path under the section, column,
        the label the source frame gives it)."""
        return []


class ChildSource(TableSource):
    """Rows nested into a parent record (order lines, SKU regional data). A change in a child row makes
    its parent eligible for sync, even when the parent's own ``updated_at`` did not move."""

    parent_key: str


class LinesSource(ChildSource):
    status_map: dict[str, str] = Field(default_factory=dict)
    default_status: str | None = None
    """Line status for shops that keep none per line (used when ``columns.status`` is not mapped)."""
    product_name: str | None = None
    """The column holding the product's name as the order line keeps it. When the product a line names
    will never reach Altcraft (deleted in the shop, refused for good), an unavailable stand-in product is
    made of this name and the line's price; without it, the stand-in is named by its id."""
    fractional_count: Literal["quarantine", "whole_line"] = "quarantine"
    """A line quantity that is not a whole number (goods sold by weight): Altcraft's line ``count`` is an
    integer. ``quarantine`` (default) holds the order back with that reason; ``whole_line`` sends the line
    as ``count: 1`` with each per-item price multiplied by the quantity (rounded half-up to
    ``sync.money_scale``), so the line still carries what it cost."""

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return [("product_name", self.product_name, PRODUCT_NAME)] if self.product_name else []


class CatalogStream(TableSource):
    regional: ChildSource | None = None


class Matching(_Model):
    """Profile matching (orders, profiles): the mode, the modes to fall back on, and where each field they
    need comes from. Each record is matched by the first of ``mode``, ``fallback...`` whose fields it has (a
    phone-only order by ``phone`` when the e-mail is missing)."""

    mode: str = "email"
    fallback: list[str] = Field(default_factory=list)
    columns: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_for_mode(self) -> Matching:
        have = set(self.columns) | set(self.constants)
        for where, mode in [("", self.mode), *((f"fallback.{i}: ", m) for i, m in enumerate(self.fallback))]:
            if mode not in MATCHING_FIELDS:
                raise ValueError(f"{where}mode {mode!r} is not one of {', '.join(MATCHING_FIELDS)}")
            for alternatives in MATCHING_FIELDS[mode]:
                if not have.intersection(alternatives):
                    raise ValueError(f"{where}mode {mode!r} needs field {' or '.join(alternatives)!r} in "
                                     "columns or constants")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("fallback: a mode is listed twice")
        return self

    @property
    def modes(self) -> list[str]:
        """The modes in the order they are tried."""
        return [self.mode, *self.fallback]

    @property
    def fields(self) -> list[str]:
        """Every matching field mapped (columns, then constants)."""
        return list(self.columns) + list(self.constants)

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return [(f"matching.columns.{fld}", column, MATCH_PREFIX + fld) for fld, column in self.columns.items()]


class OrdersStream(TableSource):
    status_map: dict[str, str] = Field(default_factory=dict)
    matching: Matching = Field(default_factory=Matching)
    lines: LinesSource

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return self.matching.extra_columns()


class ProfilesStream(TableSource):
    """People as Altcraft profiles (registered customers, or the guest buyers of orders without an account):
    ``profiles/import_batch`` into database ``db_id``. ``columns`` maps profile fields (``_fname``, ...); the
    e-mail and phone come from the matching columns and key the profile (docs/altcraft-profiles.md)."""

    columns: dict[str, str] = Field(default_factory=dict)
    db_id: int = Field(ge=1)
    """The profile database of the sales channel whose touchpoint the orders name."""
    matching: Matching = Field(default_factory=lambda: Matching(mode="email", columns={"email": "email"}))
    resource_id: int | None = Field(default=None, ge=1)
    """The resource (mailing source) consenting people are subscribed to."""
    consent: dict[str, str] = Field(default_factory=dict)
    """Channel (``email``, ``sms``) -> the shop column that says the person agreed to it. A person gets that
    subscription only when the column is true; without a column, nobody gets one."""
    withdrawn_consent: Literal["keep", "unsubscribe"] = "keep"
    """What a consent column that is false (not NULL) sends. ``keep``: nothing, so the subscription stays as
    Altcraft has it. ``unsubscribe``: the subscription with ``status: unsubscribed``, so a consent withdrawn
    in the shop stops the mailings; the shop's column then decides, also over a subscription the person made
    in Altcraft's own forms, whenever their row is sent. Map "never asked" as NULL: it never sends a status."""
    profile_fields: dict[str, str] = Field(default_factory=dict)
    """Custom profile fields (named as created in the Altcraft database, no leading underscore) -> column."""
    sex_map: dict[str, str] = Field(default_factory=dict)
    """Shop values of ``_sex`` -> ``male`` / ``female``; other values leave the field out."""
    sex_format: Literal["text", "number"] = "text"
    """``_sex`` as ``"male"``/``"female"`` (the field types page) or 1 / 2 (the data object page types it
    int): the docs disagree, so it is a setting."""

    @model_validator(mode="after")
    def _profile_rules(self) -> ProfilesStream:
        for mode in self.matching.modes:
            if not key_field(mode):
                raise ValueError(f"matching.mode {mode!r}: profiles are matched by e-mail or phone modes only")
        for channel in self.consent:
            if channel not in CONSENT_CHANNELS:
                raise ValueError(f"consent.{channel}: not a channel ({', '.join(CONSENT_CHANNELS)})")
            if CONSENT_CHANNELS[channel] not in self.matching.columns:
                raise ValueError(f"consent.{channel}: map matching.columns.{CONSENT_CHANNELS[channel]} (the address)")
        if self.withdrawn_consent == "unsubscribe" and not self.consent:
            raise ValueError("withdrawn_consent: unsubscribe needs a consent column to read the withdrawal from")
        if self.consent and self.resource_id is None:
            raise ValueError("resource_id: consent is mapped, so subscriptions need the resource to go to")
        for name in self.profile_fields:
            if name.startswith("_") or name in ("email", "phones", "subscriptions"):
                raise ValueError(f"profile_fields.{name}: a custom field name (system fields go in columns)")
        for shop, value in self.sex_map.items():
            if value not in SEX_VALUES:
                raise ValueError(f"sex_map.{shop}: {value!r} is not one of {', '.join(SEX_VALUES)}")
        return self

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return [*self.matching.extra_columns(),
                *((f"consent.{ch}", col, CONSENT_PREFIX + ch) for ch, col in self.consent.items()),
                *((f"profile_fields.{name}", col, CF_PREFIX + name) for name, col in self.profile_fields.items())]

    def import_root(self) -> dict[str, object]:
        """Root options of its import besides the matching mode."""
        return {"db_id": self.db_id}

    def mode_for(self, key: str) -> str:
        """The matching mode a profile keyed by ``key`` (``email`` / ``phone``) is imported with."""
        return next(m for m in self.matching.modes if key in key_field(m))
