"""How one stream's rows are found in the shop: a table (with column names) or a SELECT, its key and
cursor column, and the children nested into its records. The settings models of ``streams.*`` in the YAML;
each stream spec (:mod:`altcraft_sync.streams`) names the model its section is validated with."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from altcraft_sync.catalogue import MATCHING_FIELDS
from altcraft_sync.cursor import MATCH_PREFIX, PRODUCT_NAME


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
    """Profile matching (orders, profiles): the mode, the modes tried next when a row has no value for it
    (``fallback``, in order: the first whose fields are all present wins), and where each field comes from."""

    mode: str = "email"
    fallback: list[str] = Field(default_factory=list)
    columns: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_for_mode(self) -> Matching:
        have = set(self.columns) | set(self.constants)
        for mode in self.modes():
            if mode not in MATCHING_FIELDS:
                raise ValueError(f"mode {mode!r} is not one of {', '.join(MATCHING_FIELDS)}")
            for alternatives in MATCHING_FIELDS[mode]:
                if not have.intersection(alternatives):
                    raise ValueError(f"mode {mode!r} needs field {' or '.join(alternatives)!r} in columns or constants")
        return self

    def modes(self) -> list[str]:
        """The modes in the order they are tried."""
        return [self.mode, *self.fallback]

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return [(f"matching.columns.{fld}", column, MATCH_PREFIX + fld) for fld, column in self.columns.items()]


class OrdersStream(TableSource):
    status_map: dict[str, str] = Field(default_factory=dict)
    matching: Matching = Field(default_factory=Matching)
    lines: LinesSource

    def extra_columns(self) -> list[tuple[str, str, str]]:
        return self.matching.extra_columns()
