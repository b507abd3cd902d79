"""What a mapper needs to know about its stream, and nothing else.

The transforms never see the settings object: no database URL, no API token, nothing a map worker could
leak. :func:`mapping_spec` cuts this out of the :class:`~altcraft_sync.config.Config` once per run; the
engine hands it to the mapper with every chunk (a worker process receives it with the chunk)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

from altcraft_sync import streams as registry
from altcraft_sync.config import Config, CustomField
from altcraft_sync.sources import TableSource


@dataclass(frozen=True)
class MappingSpec:
    """One stream's mapping: its settings section and the few run-wide settings mapping depends on."""

    stream: str
    entity: str
    """The ledger entity of its records."""
    section: TableSource
    """``streams.<stream>``: columns, keys, status maps, children."""
    timezone: str
    """Of naive timestamp columns (``source.timezone``)."""
    money_scale: int
    custom_fields: tuple[CustomField, ...]
    custom_line_statuses: tuple[str, ...]
    """External ids of the configured custom line statuses (valid line statuses besides the built-in)."""
    default_currency: str | None = None
    endpoint: str | None = None
    total_mismatch: str = "quarantine"
    sku_like: bool = False
    """Records name a ``product_external_id`` (checked and referenced as SKUs)."""
    owner_keys: bool = False
    """Records carry the profile they are sent for (``Payload.owner``): a profile stream this config syncs
    owns them (an order's buyer)."""
    change_times: bool = False
    """Give each payload its change time (the stream's import takes ``skip_triggers``: the trigger window)."""

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def custom_types(self) -> dict[str, str]:
        """Custom field external_id -> value type."""
        return {cf.external_id: cf.value_type for cf in self.custom_fields}


def mapping_spec(config: Config, stream: str) -> MappingSpec:
    """The mapping of ``stream`` as the config defines it (the stream must be configured)."""
    section = config.streams.section(stream)
    if section is None:
        raise KeyError(f"streams.{stream} is not configured")
    spec = registry.get(stream)
    return MappingSpec(
        stream=stream, entity=spec.entity, section=section, timezone=config.source.timezone,
        money_scale=config.sync.money_scale, custom_fields=tuple(config.custom_fields),
        custom_line_statuses=tuple(s.external_id for s in config.custom_line_statuses),
        default_currency=config.sync.default_currency, endpoint=config.sync.endpoint,
        total_mismatch=config.sync.total_mismatch, sku_like="product_external_id" in spec.fields,
        owner_keys=any(config.streams.section(o) is not None for o in spec.owned_by),
        change_times=spec.takes_skip_triggers,
    )
