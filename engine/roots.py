"""Root definitions and categories: what must travel with a real record, and which record carries it.

Altcraft takes custom field definitions, custom line statuses and categories only at the root of an
import request whose ``data`` is required (docs/altcraft-api.md §1.1-1.2); the seed's own orders/import example sends
definitions together with the orders that use them. Sending them with ``data: []`` works only if Altcraft
accepts an empty ``data``, which nothing documents. So altcraft-sync never does:

- a definition rides with one record of the stream that uses it (its ``entity_type``), sent just before
  that stream reads: a record the ledger holds as delivered, re-sent unchanged (an idempotent upsert), or,
  before anything was delivered, the stream's first valid row;
- categories ride with one product (or SKU) in each categories request;
- definitions are fingerprinted in the ledger (entities ``custom_field`` and ``line_status``): they are
  sent when new or changed, never on a run where nothing about them changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from transforms.payload import canonical, fingerprint

DEFINITION_ENTITIES = {"custom_fields": "custom_field", "custom_line_statuses": "line_status"}
"""Root key -> the ledger entity its definitions are fingerprinted under."""

@dataclass(frozen=True, slots=True)
class Definition:
    """One root definition as sent, with its ledger identity and fingerprint."""

    root: str
    """``custom_fields`` or ``custom_line_statuses``."""
    external_id: str
    body: dict[str, Any]
    fingerprint: str

    @property
    def entity(self) -> str:
        return DEFINITION_ENTITIES[self.root]


def definitions_for(config: Config, stream: str, enabled: list[str]) -> list[Definition]:
    """The definitions ``stream`` carries: custom fields of an entity type its spec ``carries``, and custom
    line statuses if it carries ``line_status``. A custom field whose own stream is not enabled rides with
    the first enabled carrier stream, so it still reaches Altcraft."""
    carriers = [s for s in registry.all_specs() if s.name in enabled and s.import_method and s.carries]
    if stream not in [s.name for s in carriers]:
        return []
    out: list[Definition] = []
    for cf in config.custom_fields:
        home = next((s.name for s in carriers if cf.entity_type in s.carries), carriers[0].name)
        if home == stream:
            body = cf.model_dump(exclude_none=True)
            out.append(Definition("custom_fields", cf.external_id, body, fingerprint(canonical(body))))
    if "line_status" in registry.get(stream).carries:
        for st in config.custom_line_statuses:
            body = st.model_dump()
            out.append(Definition("custom_line_statuses", st.external_id, body, fingerprint(canonical(body))))
    return out


def roots_body(definitions: list[Definition]) -> dict[str, list[dict[str, Any]]]:
    """The request's root keys for these definitions, in config order."""
    roots: dict[str, list[dict[str, Any]]] = {}
    for d in definitions:
        roots.setdefault(d.root, []).append(d.body)
    return roots


def carrier_of(root_key: str, enabled: list[str]) -> str | None:
    """The stream whose records carry a stream sent at the root of imports (``root_key``, the carried
    stream's spec says which: categories): the first enabled one whose spec ``carries`` it, or None when no
    such stream is synced."""
    return next((s.name for s in registry.all_specs() if s.name in enabled and s.import_method
                 and root_key in s.carries), None)
