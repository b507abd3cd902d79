"""How one stream's rows are found in the shop: a table (with column names) or a SELECT, its key and
cursor column, and the children nested into its records. The settings models of ``streams.*`` in the YAML;
each stream spec (:mod:`altcraft_sync.streams`) names the model its section is validated with."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from altcraft_sync.catalogue import MATCHING_FIELDS


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

    @model_validator(mode="after")
    def _one_source(self) -> TableSource:
        if bool(self.table) == bool(self.query):
            raise ValueError("set exactly one of 'table' or 'query'")
        return self

    def source_name(self) -> str:
        return self.table or "query"


class ChildSource(TableSource):
    """Rows nested into a parent record (order lines, SKU regional data). A change in a child row makes
    its parent eligible for sync, even when the parent's own ``updated_at`` did not move."""

    parent_key: str


class LinesSource(ChildSource):
    status_map: dict[str, str] = Field(default_factory=dict)
    default_status: str | None = None
    """Line status for shops that keep none per line (used when ``columns.status`` is not mapped)."""


class CatalogStream(TableSource):
    regional: ChildSource | None = None


class Matching(_Model):
    """Profile matching for orders: the mode and where each field the mode needs comes from."""

    mode: str = "email"
    columns: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_for_mode(self) -> Matching:
        if self.mode not in MATCHING_FIELDS:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MATCHING_FIELDS)}")
        have = set(self.columns) | set(self.constants)
        for alternatives in MATCHING_FIELDS[self.mode]:
            if not have.intersection(alternatives):
                raise ValueError(f"mode {self.mode!r} needs field {' or '.join(alternatives)!r} in columns or constants")
        return self


class OrdersStream(TableSource):
    status_map: dict[str, str] = Field(default_factory=dict)
    matching: Matching = Field(default_factory=Matching)
    lines: LinesSource
