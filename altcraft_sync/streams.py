"""Streams as data: what each stream reads, how its rows map, and how Altcraft takes, deletes and lists them.

Every part of the engine asks a :class:`StreamSpec` instead of branching on a stream's name: the settings
model validates ``streams.<name>`` with ``source_model`` against ``fields``; the source binds the stream and
its ``child`` table; the mapper named by ``mapper`` turns a chunk into payloads; the dispatcher calls
``import_method`` / ``delete_method``; the dependency check and the carriers of root definitions follow
``depends_on`` and ``carries``. Adding a stream (or a child table) means adding a spec here, not editing
the engine. A spec registered at run time (:func:`registered`) is seen by the run's own process only:
map worker processes re-import this module, so a permanent stream belongs in :data:`BUILT_IN`.

This module sits at the bottom of the layers: it imports the settings models and the field catalogue and
nothing else of altcraft-sync; the mapper is named by its dotted path and imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from altcraft_sync.catalogue import (
    CATEGORY_FIELDS,
    LINE_FIELDS,
    ORDER_FIELDS,
    PRODUCT_FIELDS,
    PROFILE_FIELDS,
    REGIONAL_FIELDS,
    SKU_FIELDS,
)
from altcraft_sync.masking import hide_contact
from altcraft_sync.sources import CatalogStream, OrdersStream, ProfilesStream, TableSource

Mapper = Callable[..., Any]
"""``mapper(parents, children, mapping) -> transforms.payload.Mapped`` (pure: frames and a
``transforms.spec.MappingSpec`` in, payloads out)."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A table whose rows nest into the parent's records (order lines, SKU regional data). It has its own
    cursor, ``<stream>.<name>``: a changed child makes its parent eligible."""

    name: str
    """The attribute under the parent's settings section, and the cursor's suffix."""
    fields: Mapping[str, bool]
    """Altcraft field -> required, for ``columns``."""
    custom_field_type: str | None = None
    """The ``entity_type`` of custom fields its rows carry (None: the parent's)."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: an entity of the shop synced into one Altcraft Market collection."""

    name: str
    """Its key under ``streams:`` in the settings, its lock and its parent cursor's name."""
    entity: str
    """The ledger entity of its records (ids are unique per entity)."""
    source_model: type[TableSource]
    """The settings model of its section."""
    fields: Mapping[str, bool]
    """Altcraft field -> required, for ``columns`` (``altcraft_sync.catalogue``)."""
    mapper: str
    """``module:function`` of its :data:`Mapper`."""
    custom_field_type: str | None = None
    """The ``entity_type`` of custom fields its records carry; None: it takes none."""
    child: ChildSpec | None = None
    depends_on: tuple[str, ...] = ()
    """Streams its records refer to, in lookup order; a record waits (deferred) until Altcraft holds what it
    refers to (an order line's product may be a SKU or a product)."""
    import_method: str | None = None
    """The Market import method; None for categories, which travel at the root of a carrier's import."""
    delete_method: str | None = None
    """The Market delete method; None: Altcraft cannot delete them (deletes are reported, not sent)."""
    delete_one_by_one: bool = False
    """The delete method takes one ``external_id`` per request (orders/delete)."""
    list_method: str | None = None
    """The Market list method ``verify`` reads back; None: not verifiable."""
    takes_skip_triggers: bool = False
    """Its import accepts the root ``skip_triggers``."""
    whole_table: bool = False
    """Read the whole change set and send it as one ordered batch (categories: parents before children)."""
    carries: tuple[str, ...] = ()
    """What its records can carry at the root of their import: custom field entity types, ``line_status``
    (custom line statuses) and ``categories``, in the order carriers are preferred."""
    root_key: str = field(default="", compare=False)
    """The root key it is carried under when it has no import method of its own (``categories``)."""
    profiles: bool = False
    """Its records are Altcraft profiles (``profiles/import_batch``): keyed ``<field>:<value>`` by their
    matching e-mail or phone, per-item results read by position, the returned ``profile_id`` kept in the
    ledger (docs/altcraft-profiles.md)."""
    owned_by: tuple[str, ...] = ()
    """Profile streams holding the person each record is sent for (an order's buyer): a record waits
    (deferred) until its profile is delivered, and ``forget`` deletes it with that profile."""
    stands_alone: bool = True
    """A record's payload and contract verdict follow from its own source rows (and the settings) alone, so
    a record whose rows did not change may skip mapping (``transforms.digest``). False where mapping
    relates the records of a chunk to each other (categories: a parent cycle quarantines every category on
    it) or where the ledger's id is not the source's ``external_id`` (profiles: keyed by e-mail or phone)."""
    erase_method: str | None = None
    """Deletes one record on an explicit request only (``altcraft-sync forget``); a sync never calls it:
    deleting a person is never a side effect."""

    @property
    def child_entity(self) -> str | None:
        """The source entity (and cursor) name of its child table, e.g. ``orders.lines``."""
        return f"{self.name}.{self.child.name}" if self.child else None

    def shown_key(self, key: Any) -> Any:
        """A source key as reports show it (a watermark's key): a profile stream's keys can be a person's
        (a guest is keyed by an e-mail or a phone), shown as every report shows contacts."""
        return hide_contact(key) if self.profiles and key is not None else key

    def map_function(self) -> Mapper:
        """The mapper, imported on first use (transforms import this module, not the other way round)."""
        module, _, name = self.mapper.partition(":")
        fn: Mapper = getattr(importlib.import_module(module), name)
        return fn


BUILT_IN: tuple[StreamSpec, ...] = (
    StreamSpec(
        name="categories", entity="category", source_model=TableSource, fields=CATEGORY_FIELDS,
        mapper="transforms.chunk:categories", whole_table=True, root_key="categories", stands_alone=False,
    ),
    StreamSpec(
        name="products", entity="product", source_model=CatalogStream, fields=PRODUCT_FIELDS,
        mapper="transforms.catalog:map_catalog", custom_field_type="product",
        child=ChildSpec("regional", REGIONAL_FIELDS), depends_on=("categories",),
        import_method="market/products/import", delete_method="market/products/delete",
        list_method="market/products/list", carries=("product", "categories"),
    ),
    StreamSpec(
        name="skus", entity="sku", source_model=CatalogStream, fields=SKU_FIELDS,
        mapper="transforms.catalog:map_catalog", custom_field_type="sku",
        child=ChildSpec("regional", REGIONAL_FIELDS), depends_on=("products",),
        import_method="market/sku/import", delete_method="market/sku/delete",
        list_method="market/sku/list", carries=("sku", "categories"),
    ),
    StreamSpec(
        name="customers", entity="customer", source_model=ProfilesStream, fields=PROFILE_FIELDS,
        mapper="transforms.chunk:profiles", import_method="profiles/import_batch", list_method="profiles/list",
        erase_method="profiles/delete", takes_skip_triggers=True, profiles=True, stands_alone=False,
    ),
    StreamSpec(
        name="guests", entity="guest", source_model=ProfilesStream, fields=PROFILE_FIELDS,
        mapper="transforms.chunk:profiles", import_method="profiles/import_batch", list_method="profiles/list",
        erase_method="profiles/delete", takes_skip_triggers=True, profiles=True, stands_alone=False,
    ),
    StreamSpec(
        name="orders", entity="order", source_model=OrdersStream, fields=ORDER_FIELDS,
        mapper="transforms.chunk:orders", custom_field_type="order",
        child=ChildSpec("lines", LINE_FIELDS, custom_field_type="line_order"), depends_on=("skus", "products"),
        import_method="market/orders/import", delete_method="market/orders/delete", delete_one_by_one=True,
        list_method="market/orders/list", takes_skip_triggers=True, carries=("order", "line_order", "line_status"),
        owned_by=("customers", "guests"),
    ),
)
"""In the order a sync runs them: what a stream depends on runs before it."""

StreamName = Literal["categories", "products", "skus", "customers", "guests", "orders"]
"""The names of :data:`BUILT_IN`, as a type: flow parameters take it, so the Prefect UI offers them as a
choice (a test keeps it equal to ``BUILT_IN``; a Literal cannot be built from the tuple for mypy)."""

_registry: dict[str, StreamSpec] = {s.name: s for s in BUILT_IN}


def all_specs() -> list[StreamSpec]:
    """Every known stream, in sync order."""
    return list(_registry.values())


def names() -> tuple[str, ...]:
    return tuple(_registry)


def get(name: str) -> StreamSpec:
    """The spec of ``name``; ``KeyError`` names the known streams."""
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a stream (known: {', '.join(_registry)})") from None


def find(name: str) -> StreamSpec | None:
    return _registry.get(name)


def of_entity(entity: str) -> StreamSpec:
    """The stream whose records are ledger entity ``entity``."""
    for spec in _registry.values():
        if spec.entity == entity:
            return spec
    raise KeyError(f"no stream syncs entity {entity!r}")


def entities() -> dict[str, str]:
    """Stream name -> ledger entity."""
    return {s.name: s.entity for s in _registry.values()}


def depended_on() -> frozenset[str]:
    """Entities some stream's records refer to (their delivered ids are looked up)."""
    return frozenset(_registry[d].entity for s in _registry.values() for d in (*s.depends_on, *s.owned_by)
                     if d in _registry)


def profile_streams() -> list[StreamSpec]:
    """The streams whose records are Altcraft profiles."""
    return [s for s in _registry.values() if s.profiles]


@contextmanager
def registered(*specs: StreamSpec) -> Iterator[None]:
    """Add streams for the duration of a block (after the built-in ones, in the order given). A name that
    is already known is refused: a spec never silently replaces another."""
    for spec in specs:
        if spec.name in _registry:
            raise ValueError(f"stream {spec.name!r} is already registered")
        if any(s.entity == spec.entity for s in _registry.values()):
            raise ValueError(f"entity {spec.entity!r} of stream {spec.name!r} is already synced by another stream")
    for spec in specs:
        _registry[spec.name] = spec
    try:
        yield
    finally:
        for spec in specs:
            _registry.pop(spec.name, None)
